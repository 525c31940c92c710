package delivery

import (
	"context"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
)

// deliverHook runs the deliver stage for the recipients of one destination
// domain, as core/filter applies it (filter.Deliver): it returns the
// message to deliver, with the plugins' header edits and route, or, when a
// plugin decided the recipients' fate, their results.
func (r *Router) deliverHook(ctx context.Context, m *mail.Message, domain string, rcpts []string) (*mail.Message, []mail.Result) {
	dm, o := filter.Deliver(ctx, r.filters, m, domain, rcpts)
	if dm == nil {
		return nil, o.Fate(rcpts)
	}
	return dm, nil
}
