package auth

import (
	"strings"

	"github.com/sluice-mta/sluice/core/mail"
)

// authservID returns the authserv-id an Authentication-Results value starts
// with (RFC 8601 section 2.2): a token or quoted-string after optional
// comments and white space. It returns "" when there is none.
func authservID(v string) string {
	v = skipCFWS(v)
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case '"':
				return b.String()
			default:
				b.WriteByte(c)
			}
		}
		return "" // unterminated
	}
	end := strings.IndexAny(v, " \t\r\n;()\"")
	if end < 0 {
		end = len(v)
	}
	return v[:end]
}

// skipCFWS drops leading white space and (possibly nested) comments.
func skipCFWS(v string) string {
	depth := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '\\' && depth > 0:
			i++
		case depth > 0, c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			return v[i:]
		}
	}
	return ""
}

// removeAuthResults deletes from h the Authentication-Results fields
// whose authserv-id is host (compared without case or final dot), as RFC
// 8601 section 5 asks of a border MTA: such fields can only be forged. It
// returns how many it deleted; the other fields keep their bytes.
func removeAuthResults(h *mail.Header, host string) int {
	return h.DelFunc(func(f mail.Field) bool {
		return strings.EqualFold(f.Name, "Authentication-Results") &&
			strings.EqualFold(strings.TrimSuffix(authservID(f.Unfolded()), "."), host)
	})
}
