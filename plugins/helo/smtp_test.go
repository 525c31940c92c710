package helo

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// sendFrom sends one message to rcpt from the loopback address src,
// greeting with helo; a refusal is an *smtp.SMTPError.
func sendFrom(addr, src, helo, rcpt string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return err
	}
	if err := c.Mail("sender@remote.test", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, servertest.Message("sender@remote.test", rcpt, "helo test", "hi\r\n")); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestSMTP runs the rules in the real server: its reverse DNS asks a
// loopback DNS server, the clients come from several loopback addresses,
// and every score shows in the delivered message's X-Spam-Status.
func TestSMTP(t *testing.T) {
	dns := dnstest.Start(t, dnstest.Zone(
		"1.0.0.127.in-addr.arpa. 300 IN PTR client.test.",
		"client.test. 300 IN A 127.0.0.1",
		// 127.0.0.2 has no PTR; 127.0.0.3 a PTR that points elsewhere.
		"3.0.0.127.in-addr.arpa. 300 IN PTR forged.test.",
		"forged.test. 300 IN A 192.0.2.1",
	))
	cfg := servertest.Config(t)
	cfg.Hostname = "mx.helo.test"
	cfg.LocalDomains = []string{"localhost", "helo.test"}
	cfg.TrustedNetworks = nil
	cfg.DNS.Servers = []string{dns.Addr}
	cfg.Auth.SPF, cfg.Auth.DKIMVerify, cfg.Auth.DMARC = false, false, false
	cfg.Spam.AddHeader = 0.1
	toml, err := sdktest.PluginTOML(map[string]any{
		"our_names":     []any{"mx.helo.test", "helo.test"},
		"our_addresses": []any{"192.0.2.25"},
		"skip_networks": []any{},
		"scores":        map[string]any{"no_ptr": 1.5, "ptr_unconfirmed": 1.25, "helo_not_fqdn": 1, "helo_ours": 4},
		"reject":        []any{"helo_ip_mismatch"},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	servertest.Install(t, cfg, "helo", sdktest.Build(t, "."), string(toml))
	s := servertest.Start(t, cfg)

	tests := []struct {
		name, src, helo string
		refused         string // the refusal's "code enhanced text", "" when delivered
		received        string // the delivered message's "from" clause
		spam            string // its X-Spam-Status, "" for none
	}{
		{"confirmed, fqdn", "127.0.0.1", "client.test", "", "from client.test (client.test [127.0.0.1])", ""},
		{"no ptr", "127.0.0.2", "client.test", "", "from client.test (unknown [127.0.0.2])", "Yes, score=1.5 symbols=NO_PTR(1.5)"},
		{"unconfirmed, not fqdn", "127.0.0.3", "laptop", "", "from laptop (unknown [127.0.0.3])",
			"Yes, score=2.2 symbols=PTR_UNCONFIRMED(1.25),HELO_NOT_FQDN(1)"},
		{"our name", "127.0.0.1", "MX.helo.test", "", "from MX.helo.test (client.test [127.0.0.1])", "Yes, score=4.0 symbols=HELO_OURS(4)"},
		{"our address", "127.0.0.1", "[192.0.2.25]", "", "from [192.0.2.25] (client.test [127.0.0.1])", "Yes, score=4.0 symbols=HELO_OURS(4)"},
		{"own literal", "127.0.0.1", "[127.0.0.1]", "", "from [127.0.0.1] (client.test [127.0.0.1])", ""},
		{"literal not the client's", "127.0.0.1", "[192.0.2.9]", "550 5.7.1 <[192.0.2.9]>: Helo command rejected: not your address [127.0.0.1]", "", ""},
	}
	for i, tc := range tests {
		rcpt := fmt.Sprintf("u%d@localhost", i)
		err := sendFrom(s.Addr, tc.src, tc.helo, rcpt)
		if tc.refused != "" {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.refused)
				continue
			}
			e := se.EnhancedCode
			if got := fmt.Sprintf("%d %d.%d.%d %s", se.Code, e[0], e[1], e[2], se.Message); got != tc.refused {
				t.Errorf("%s: %q, want %q", tc.name, got, tc.refused)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		files := servertest.WaitFiles(t, s.Mailbox(fmt.Sprintf("u%d", i), "localhost"), 1, 10*time.Second)
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		msg := string(b)
		if !strings.Contains(msg, "Received: "+tc.received+"\n") {
			t.Errorf("%s: no %q in\n%s", tc.name, tc.received, msg)
		}
		switch {
		case tc.spam == "" && strings.Contains(msg, "X-Spam-Status"):
			t.Errorf("%s: scored:\n%s", tc.name, msg)
		case tc.spam != "" && !strings.Contains(msg, "X-Spam-Status: "+tc.spam+"\n"):
			t.Errorf("%s: no X-Spam-Status %q in\n%s", tc.name, tc.spam, msg)
		}
	}
}
