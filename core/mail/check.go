package mail

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// The address checks of the SMTP server, shared with the filter host, which
// applies them to the recipients plugins add or rewrite.

// Limits from RFC 5321 §4.5.3.1.
const (
	// MaxLocalPart is the longest local part.
	MaxLocalPart = 64
	maxDomain    = 255
	maxLabel     = 63
)

// Replies refusing an address (CheckAddress, CheckSender, CheckDomain),
// as the SMTP server sends them; callers may compare with them.
var (
	ReplyAddrSyntax   = NewReply(553, "5.1.3", "Bad address syntax")
	ReplyDomainSyntax = NewReply(553, "5.1.3", "Bad domain syntax in address")
	ReplyLocalUnsafe  = NewReply(553, "5.1.3",
		"Local part contains characters not allowed here (/, \\, control characters, leading or double dots)")
	ReplyRouting = NewReply(554, "5.7.1", "Relay access denied: routing characters (%, !, @) in local part")
)

// CheckAddress checks a recipient as an SMTP server takes it at RCPT: it
// splits a mailbox as go-smtp hands it over (quotes removed,
// source route already dropped) into its local part and its domain, the
// domain lowercased when it is ASCII. It refuses everything that could route
// mail somewhere else than the domain says (the percent hack, bang paths, an
// "@" inside a quoted local part) and everything that could escape a Maildir
// path (/, \, leading or doubled dots, control characters, NUL). A
// refusal is the reply to send.
func CheckAddress(addr string) (local, domain string, reply *Reply) {
	local, domain, ok := Split(addr)
	if !ok || local == "" || domain == "" {
		return "", "", ReplyAddrSyntax
	}
	if domain, reply = CheckDomain(domain); reply != nil {
		return "", "", reply
	}
	if reply := checkLocal(local); reply != nil {
		return "", "", reply
	}
	return local, domain, nil
}

// RcptForm is addr as the SMTP server passes a recipient on after RCPT
// TO (to the rcpt-stage plugins as their rcpt property, to addressing):
// the local part as sent, the domain in lower case (CheckAddress); addr
// itself when CheckAddress refuses it. Offline runs of plugins (sdktest,
// sluice plugin test) use it to show them what the server would.
func RcptForm(addr string) string {
	if local, domain, reply := CheckAddress(addr); reply == nil {
		return local + "@" + domain
	}
	return addr
}

// checkLocal applies CheckAddress's rules to a local part.
func checkLocal(local string) *Reply {
	if len(local) == 0 || len(local) > MaxLocalPart || !utf8.ValidString(local) {
		return ReplyAddrSyntax
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return ReplyLocalUnsafe
	}
	for i := 0; i < len(local); i++ {
		switch c := local[i]; {
		case c == '%' || c == '!' || c == '@':
			return ReplyRouting
		case c == '/' || c == '\\' || c < 0x20 || c == 0x7f:
			return ReplyLocalUnsafe
		case c == ' ' || c == '"' || c == '<' || c == '>' || c == '(' || c == ')' ||
			c == ',' || c == ';' || c == ':' || c == '[' || c == ']':
			return ReplyAddrSyntax
		}
	}
	return nil
}

// CheckDomain validates a domain (LDH labels, UTF-8 labels for SMTPUTF8, or
// an address literal) and returns it with ASCII letters lowercased.
func CheckDomain(d string) (string, *Reply) {
	if len(d) == 0 || len(d) > maxDomain || !utf8.ValidString(d) {
		return "", ReplyDomainSyntax
	}
	if d[0] == '[' {
		if !validAddrLiteral(d) {
			return "", ReplyDomainSyntax
		}
		return strings.ToLower(d), nil
	}
	label := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 || d[i-1] == '-' {
				return "", ReplyDomainSyntax
			}
			label = 0
			continue
		case c == '-':
			if label == 0 {
				return "", ReplyDomainSyntax
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		default:
			return "", ReplyDomainSyntax
		}
		label++
		if label > maxLabel {
			return "", ReplyDomainSyntax
		}
	}
	if label == 0 || d[len(d)-1] == '-' {
		return "", ReplyDomainSyntax
	}
	return strings.ToLower(d), nil
}

// validAddrLiteral reports whether d is "[IPv4]" or "[IPv6:addr]".
func validAddrLiteral(d string) bool {
	if len(d) < 3 || d[len(d)-1] != ']' {
		return false
	}
	in := d[1 : len(d)-1]
	if v6, ok := cutPrefixFold(in, "IPv6:"); ok {
		a, err := netip.ParseAddr(v6)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	a, err := netip.ParseAddr(in)
	return err == nil && a.Is4()
}

// cutPrefixFold is strings.CutPrefix ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// CheckSender validates a MAIL FROM address: "" (the null sender) passes;
// anything else needs a local part free of control characters and a valid
// domain. Senders are not routed to, so routing characters are allowed. A
// refusal is the reply to send.
func CheckSender(addr string) *Reply {
	if addr == "" {
		return nil
	}
	local, domain, ok := Split(addr)
	if !ok || local == "" || domain == "" || len(local) > MaxLocalPart || !utf8.ValidString(addr) {
		return ReplyAddrSyntax
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; c < 0x20 || c == 0x7f || c == ' ' {
			return ReplyAddrSyntax
		}
	}
	_, reply := CheckDomain(domain)
	return reply
}

// MaxLineLength is the longest line of a message RFC 5322 allows, without
// its CRLF.
const MaxLineLength = 998

// Field refusals (CheckField).
var (
	ErrFieldName    = errors.New("a field name is 1 to 256 printable ASCII characters without ':'")
	ErrFieldControl = errors.New("a field value may not hold control characters, invalid UTF-8, or line breaks other than folding (CRLF followed by a space or tab)")
	ErrFieldFold    = errors.New("a folded line of a field value must hold more than white space, and the value may not end with a line break")
	ErrFieldLine    = errors.New("a line of a field may not exceed 998 octets")
)

// CheckField checks a field that comes from outside (a plugin) before it is
// written with NewField: a name of printable ASCII without ':', and a value
// of UTF-8 text (RFC 6532) without control characters (HTAB allowed),
// folded only as CRLF followed by a space or tab, every line of the field
// at most MaxLineLength octets, the first counted with "Name: ".
func CheckField(name, value string) error {
	if name == "" || len(name) > 256 {
		return ErrFieldName
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return ErrFieldName
		}
	}
	if !utf8.ValidString(value) {
		return ErrFieldControl
	}
	line := len(name) + 2 // "Name: "
	for i, r := range value {
		switch {
		case r == '\r':
			if i+2 >= len(value) || value[i+1] != '\n' || (value[i+2] != ' ' && value[i+2] != '\t') {
				return ErrFieldControl
			}
			next, _, _ := strings.Cut(value[i+2:], "\r")
			if strings.TrimLeft(next, " \t") == "" {
				return ErrFieldFold
			}
			line = -1 // the LF that follows starts the next line at 0
			continue
		case r == '\n':
			if i == 0 || value[i-1] != '\r' {
				return ErrFieldControl
			}
			line = 0
			continue
		case r < 0x20 && r != '\t', r == 0x7f, r >= 0x80 && r <= 0x9f:
			return ErrFieldControl
		}
		line += utf8.RuneLen(r)
		if line > MaxLineLength {
			return ErrFieldLine
		}
	}
	return nil
}
