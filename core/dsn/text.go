package dsn

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/sluice-mta/sluice/core/mail"
)

// humanText is the first, human-readable part of the report.
func (r *Report) humanText(truncated bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at %s.\n\n", clean(r.ReportingMTA))
	switch r.subject() {
	case SubjectDelayed:
		b.WriteString("Your message has not been delivered yet to the recipients below.\n" +
			"The mail system will keep trying; you do not need to send it again.\n" +
			"You will be told if it finally fails.\n")
	case SubjectDelivered:
		b.WriteString("Your message was delivered to the recipients below.\n")
	default:
		b.WriteString("Your message could not be delivered to one or more of its\n" +
			"recipients. The reasons are below; the message is returned with\n" +
			"this report.\n")
	}
	if r.QueueID != "" {
		fmt.Fprintf(&b, "\nQueue ID: %s\n", clean(r.QueueID))
	}
	for _, rc := range r.Rcpts {
		fmt.Fprintf(&b, "\n<%s>: %s (%s)\n", cleanText(rc.Addr), rc.Action, rc.Status)
		if rc.Diagnostic != "" {
			fmt.Fprintf(&b, "    %s\n", cleanText(untyped(rc.Diagnostic)))
		}
		if rc.RemoteMTA != "" {
			fmt.Fprintf(&b, "    (answered by %s)\n", cleanText(rc.RemoteMTA))
		}
	}
	if !r.failed() {
		b.WriteString("\nThe headers of your message are attached.\n")
	} else if strings.EqualFold(r.Ret, "HDRS") {
		b.WriteString("\nOnly the headers of your message are returned, as you asked.\n")
	} else if truncated {
		fmt.Fprintf(&b, "\nThe returned message is cut to the first %d bytes of its body.\n", r.MaxReturn)
	}
	return b.String()
}

// statusFields writes the message/delivery-status body: the per-message
// fields, then one group per recipient.
func (r *Report) statusFields(b *builder) {
	b.field("Reporting-MTA", "dns; "+clean(r.ReportingMTA))
	if r.QueueID != "" {
		b.field("X-Sluice-Queue-ID", clean(r.QueueID))
	}
	if r.EnvID != "" {
		b.field("Original-Envelope-Id", clean(r.EnvID))
	}
	if !r.Arrival.IsZero() {
		b.field("Arrival-Date", r.Arrival.Format(dateLayout))
	}
	for _, rc := range r.Rcpts {
		b.line("")
		if rc.ORCPT != "" {
			b.field("Original-Recipient", typedAddr(rc.ORCPT))
		}
		b.field("Final-Recipient", addrField(rc.Addr))
		b.field("Action", rc.Action)
		b.field("Status", rc.Status.String())
		if rc.RemoteMTA != "" {
			b.field("Remote-MTA", "dns; "+clean(rc.RemoteMTA))
		}
		if rc.Diagnostic != "" {
			b.field("Diagnostic-Code", diagnostic(rc.Diagnostic))
		}
		if rc.Action == "failed" || rc.Action == "delayed" {
			b.field("Last-Attempt-Date", r.Now.Format(dateLayout))
		}
		if rc.Action == "delayed" && !rc.WillRetryUntil.IsZero() {
			b.field("Will-Retry-Until", rc.WillRetryUntil.Format(dateLayout))
		}
	}
}

// typed returns "type; value" for a field that names its type, adding
// defType when v has none.
func typed(v, defType string) string {
	v = clean(v)
	if t, rest, ok := strings.Cut(v, ";"); ok && isType(t) {
		return t + "; " + strings.TrimSpace(rest)
	}
	return defType + "; " + v
}

// addrField is the value of a Final-Recipient field for addr: "rfc822;
// addr" for an ASCII address, else RFC 6533's "utf-8;" type with the
// address as it is (in a message/global-delivery-status part: see
// global), so that a bounce names an internationalized recipient instead
// of losing its letters.
func addrField(addr string) string {
	if mail.ASCII(addr) {
		return "rfc822; " + clean(addr)
	}
	return "utf-8; " + cleanText(addr)
}

// typedAddr is an Original-Recipient value: the ORCPT as the client gave
// it (with "rfc822" when it named no type), a non-ASCII one with the
// "utf-8" type.
func typedAddr(orcpt string) string {
	if mail.ASCII(orcpt) {
		return typed(orcpt, "rfc822")
	}
	if t, rest, ok := strings.Cut(orcpt, ";"); ok && isType(strings.TrimSpace(t)) {
		orcpt = rest
	}
	return "utf-8; " + cleanText(orcpt)
}

// global reports whether the report names a non-ASCII address, which RFC
// 6533 carries in a message/global-delivery-status part (UTF-8) rather
// than message/delivery-status (US-ASCII).
func (r *Report) global() bool {
	for _, rc := range r.Rcpts {
		if !mail.ASCII(rc.Addr) || !mail.ASCII(rc.ORCPT) {
			return true
		}
	}
	return false
}

// diagnostic returns the Diagnostic-Code value: d as given when it names
// its type, "smtp; d" when it is an SMTP reply, and "X-Sluice; d" for our
// own words.
func diagnostic(d string) string {
	d = clean(d)
	if t, _, ok := strings.Cut(d, ";"); ok && isType(t) {
		return typed(d, "")
	}
	if len(d) >= 3 && d[0] >= '2' && d[0] <= '5' && d[1] >= '0' && d[1] <= '9' && d[2] >= '0' && d[2] <= '9' {
		return "smtp; " + d
	}
	return "X-Sluice; " + d
}

// untyped drops a leading "type;" from a diagnostic, for people to read.
func untyped(d string) string {
	if t, rest, ok := strings.Cut(d, ";"); ok && isType(t) {
		return strings.TrimSpace(rest)
	}
	return d
}

// isType reports whether t looks like a diagnostic or address type
// ("smtp", "rfc822", "X-Postfix").
func isType(t string) bool {
	if t == "" || len(t) > 32 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// clean makes v safe for a header field: printable US-ASCII on one line.
func clean(v string) string {
	var b strings.Builder
	for _, c := range v {
		switch {
		case c == '\r' || c == '\n' || c == '\t':
			b.WriteByte(' ')
		case c < 0x20 || c == 0x7f:
		case c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteRune(c)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// cleanText makes v safe for one line of the UTF-8 text part.
func cleanText(v string) string {
	v = strings.ToValidUTF8(v, "?")
	v = strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return ' '
		}
		return c
	}, v)
	return strings.Join(strings.Fields(v), " ")
}

func charset(s string) string {
	if mail.ASCII(s) {
		return "us-ascii"
	}
	return "utf-8"
}

// builder writes CRLF lines and folded header fields.
type builder struct {
	buf bytes.Buffer
}

// line writes s and CRLF.
func (b *builder) line(s string) {
	b.buf.WriteString(s)
	b.buf.WriteString("\r\n")
}

// text writes s, which uses LF, with CRLF line endings.
func (b *builder) text(s string) {
	for _, l := range strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n") {
		b.line(strings.TrimSuffix(l, "\n"))
	}
}

// maxLine is where header fields are folded.
const maxLine = 78

// field writes "name: value", folded at spaces so that lines stay short.
func (b *builder) field(name, value string) {
	line, words := name+":", 0
	for _, w := range strings.Fields(value) {
		if words > 0 && len(line)+1+len(w) > maxLine {
			b.line(line)
			line, words = "", 0
		}
		line += " " + w
		words++
	}
	b.line(line)
}
