package admin

import (
	"context"
	"fmt"
	"log/slog"
)

// Op is one of the queue operations the admin API offers; the dashboard's
// buttons run the same ones through Actions.
type Op string

// The operations on one message.
const (
	OpHold    Op = "hold"
	OpRelease Op = "release"
	OpBounce  Op = "bounce"
	OpRemove  Op = "remove"
)

// Ops lists the operations on one message.
var Ops = []Op{OpHold, OpRelease, OpBounce, OpRemove}

// Actions carries out the admin operations on a queue and logs each with
// who asked for it. The admin socket and the dashboard share it, so an
// operation does the same from `sluice queue` and from the browser.
type Actions struct {
	Queue Queue
	Log   *slog.Logger
}

// Do applies op to message id; by names who asked ("socket", or the
// dashboard's "http:USER").
func (a Actions) Do(ctx context.Context, op Op, id, by string) error {
	var f func(context.Context, string) error
	switch op {
	case OpHold:
		f = a.Queue.Hold
	case OpRelease:
		f = a.Queue.Release
	case OpBounce:
		f = a.Queue.Bounce
	case OpRemove:
		f = a.Queue.Remove
	default:
		return fmt.Errorf("admin: unknown operation %q", op)
	}
	if err := f(ctx, id); err != nil {
		return err
	}
	a.Log.Info("admin", "op", string(op), "id", id, "by", by)
	return nil
}

// Flush makes due now every message that is not held, or with domain set
// those with a pending recipient in domain.
func (a Actions) Flush(ctx context.Context, domain, by string) error {
	var err error
	if domain == "" {
		err = a.Queue.Flush(ctx)
	} else {
		err = a.Queue.FlushDomain(ctx, domain)
	}
	if err != nil {
		return err
	}
	a.Log.Info("admin", "op", "flush", "domain", domain, "by", by)
	return nil
}
