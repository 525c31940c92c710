package smtpsink

import (
	"net/smtp"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testwait"
)

// TestSinkCountsAndDumps: a message sent with net/smtp is counted by
// command and its MAIL line is there as smtp-sink read it.
func TestSinkCountsAndDumps(t *testing.T) {
	s := Start(t)
	if err := smtp.SendMail(s.Addr, nil, "a@example.org", []string{"b@example.net", "c@example.net"}, []byte("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "the end of data", func() bool { return s.Commands()["."] == 1 })
	n := s.Commands()
	if n["EHLO"] != 1 || n["MAIL"] != 1 || n["RCPT"] != 2 || n["DATA"] != 1 || n["connect"] != 2 {
		t.Errorf("counted %v, want 1 EHLO, MAIL, DATA, 2 RCPT, 2 connections (the probe's and ours)", n)
	}
	if got := s.Lines("MAIL "); len(got) != 1 || got[0] != "MAIL FROM:<a@example.org> BODY=8BITMIME" {
		t.Errorf("MAIL lines %q", got)
	}
}
