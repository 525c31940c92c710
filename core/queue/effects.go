package queue

import (
	"context"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sluice-mta/sluice/core/logctx"
)

// effects are what a transaction does besides reading and writing: log
// lines and a scheduler wake-up. Badger runs a transaction's function again
// after a conflict, so the function only collects them; they are done once,
// after the commit, so that nothing is logged twice and no line names a
// record (a bounce's ID) that was never stored.
type effects struct {
	logs       []logLine
	kick       bool
	deliveries []Delivery // for Options.Observer
	// retry is when a recorded attempt's message is due again (zero:
	// not rescheduled); the worker tells the scheduler (wakeAt).
	retry time.Time
}

// logLine is one line to log, its attributes taken when it was collected:
// as arguments (args) or, for the lines of every message, as attributes
// (attrs: no allocation for each value).
type logLine struct {
	level slog.Level
	msg   string
	args  []any
	attrs []slog.Attr
}

// info collects an info line.
func (fx *effects) info(msg string, args ...any) { fx.log(slog.LevelInfo, msg, args...) }

// infoAttrs collects an info line given as attributes.
func (fx *effects) infoAttrs(msg string, attrs ...slog.Attr) {
	fx.logs = append(fx.logs, logLine{level: slog.LevelInfo, msg: msg, attrs: attrs})
}

// log collects a line at level.
func (fx *effects) log(level slog.Level, msg string, args ...any) {
	fx.logs = append(fx.logs, logLine{level: level, msg: msg, args: args})
}

// do logs the collected lines, wakes the scheduler if asked to and tells
// the observer of the deliveries recorded.
func (q *Queue) do(fx *effects) {
	for _, l := range fx.logs {
		if l.attrs != nil {
			logctx.InfoAttrs(context.Background(), q.log, l.msg, l.attrs...)
			continue
		}
		if l.level == slog.LevelInfo { // the lines of every message: no caller lookup
			logctx.Info(context.Background(), q.log, l.msg, l.args...)
			continue
		}
		q.log.Log(context.Background(), l.level, l.msg, l.args...)
	}
	if fx.kick {
		q.kick()
	}
	if o := q.opts.Observer; o != nil {
		for _, d := range fx.deliveries {
			o.Recorded(d)
		}
	}
}

// commitFx is commit for a function with effects: each run of fn collects
// afresh, and the effects of the run that committed are done.
func (q *Queue) commitFx(ctx context.Context, fn func(txn *badger.Txn, fx *effects) error) error {
	var fx *effects
	err := q.commit(ctx, func(txn *badger.Txn) error {
		fx = new(effects)
		return fn(txn, fx)
	})
	if err != nil {
		return err
	}
	q.do(fx)
	return nil
}

// updateFx is update for a function with effects; they are done once the
// transaction has committed, before waiting for it to be synced. It counts
// the commit in q.gen (handoff.go).
func (q *Queue) updateFx(ctx context.Context, fn func(txn *badger.Txn, fx *effects) error) error {
	if err := q.commitFx(ctx, fn); err != nil {
		return err
	}
	q.gen.Add(1)
	if q.opts.badgerSyncWrites {
		return nil
	}
	return q.gs.wait()
}
