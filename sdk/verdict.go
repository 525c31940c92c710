package sdk

import (
	"strconv"

	"github.com/sluice-mta/sluice/pluginapi"
)

// Verdict is a handler's answer: what to do, and for Reject, Tempfail and
// Disconnect the SMTP reply. Build one with the constructors below.
type Verdict struct {
	// Kind is the verdict code.
	Kind pluginapi.Verdict
	// Code, Enhanced and Text are the SMTP reply (Code 0: the host's
	// default reply for Kind).
	Code     int
	Enhanced string
	Text     string
}

// String names the verdict and its reply, e.g. "reject 550 5.7.1 no".
func (v Verdict) String() string {
	s := v.Kind.String()
	if v.Code != 0 {
		s += " " + strconv.Itoa(v.Code)
		if v.Enhanced != "" {
			s += " " + v.Enhanced
		}
		if v.Text != "" {
			s += " " + v.Text
		}
	}
	return s
}

// Continue means no objection: the next plugin runs.
func Continue() Verdict { return Verdict{Kind: pluginapi.Continue} }

// Accept skips the remaining plugins for this stage.
func Accept() Verdict { return Verdict{Kind: pluginapi.Accept} }

// Reject refuses with a 5xx reply, e.g. Reject(550, "5.7.1", "no such user").
// The host checks the reply: a code outside 500-599, an enhanced code of
// another class or text with control characters gets the default reply
// 550 5.7.1.
func Reject(code int, enhanced, text string) Verdict {
	return Verdict{Kind: pluginapi.Reject, Code: code, Enhanced: enhanced, Text: text}
}

// Tempfail refuses with a 4xx reply, e.g. Tempfail(451, "4.7.1", "try later").
// An invalid reply gets the default 451 4.7.1.
func Tempfail(code int, enhanced, text string) Verdict {
	return Verdict{Kind: pluginapi.Tempfail, Code: code, Enhanced: enhanced, Text: text}
}

// Discard answers 250 but drops the message (at rcpt: the recipient).
func Discard() Verdict { return Verdict{Kind: pluginapi.Discard} }

// Quarantine accepts the message but keeps it held in the queue.
func Quarantine() Verdict { return Verdict{Kind: pluginapi.Quarantine} }

// Disconnect answers "421 4.7.0 text" and closes the connection.
func Disconnect(text string) Verdict {
	return Verdict{Kind: pluginapi.Disconnect, Code: 421, Enhanced: "4.7.0", Text: text}
}

// Errors returned by Ctx methods are pluginapi.Status values; compare them
// with errors.Is.
const (
	// ErrNotFound: no such header, note, key or config key.
	ErrNotFound = pluginapi.StatusNotFound
	// ErrDenied: the plugin's configuration does not grant the capability.
	ErrDenied = pluginapi.StatusDenied
	// ErrBadArgument: the host refused a name or value.
	ErrBadArgument = pluginapi.StatusBadArgument
	// ErrWrongStage: the call is not available at this hook.
	ErrWrongStage = pluginapi.StatusWrongStage
	// ErrTempFail: a temporary failure (DNS timeout, store busy).
	ErrTempFail = pluginapi.StatusTempFail
	// ErrTooLarge: a value over the host's limit.
	ErrTooLarge = pluginapi.StatusTooLarge
)

// statusErr turns a status into an error (nil for StatusOK). The known
// ones are boxed once: converting a negative Status to an error at each
// call is a heap allocation in a Go guest (a header delete that finds
// nothing, at every message of a load, was one; BENCHMARKS.md, "The
// non-KV host path").
func statusErr(st pluginapi.Status) error {
	if st == pluginapi.StatusOK {
		return nil
	}
	if i := -int(st); i > 0 && i < len(statusErrs) {
		return statusErrs[i]
	}
	return st
}

// statusErrs holds each known failure Status as an error, by -Status.
var statusErrs = [...]error{nil, ErrNotFound, ErrDenied, ErrBadArgument, ErrWrongStage, ErrTempFail, ErrTooLarge}
