// Package dsn builds delivery status notifications (RFC 3464): the
// multipart/report messages that tell a sender their mail failed, is
// delayed, or was delivered.
package dsn

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// Rcpt is one recipient line of a report.
type Rcpt struct {
	// Addr is the recipient the report is about (Final-Recipient).
	Addr string
	// ORCPT is the original recipient from RCPT TO ORCPT=, either
	// "rfc822;user@example.com" or a bare address; empty when none was given.
	ORCPT string
	// Action is "failed", "delayed", "delivered", "relayed" or "expanded".
	Action string
	// Status is the enhanced status code, like 5.1.1.
	Status mail.EnhancedCode
	// RemoteMTA is the host that gave the answer, if any.
	RemoteMTA string
	// Diagnostic is the answer itself, like "smtp; 550 5.1.1 no such user".
	Diagnostic string
	// WillRetryUntil is when a delayed recipient expires (Will-Retry-Until);
	// zero leaves the field out. Only delayed recipients show it.
	WillRetryUntil time.Time
}

// Report is one DSN.
type Report struct {
	// ReportingMTA is our hostname.
	ReportingMTA string
	// From is the postmaster sender shown in the From: header, e.g.
	// "MAILER-DAEMON@host"; empty means MAILER-DAEMON@ReportingMTA.
	From string
	// To is the original return path: the report's recipient.
	To string
	// QueueID and EnvID (the ESMTP ENVID) identify the original message.
	QueueID, EnvID string
	// Arrival is when the original message was accepted.
	Arrival time.Time
	// Rcpts are the recipients the report is about; at least one.
	Rcpts []Rcpt
	// Ret is "HDRS" to return the original headers only; "FULL" or ""
	// return the whole message. RET applies to failure reports only (RFC
	// 3461 section 4.3): a report with no failed recipient (a delay warning,
	// a success notice) always returns the headers only.
	Ret string
	// Original is the original message (CRLF line endings).
	Original []byte
	// MaxReturn truncates a returned body over this many bytes (0 = no
	// limit). Headers are never cut.
	MaxReturn int64
	// Now is the time of the report.
	Now time.Time
}

// Subjects of the three kinds of report.
const (
	SubjectFailed    = "Undelivered Mail Returned to Sender"
	SubjectDelayed   = "Delayed Mail (still being retried)"
	SubjectDelivered = "Successful Mail Delivery Report"
)

// dateLayout is the RFC 5322 date-time.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// Build renders r as a complete message with CRLF line endings, ready to be
// queued from the null sender to r.To.
func Build(r *Report) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	headers, body, truncated := r.returned()
	boundary := r.boundary()

	var b builder
	from := r.From
	if from == "" {
		from = "MAILER-DAEMON@" + r.ReportingMTA
	}
	b.field("From", "Mail Delivery System <"+clean(from)+">")
	b.field("To", "<"+clean(r.To)+">")
	b.field("Subject", r.subject())
	b.field("Date", r.Now.Format(dateLayout))
	b.field("Message-ID", r.messageID())
	b.field("Auto-Submitted", "auto-replied")
	b.field("MIME-Version", "1.0")
	b.field("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.line("")
	b.line("This is a MIME-encapsulated message.")
	b.line("")

	b.line("--" + boundary)
	human := r.humanText(truncated)
	b.field("Content-Type", "text/plain; charset="+charset(human))
	b.field("Content-Description", "Notification")
	if !mail.ASCII(human) {
		b.field("Content-Transfer-Encoding", "8bit")
	}
	b.line("")
	b.text(human)
	b.line("")

	b.line("--" + boundary)
	if r.global() {
		b.field("Content-Type", "message/global-delivery-status")
		b.field("Content-Transfer-Encoding", "8bit")
	} else {
		b.field("Content-Type", "message/delivery-status")
	}
	b.field("Content-Description", "Delivery report")
	b.line("")
	r.statusFields(&b)
	b.line("")

	b.line("--" + boundary)
	switch {
	case body == nil && !r.failed():
		b.field("Content-Type", "text/rfc822-headers")
		b.field("Content-Description", "Message Headers")
	case body == nil:
		b.field("Content-Type", "text/rfc822-headers")
		b.field("Content-Description", "Undelivered Message Headers")
	default:
		b.field("Content-Type", "message/rfc822")
		b.field("Content-Description", "Undelivered Message")
	}
	if !mail.ASCII(headers) || !mail.ASCII(body) {
		b.field("Content-Transfer-Encoding", "8bit")
	}
	b.line("")
	b.buf.Write(headers)
	b.buf.Write(body)
	if n := b.buf.Len(); n < 2 || !bytes.Equal(b.buf.Bytes()[n-2:], []byte("\r\n")) {
		b.line("")
	}
	b.line("")
	b.line("--" + boundary + "--")
	return b.buf.Bytes(), nil
}

