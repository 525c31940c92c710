package sendmail

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Exit statuses of sendmail(1), from sysexits.h: what scripts, cron and
// PHP's mail() test.
const (
	// ExUsage: a bad command line (unknown option, no recipients).
	ExUsage = 64
	// ExDataErr: bad input (an unreadable header, a message too large, or
	// one the server refuses).
	ExDataErr = 65
	// ExIOErr: standard input could not be read.
	ExIOErr = 74
	// ExTempFail: the mail server is not running or was lost; try later.
	ExTempFail = 75
	// ExNoPerm: no permission to use the admin socket.
	ExNoPerm = 77
	// ExConfig: the configuration does not load.
	ExConfig = 78
)

// Error is a failure with the exit status sendmail(1) gives it. It
// satisfies urfave/cli's ExitCoder.
type Error struct {
	// Code is one of the Ex… statuses.
	Code int
	// Err says what went wrong, for standard error.
	Err error
}

// Error returns the message.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the exit status.
func (e *Error) ExitCode() int { return e.Code }

// usageError is an ExUsage error.
func usageError(format string, args ...any) *Error {
	return &Error{Code: ExUsage, Err: fmt.Errorf(format, args...)}
}

// NewMessageID returns a new Message-ID for a message from host,
// "<20260102150405.0123456789abcdef@host>": the time, 64 random bits and
// the host name.
func NewMessageID(host string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "<" + time.Now().UTC().Format("20060102150405") + "." + hex.EncodeToString(b[:]) + "@" + host + ">"
}
