package mail

import (
	"net/netip"
	"time"
)

// Trace is what a Received field records about one hop of a message
// (RFC 5321 section 4.4).
type Trace struct {
	// Helo and ClientIP name the sending client in the "from" clause;
	// both zero leave the clause out (a message that did not come over
	// the network). ClientName is the client's verified reverse DNS name,
	// written before the address; "" writes "unknown", as Postfix does.
	Helo       string
	ClientName string
	ClientIP   netip.Addr
	// By is this host's name. Comment follows it in parentheses; ""
	// means "Sluice".
	By      string
	Comment string
	// With is the protocol (see Protocol); "" leaves the clause out.
	With string
	// ID is the queue ID; "" leaves it out.
	ID string
	// Rcpt is named in the "for" clause; "" leaves it out (several
	// recipients are not disclosed to each other).
	Rcpt string
	// UTF8 lets Rcpt keep its non-ASCII characters (SMTPUTF8).
	UTF8 bool
	Date time.Time
}

// protocols are the "with" values of Protocol, indexed by utf8<<2|tls<<1|auth.
var protocols = [8]string{"ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA", "UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA"}

// Protocol names the "with" protocol of an SMTP transaction: ESMTP, with S
// for TLS and A for authentication (RFC 3848), or UTF8SMTP… when it used
// SMTPUTF8 (RFC 6531).
func Protocol(utf8, tls, auth bool) string {
	i := 0
	if utf8 {
		i |= 4
	}
	if tls {
		i |= 2
	}
	if auth {
		i |= 1
	}
	return protocols[i]
}

// AppendReceived appends the Received field for t to dst, folded and
// CRLF-terminated:
//
//	Received: from HELO (NAME [IP])
//		by HOSTNAME (Sluice) with ESMTPS id ID
//		for <RCPT>; Mon, 02 Jan 2006 15:04:05 -0700
//
// Every value that could break the field (control characters,
// parentheses, angle brackets, ';', and non-ASCII unless UTF8 allows it in
// Rcpt) is written as '?'; an empty name as "unknown".
func AppendReceived(dst []byte, t Trace) []byte {
	dst = append(dst, "Received: "...)
	if t.Helo != "" || t.ClientIP.IsValid() {
		dst = append(dst, "from "...)
		dst = appendSafe(dst, t.Helo, false)
		dst = append(dst, " ("...)
		dst = appendSafe(dst, t.ClientName, false)
		dst = append(dst, " ["...)
		if t.ClientIP.Is6() && !t.ClientIP.Is4In6() {
			dst = append(dst, "IPv6:"...)
		}
		dst = t.ClientIP.Unmap().AppendTo(dst)
		dst = append(dst, "])\r\n\t"...)
	}
	dst = append(dst, "by "...)
	dst = appendSafe(dst, t.By, false)
	dst = append(dst, " ("...)
	if t.Comment == "" {
		dst = append(dst, "Sluice"...)
	} else {
		dst = appendComment(dst, t.Comment)
	}
	dst = append(dst, ')')
	if t.With != "" {
		dst = append(dst, " with "...)
		dst = appendSafe(dst, t.With, false)
	}
	if t.ID != "" {
		dst = append(dst, " id "...)
		dst = appendSafe(dst, t.ID, false)
	}
	if t.Rcpt != "" {
		dst = append(dst, "\r\n\tfor <"...)
		dst = appendSafe(dst, t.Rcpt, t.UTF8)
		dst = append(dst, '>')
	}
	dst = append(dst, "; "...)
	dst = t.Date.AppendFormat(dst, time.RFC1123Z)
	return append(dst, "\r\n"...)
}

// appendSafe appends s with every byte that could break the field
// (control characters, space, parentheses, angle brackets, ';', and
// non-ASCII unless utf8 is set) replaced by '?'. An empty s is written as
// "unknown".
func appendSafe(dst []byte, s string, utf8 bool) []byte {
	if s == "" {
		return append(dst, "unknown"...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || c > 0x7f && !utf8 || c == '(' || c == ')' || c == '<' || c == '>' || c == ';' {
			c = '?'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendComment appends the text of a comment: printable ASCII and
// spaces, parentheses and backslashes written as '?'.
func appendComment(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '(' || c == ')' || c == '\\' {
			c = '?'
		}
		dst = append(dst, c)
	}
	return dst
}

// ReturnPath returns the value of the Return-Path field with which final
// delivery records the envelope sender (RFC 5321 section 4.4):
// "<sender>", and "<>" for the null sender of a bounce. Control characters
// are written as '?', so that the field stays one line.
func ReturnPath(sender string) string {
	b := make([]byte, 0, len(sender)+2)
	b = append(b, '<')
	for i := 0; i < len(sender); i++ {
		c := sender[i]
		if c < ' ' || c == 0x7f {
			c = '?'
		}
		b = append(b, c)
	}
	return string(append(b, '>'))
}