// check refuses reports that cannot be built or must not be sent.
func (r *Report) check() error {
	if r.To == "" {
		return errors.New("dsn: no return path: a message from the null sender never gets a report")
	}
	if r.ReportingMTA == "" {
		return errors.New("dsn: ReportingMTA is empty; set it to the server's hostname")
	}
	if len(r.Rcpts) == 0 {
		return errors.New("dsn: a report needs at least one recipient")
	}
	for i, rc := range r.Rcpts {
		switch rc.Action {
		case "failed", "delayed", "delivered", "relayed", "expanded":
		default:
			return fmt.Errorf("dsn: recipient %d (%s): action %q is not failed, delayed, delivered, relayed or expanded", i, rc.Addr, rc.Action)
		}
		if _, err := mail.ParseEnhanced(rc.Status.String()); err != nil {
			return fmt.Errorf("dsn: recipient %d (%s): status %q is not an enhanced status code like \"5.1.1\"", i, rc.Addr, rc.Status)
		}
		if rc.Addr == "" {
			return fmt.Errorf("dsn: recipient %d has no address", i)
		}
	}
	return nil
}

// subject chooses the Subject from the recipients' actions.
func (r *Report) subject() string {
	delayed, delivered := true, true
	for _, rc := range r.Rcpts {
		delayed = delayed && rc.Action == "delayed"
		delivered = delivered && (rc.Action == "delivered" || rc.Action == "relayed" || rc.Action == "expanded")
	}
	switch {
	case delayed:
		return SubjectDelayed
	case delivered:
		return SubjectDelivered
	}
	return SubjectFailed
}

// failed reports whether any recipient of the report failed.
func (r *Report) failed() bool {
	for _, rc := range r.Rcpts {
		if rc.Action == "failed" {
			return true
		}
	}
	return false
}

// messageID derives a Message-ID unique to this queue ID and moment, so the
// same report built twice is byte-for-byte the same.
func (r *Report) messageID() string {
	id := r.QueueID
	if id == "" {
		sum := sha256.Sum256(r.Original)
		id = hex.EncodeToString(sum[:8])
	}
	return fmt.Sprintf("<dsn.%s.%s@%s>", clean(id), strconv.FormatInt(r.Now.UnixNano(), 36), clean(r.ReportingMTA))
}

// boundary derives a MIME boundary from the report's contents and makes
// sure the returned message does not contain it.
func (r *Report) boundary() string {
	h := sha256.New()
	h.Write([]byte(r.QueueID))
	h.Write([]byte(r.Now.Format(time.RFC3339Nano)))
	h.Write(r.Original)
	sum := h.Sum(nil)
	for {
		b := "=_sluice_" + hex.EncodeToString(sum[:12])
		if !bytes.Contains(r.Original, []byte("--"+b)) {
			return b
		}
		next := sha256.Sum256(sum)
		sum = next[:]
	}
}

// returned splits the original into its header section (with the blank line
// that ends it) and its body, normalizing line endings to CRLF. The body is
// nil when only headers are returned, and cut to MaxReturn bytes at a line
// boundary when longer; truncated reports whether it was.
func (r *Report) returned() (headers, body []byte, truncated bool) {
	msg := toCRLF(r.Original)
	_, body = mail.ParseHeader(msg)
	headers = msg[:len(msg)-len(body)]
	if body == nil {
		body = []byte{}
	}
	if strings.EqualFold(r.Ret, "HDRS") || !r.failed() {
		return headers, nil, false
	}
	if r.MaxReturn > 0 && int64(len(body)) > r.MaxReturn {
		cut := body[:r.MaxReturn]
		if i := bytes.LastIndex(cut, []byte("\r\n")); i >= 0 {
			cut = cut[:i+2]
		} else {
			cut = cut[:0] // not even one whole line fits
		}
		return headers, cut, true
	}
	return headers, body, false
}

// toCRLF turns bare LF into CRLF.
func toCRLF(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/40)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}
