package queue

import (
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// Observer is told what the queue does, for metrics (the server hands it
// core/metrics). Its methods must return quickly and must not call back
// into the queue.
type Observer interface {
	// Committed is told how long a new message took to become durable
	// (Enqueue's synced commit, before the client's 250).
	Committed(d time.Duration)
	// Recorded is told of each recipient's delivery attempt once its
	// outcome is committed, once per attempt.
	Recorded(d Delivery)
}

// Delivery is one recipient's recorded delivery attempt.
type Delivery struct {
	// ID is the message's queue ID, Rcpt the recipient.
	ID, Rcpt string
	// Status is the outcome: Sent, Deferred or Bounced (an expired
	// recipient is Bounced).
	Status mail.Status
	// Relay is where it went ("" for nowhere), DSN the enhanced status
	// code, Text the reply or reason.
	Relay, DSN, Text string
	// Delay is the time since the message arrived.
	Delay time.Duration
	// At is when the outcome was recorded (the queue's clock).
	At time.Time
}

// observeCommit reports an Enqueue's commit time.
func (q *Queue) observeCommit(d time.Duration) {
	if q.opts.Observer != nil {
		q.opts.Observer.Committed(d)
	}
}
