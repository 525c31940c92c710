// Package sendmail turns a sendmail(1)-style invocation — the command line
// PHP's mail(), cron and scripts use — and the message on standard input
// into an envelope and a message with CRLF line endings, ready to queue.
package sendmail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
)

// Invocation is what a sendmail command line asks for.
type Invocation struct {
	// From is the envelope sender (-f); "" means the default.
	From string
	// FullName (-F) fills the From: header when the message has none.
	FullName string
	// Rcpts are the recipients named on the command line.
	Rcpts []string
	// FromHeaders (-t) takes recipients from To, Cc and Bcc.
	FromHeaders bool
	// IgnoreDots (-i, -oi) reads to end of input; otherwise a line holding
	// a single "." ends the message, as sendmail does.
	IgnoreDots bool
}

// ParseArgs reads sendmail's options. Options that Postfix's sendmail
// accepts and ignores (-odb, -oem, -v, -B…, -N…, -R…, -X…, -L…) are
// accepted; an unknown one is an error naming it.
func ParseArgs(args []string) (*Invocation, error) {
	inv := &Invocation{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			inv.Rcpts = append(inv.Rcpts, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			inv.Rcpts = append(inv.Rcpts, a)
			continue
		}
		// value takes an option's argument, attached ("-fme") or next.
		value := func(opt string) (string, error) {
			if len(a) > len(opt) {
				return a[len(opt):], nil
			}
			if i+1 >= len(args) {
				return "", usageError("sendmail: option %s needs a value", opt)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case strings.HasPrefix(a, "-f"), strings.HasPrefix(a, "-r"):
			inv.From, err = value(a[:2])
		case strings.HasPrefix(a, "-F"):
			inv.FullName, err = value("-F")
		case a == "-t":
			inv.FromHeaders = true
		case a == "-i", a == "-oi":
			inv.IgnoreDots = true
		case strings.HasPrefix(a, "-o"), a == "-v", strings.HasPrefix(a, "-B"),
			strings.HasPrefix(a, "-N"), strings.HasPrefix(a, "-R"), strings.HasPrefix(a, "-X"),
			strings.HasPrefix(a, "-L"), a == "-m", a == "-U", a == "-G":
			// accepted and ignored, as Postfix's sendmail does
		case strings.HasPrefix(a, "-V"):
			// -V envid: ignored
			if a == "-V" && i+1 < len(args) {
				i++
			}
		default:
			return nil, usageError("sendmail: unknown option %q (supported: -f, -F, -t, -i, -oi)", a)
		}
		if err != nil {
			return nil, err
		}
	}
	return inv, nil
}

// maxMessage bounds what is read from standard input.
const maxMessage = 64 << 20

// Message is an envelope and its message, ready to queue.
type Message struct {
	From  string
	Rcpts []string
	Data  []byte
}

// Defaults complete what a message leaves out.
type Defaults struct {
	// From is the envelope sender without -f, and the From: header's
	// address when there is none.
	From string
	// Date is the Date: header's value when there is none.
	Date string
	// MessageID is the Message-ID: header's value when there is none,
	// like NewMessageID's.
	MessageID string
}

// Read reads the message from r and completes the envelope: the sender
// defaults to d.From; with -t the To, Cc and Bcc headers add recipients
// and Bcc is removed; line endings become CRLF; a From:, Date: or
// Message-ID: header is added from d when missing. Errors are *Error with
// sendmail's exit status.
func (inv *Invocation) Read(r io.Reader, d Defaults) (*Message, error) {
	raw, err := readInput(r, inv.IgnoreDots)
	if err != nil {
		return nil, err
	}
	m := &Message{From: inv.From, Rcpts: append([]string(nil), inv.Rcpts...)}
	if m.From == "" {
		m.From = d.From
	}
	hdr, body := splitHeader(raw)
	parsed, _ := mail.ReadMessage(bytes.NewReader(append(append([]byte(nil), hdr...), '\n')))
	if inv.FromHeaders && parsed != nil {
		for _, key := range []string{"To", "Cc", "Bcc"} {
			list, err := parsed.Header.AddressList(key)
			if err != nil && !errors.Is(err, mail.ErrHeaderNotPresent) {
				return nil, &Error{Code: ExDataErr, Err: fmt.Errorf("sendmail: -t: header %s: %v", key, err)}
			}
			for _, a := range list {
				m.Rcpts = append(m.Rcpts, a.Address)
			}
		}
		hdr = dropHeader(hdr, "Bcc")
	}
	if len(m.Rcpts) == 0 {
		return nil, usageError("sendmail: no recipients: name them as arguments, or use -t to take them from To, Cc and Bcc")
	}
	var out bytes.Buffer
	if parsed == nil || parsed.Header.Get("From") == "" {
		from := "<" + m.From + ">"
		if inv.FullName != "" {
			from = (&mail.Address{Name: inv.FullName, Address: m.From}).String()
		}
		out.WriteString("From: " + from + "\r\n")
	}
	if parsed == nil || parsed.Header.Get("Date") == "" {
		out.WriteString("Date: " + d.Date + "\r\n")
	}
	if (parsed == nil || parsed.Header.Get("Message-ID") == "") && d.MessageID != "" {
		out.WriteString("Message-ID: " + d.MessageID + "\r\n")
	}
	out.Write(hdr)
	out.WriteString("\r\n")
	out.Write(body)
	m.Data = out.Bytes()
	return m, nil
}

// readInput reads lines up to the end (or a lone "." unless ignoreDots),
// turning every line ending into CRLF.
func readInput(r io.Reader, ignoreDots bool) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, maxMessage+1))
	var out bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			text := strings.TrimRight(line, "\r\n")
			if !ignoreDots && text == "." {
				break
			}
			// A bare CR inside a line is a line break too, as smtpd's
			// bare_newline = "normalize" treats it: no bare CR reaches the queue.
			out.WriteString(strings.ReplaceAll(text, "\r", "\r\n"))
			out.WriteString("\r\n")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &Error{Code: ExIOErr, Err: fmt.Errorf("sendmail: reading the message: %v", err)}
		}
		if out.Len() > maxMessage {
			return nil, &Error{Code: ExDataErr, Err: fmt.Errorf("sendmail: message over %d bytes", maxMessage)}
		}
	}
	return out.Bytes(), nil
}

// splitHeader splits at the first empty line; the header keeps its CRLFs
// (without the empty line), the body follows it.
func splitHeader(msg []byte) (hdr, body []byte) {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return nil, msg[2:]
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2], msg[i+4:]
	}
	return msg, nil
}

// dropHeader removes every field named name (and its continuation lines).
func dropHeader(hdr []byte, name string) []byte {
	var out bytes.Buffer
	skip := false
	for _, line := range bytes.SplitAfter(hdr, []byte("\r\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skip {
				out.Write(line)
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		skip = colon > 0 && strings.EqualFold(strings.TrimSpace(string(line[:colon])), name)
		if !skip {
			out.Write(line)
		}
	}
	return out.Bytes()
}
