package server

import (
	"context"
	"fmt"

	"github.com/sluice-mta/sluice/core/addressing"
	"github.com/sluice-mta/sluice/core/mail"
)

// newAddressing loads [addressing]: the map files, verification,
// per-domain transports and SRS. A mistake in a map file stops the start
// (there is no previous map to keep yet).
func (s *Server) newAddressing() error {
	opts, err := addressing.FromConfig(s.cfg, s.log)
	if err != nil {
		return fmt.Errorf("[addressing]: %w", err)
	}
	if s.addressing, err = addressing.New(opts); err != nil {
		return fmt.Errorf("[addressing]: %w", err)
	}
	return nil
}

// ReloadAddressing reads the [addressing] map files now and swaps the new
// maps in whole (SIGHUP, `sluice reload`); on a mistake the current maps
// stay and the mistakes are returned as "file:line: what is wrong". The
// files are also polled, so an edit takes effect without it.
func (s *Server) ReloadAddressing() error { return s.addressing.Reload() }

// expandLocal resolves the recipients of a local submission as RCPT
// would: aliases become their targets, an unknown user at a local domain
// is an error naming the reply.
func (s *Server) expandLocal(ctx context.Context, rcpts []mail.Recipient) ([]mail.Recipient, error) {
	out := make([]mail.Recipient, 0, len(rcpts))
	seen := make(map[string]bool, len(rcpts))
	for _, rc := range rcpts {
		res, err := s.addressing.Resolve(ctx, rc.Addr)
		for _, p := range res.Problems {
			s.log.Warn("addressing: "+p, "rcpt", rc.Addr)
		}
		if err != nil {
			return nil, fmt.Errorf("recipient %s: %w", rc.Addr, err)
		}
		for _, t := range res.Recipients(rc.Notify, rc.ORCPT) {
			if k := mail.Key(t.Addr); !seen[k] {
				seen[k] = true
				out = append(out, t)
			}
		}
	}
	return out, nil
}
