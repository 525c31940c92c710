// Package mail is the core's shared vocabulary: the envelope, message and
// recipient types the queue stores and the transports deliver, the
// Deliverer interface between them, one SMTP reply type (code, enhanced
// code, text), the address helpers and a header model parsed once.
//
// It is a leaf: it imports only the standard library, so the queue, the
// transports, the SMTP server and the filter host can all share it without
// importing each other (the role chasquid's internal/courier and
// internal/envelope play, and maddy's exterrors).
package mail
