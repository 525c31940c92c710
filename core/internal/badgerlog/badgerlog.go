// Package badgerlog sends a Badger database's log lines to slog, for the
// queue's database and the plugin KV's own.
package badgerlog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// New returns a badger.Logger writing to l with the attribute
// component=component. Badger's errors and warnings keep their level; its
// chatty info lines become debug lines and its debug lines are dropped.
func New(l *slog.Logger, component string) badger.Logger {
	return logger{l: l, component: component}
}

type logger struct {
	l         *slog.Logger
	component string
}

var _ badger.Logger = logger{}

func (b logger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b logger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b logger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b logger) Debugf(string, ...any)       {}

func (b logger) log(level slog.Level, f string, a []any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, "badger: "+strings.TrimRight(fmt.Sprintf(f, a...), "\n"), "component", b.component)
}
