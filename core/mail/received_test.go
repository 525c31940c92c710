package mail

import (
	"net/netip"
	"testing"
	"time"
)

func TestAppendReceived(t *testing.T) {
	date := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))
	for _, tc := range []struct {
		name string
		tr   Trace
		want string
	}{
		{"one rcpt", Trace{Helo: "client.example", ClientName: "mail.client.example", ClientIP: netip.MustParseAddr("192.0.2.7"),
			By: "mx.test", With: Protocol(false, false, false), ID: "ABC", Rcpt: "u@local.test", Date: date},
			"Received: from client.example (mail.client.example [192.0.2.7])\r\n\tby mx.test (Sluice) with ESMTP id ABC\r\n" +
				"\tfor <u@local.test>; Wed, 04 Mar 2026 05:06:07 +0100\r\n"},
		{"ipv6 tls auth several rcpts", Trace{Helo: "c", ClientIP: netip.MustParseAddr("2001:db8::1"),
			By: "mx.test", With: Protocol(false, true, true), ID: "X", Date: date},
			"Received: from c (unknown [IPv6:2001:db8::1])\r\n\tby mx.test (Sluice) with ESMTPSA id X; " +
				"Wed, 04 Mar 2026 05:06:07 +0100\r\n"},
		{"hostile helo, utf8", Trace{Helo: "a(b)\r\nX-Evil: 1", ClientName: "x (y)", ClientIP: netip.MustParseAddr("::ffff:192.0.2.1"),
			By: "mx.test", With: Protocol(true, false, false), UTF8: true, ID: "Y", Rcpt: "jö@x.example", Date: date},
			"Received: from a?b???X-Evil:?1 (x??y? [192.0.2.1])\r\n\tby mx.test (Sluice) with UTF8SMTP id Y\r\n" +
				"\tfor <jö@x.example>; Wed, 04 Mar 2026 05:06:07 +0100\r\n"},
		{"non-ascii rcpt without SMTPUTF8", Trace{Helo: "c", ClientIP: netip.MustParseAddr("192.0.2.1"),
			By: "mx.test", With: Protocol(true, true, false), Rcpt: "jö@x", Date: date},
			"Received: from c (unknown [192.0.2.1])\r\n\tby mx.test (Sluice) with UTF8SMTPS\r\n" +
				"\tfor <j??@x>; Wed, 04 Mar 2026 05:06:07 +0100\r\n"},
		{"local submission", Trace{By: "mx.test", Comment: "Sluice, from local (sendmail)\r\n", ID: "Z", Date: date},
			"Received: by mx.test (Sluice, from local ?sendmail???) id Z; Wed, 04 Mar 2026 05:06:07 +0100\r\n"},
	} {
		if got := string(AppendReceived(nil, tc.tr)); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
		h, body := ParseHeader(AppendReceived(nil, tc.tr))
		if len(h.Fields) != 1 || h.Fields[0].Name != "Received" || body != nil {
			t.Errorf("%s: not one Received field: %q", tc.name, h.Bytes())
		}
	}
}

func TestProtocol(t *testing.T) {
	for _, tc := range []struct {
		utf8, tls, auth bool
		want            string
	}{
		{false, false, false, "ESMTP"}, {false, false, true, "ESMTPA"}, {false, true, false, "ESMTPS"},
		{false, true, true, "ESMTPSA"}, {true, false, false, "UTF8SMTP"}, {true, true, true, "UTF8SMTPSA"},
	} {
		if got := Protocol(tc.utf8, tc.tls, tc.auth); got != tc.want {
			t.Errorf("Protocol(%v, %v, %v) = %q, want %q", tc.utf8, tc.tls, tc.auth, got, tc.want)
		}
	}
}

func TestReturnPath(t *testing.T) {
	for _, tc := range []struct{ sender, want string }{
		{"alice@example.org", "<alice@example.org>"},
		{"", "<>"},
		{`"a b"@example.org`, `<"a b"@example.org>`},
		{"jö@example.org", "<jö@example.org>"},
		{"a@x\r\nX-Evil: 1", "<a@x??X-Evil: 1>"},
	} {
		if got := ReturnPath(tc.sender); got != tc.want {
			t.Errorf("ReturnPath(%q) = %q, want %q", tc.sender, got, tc.want)
		}
	}
}
