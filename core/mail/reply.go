package mail

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// EnhancedCode is an RFC 3463 enhanced status code: class, subject,
// detail. The zero value means "not set".
type EnhancedCode [3]int

// IsZero reports whether the code is unset.
func (e EnhancedCode) IsZero() bool { return e == EnhancedCode{} }

// String formats the code as "5.1.1", or "" when unset.
func (e EnhancedCode) String() string {
	if e.IsZero() {
		return ""
	}
	return strconv.Itoa(e[0]) + "." + strconv.Itoa(e[1]) + "." + strconv.Itoa(e[2])
}

// ParseEnhanced parses "class.subject.detail" (RFC 3463: class 2, 4 or 5,
// subject and detail of one to three digits).
func ParseEnhanced(s string) (EnhancedCode, error) {
	var e EnhancedCode
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return EnhancedCode{}, fmt.Errorf("enhanced status code %q: want class.subject.detail", s)
	}
	for i, p := range parts {
		if p == "" || len(p) > 3 || (i == 0 && len(p) != 1) {
			return EnhancedCode{}, fmt.Errorf("enhanced status code %q: bad field %q", s, p)
		}
		for j := 0; j < len(p); j++ {
			if p[j] < '0' || p[j] > '9' {
				return EnhancedCode{}, fmt.Errorf("enhanced status code %q: bad field %q", s, p)
			}
		}
		e[i], _ = strconv.Atoi(p)
	}
	if e[0] != 2 && e[0] != 4 && e[0] != 5 {
		return EnhancedCode{}, fmt.Errorf("enhanced status code %q: class must be 2, 4 or 5", s)
	}
	return e, nil
}

// MustEnhanced is ParseEnhanced for constants; it panics on a bad code.
func MustEnhanced(s string) EnhancedCode {
	e, err := ParseEnhanced(s)
	if err != nil {
		panic(err)
	}
	return e
}

// CutEnhanced splits a leading enhanced status code off a reply text, as
// servers write it ("5.1.1 User unknown"). ok is false, and text is
// returned unchanged, when the text does not start with one.
func CutEnhanced(text string) (code EnhancedCode, rest string, ok bool) {
	word, after, _ := strings.Cut(text, " ")
	e, err := ParseEnhanced(word)
	if err != nil {
		return EnhancedCode{}, text, false
	}
	return e, strings.TrimLeft(after, " "), true
}

// MaxReplyText is the longest reply text the core sends (RFC 5321 allows
// 512 octets a line with the code).
const MaxReplyText = 400

// Reply is one SMTP reply: the basic code, the enhanced code and the text.
// It is the core's single reply type: sessions answer with it, the filter
// host checks plugins' replies into it and transports report remote
// answers with it. A *Reply is an error, so a stage can return it.
type Reply struct {
	Code     int
	Enhanced EnhancedCode
	Text     string
}

// NewReply builds a Reply from constants; it panics on a bad enhanced code.
func NewReply(code int, enhanced, text string) *Reply {
	return &Reply{Code: code, Enhanced: MustEnhanced(enhanced), Text: text}
}

// Error formats the reply as it goes on the wire, on one line: "550 5.1.1 text".
func (r *Reply) Error() string { return r.String() }

// String formats the reply as "550 5.1.1 text" (no enhanced code when unset).
func (r Reply) String() string {
	s := strconv.Itoa(r.Code)
	if !r.Enhanced.IsZero() {
		s += " " + r.Enhanced.String()
	}
	if r.Text != "" {
		s += " " + r.Text
	}
	return s
}

// Temporary reports a 4xx reply; Permanent a 5xx one.
func (r Reply) Temporary() bool { return r.Code/100 == 4 }

// Permanent reports a 5xx reply.
func (r Reply) Permanent() bool { return r.Code/100 == 5 }

// Reply validation errors.
var (
	ErrReplyCode  = errors.New("reply code must be 2xx, 4xx or 5xx")
	ErrReplyClass = errors.New("enhanced code class must match the reply code")
	ErrReplyText  = errors.New("reply text must be printable ASCII without line breaks, at most 400 bytes")
)

// Check validates a reply before it reaches the wire: a 2xx, 4xx or 5xx
// code, an enhanced code of the same class (or none), and a text of
// printable ASCII (RFC 5321 section 4.2) no longer than MaxReplyText.
func (r Reply) Check() error {
	class := r.Code / 100
	if r.Code < 200 || r.Code > 599 || class == 3 {
		return ErrReplyCode
	}
	if !r.Enhanced.IsZero() && r.Enhanced[0] != class {
		return ErrReplyClass
	}
	if len(r.Text) > MaxReplyText {
		return ErrReplyText
	}
	for i := 0; i < len(r.Text); i++ {
		if c := r.Text[i]; c < 0x20 || c > 0x7e {
			return ErrReplyText
		}
	}
	return nil
}

// WireReply builds the Reply of a server's answer as an SMTP client
// library reports it (go-smtp's SMTPError: code, enhanced code with -1s
// when absent, message). Folded text is joined on one line. An enhanced
// code that is absent or of another class than the code is replaced by
// the one RFC 3463 derives from the basic code.
func WireReply(code int, enhanced [3]int, text string) Reply {
	r := Reply{Code: code, Text: strings.Join(strings.Fields(text), " ")}
	e := EnhancedCode(enhanced)
	if e[0] == code/100 && e[1] >= 0 && e[2] >= 0 && (e[0] == 2 || e[0] == 4 || e[0] == 5) {
		r.Enhanced = e
	} else {
		r.Enhanced = DerivedEnhanced(code)
	}
	return r
}

// DerivedEnhanced maps a basic reply code to an enhanced one (RFC 3463),
// for replies that carry none.
func DerivedEnhanced(code int) EnhancedCode {
	switch code {
	case 421:
		return EnhancedCode{4, 4, 2}
	case 450:
		return EnhancedCode{4, 2, 0}
	case 451:
		return EnhancedCode{4, 3, 0}
	case 452:
		return EnhancedCode{4, 3, 1}
	case 550:
		return EnhancedCode{5, 2, 0}
	case 552:
		return EnhancedCode{5, 3, 4}
	case 553:
		return EnhancedCode{5, 1, 3}
	}
	switch code / 100 {
	case 2:
		return EnhancedCode{2, 0, 0}
	case 5:
		return EnhancedCode{5, 0, 0}
	}
	return EnhancedCode{4, 0, 0}
}
