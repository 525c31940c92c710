package smtpd

import (
	"net/netip"
	"time"
)

// receivedInfo is what a Received header says about one message.
type receivedInfo struct {
	Helo     string
	ClientIP netip.Addr
	Hostname string
	TLS      bool
	Auth     bool
	UTF8     bool
	ID       string
	// Rcpt is named in the "for" clause; "" leaves it out (several
	// recipients are not disclosed to each other).
	Rcpt string
	Date time.Time
}

// appendReceived appends an RFC 5321 §4.4 Received header, CRLF-terminated
// and folded, to dst:
//
//	Received: from HELO ([IP])
//		by HOSTNAME (Sluice) with ESMTPS id ID
//		for <RCPT>; Mon, 02 Jan 2006 15:04:05 -0700
//
// The protocol is ESMTP with S for TLS and A for authentication (RFC 3848),
// or UTF8SMTP… when the transaction used SMTPUTF8 (RFC 6531).
func appendReceived(dst []byte, ri receivedInfo) []byte {
	dst = append(dst, "Received: from "...)
	dst = appendSafe(dst, ri.Helo, false)
	dst = append(dst, " (["...)
	if ri.ClientIP.Is6() && !ri.ClientIP.Is4In6() {
		dst = append(dst, "IPv6:"...)
	}
	dst = ri.ClientIP.Unmap().AppendTo(dst)
	dst = append(dst, "])\r\n\tby "...)
	dst = appendSafe(dst, ri.Hostname, false)
	dst = append(dst, " (Sluice) with "...)
	if ri.UTF8 {
		dst = append(dst, "UTF8SMTP"...)
	} else {
		dst = append(dst, "ESMTP"...)
	}
	if ri.TLS {
		dst = append(dst, 'S')
	}
	if ri.Auth {
		dst = append(dst, 'A')
	}
	if ri.ID != "" {
		dst = append(dst, " id "...)
		dst = append(dst, ri.ID...)
	}
	if ri.Rcpt != "" {
		dst = append(dst, "\r\n\tfor <"...)
		dst = appendSafe(dst, ri.Rcpt, ri.UTF8)
		dst = append(dst, '>')
	}
	dst = append(dst, "; "...)
	dst = ri.Date.AppendFormat(dst, time.RFC1123Z)
	return append(dst, "\r\n"...)
}

// appendSafe appends s with every byte that could break the header (control
// characters, parentheses, angle brackets, and non-ASCII unless utf8 is set)
// replaced by '?'. An empty s is written as "unknown".
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
