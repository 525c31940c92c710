package smtpd

import (
	"net/netip"
	"testing"
	"time"
)

func TestAppendReceived(t *testing.T) {
	date := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))
	for _, tc := range []struct {
		name string
		ri   receivedInfo
		want string
	}{
		{"one rcpt", receivedInfo{Helo: "client.example", ClientIP: netip.MustParseAddr("192.0.2.7"),
			Hostname: "mx.test", ID: "ABC", Rcpt: "u@local.test", Date: date},
			"Received: from client.example ([192.0.2.7])\r\n\tby mx.test (Sluice) with ESMTP id ABC\r\n" +
				"\tfor <u@local.test>; Wed, 04 Mar 2026 05:06:07 +0100\r\n"},
		{"ipv6 tls auth several rcpts", receivedInfo{Helo: "c", ClientIP: netip.MustParseAddr("2001:db8::1"),
			Hostname: "mx.test", TLS: true, Auth: true, ID: "X", Date: date},
			"Received: from c ([IPv6:2001:db8::1])\r\n\tby mx.test (Sluice) with ESMTPSA id X; " +
				"Wed, 04 Mar 2026 05:06:07 +0100\r\n"},
		{"hostile helo, utf8", receivedInfo{Helo: "a(b)\r\nX-Evil: 1", ClientIP: netip.MustParseAddr("::ffff:192.0.2.1"),
			Hostname: "mx.test", UTF8: true, ID: "Y", Rcpt: "jö@x.example", Date: date},
			"Received: from a?b???X-Evil:?1 ([192.0.2.1])\r\n\tby mx.test (Sluice) with UTF8SMTP id Y\r\n" +
				"\tfor <jö@x.example>; Wed, 04 Mar 2026 05:06:07 +0100\r\n"},
	} {
		if got := string(appendReceived(nil, tc.ri)); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
