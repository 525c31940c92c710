package server

import (
	"context"
	"time"

	"github.com/sluice-mta/sluice/core/tlsrpt"
)

// newTLSReport makes the TLS-RPT reporter: counts in the queue's
// database, reports queued as our own mail (DKIM-signed on the way out),
// the [tlsrpt] and [dns] in force read when a day's reports go out.
func (s *Server) newTLSReport() {
	s.tlsrpt = tlsrpt.New(tlsrpt.Options{
		DB:       s.queue.DB(),
		Resolver: liveTXT{s},
		Submit: func(ctx context.Context, from string, rcpts []string, msg []byte) (string, error) {
			return s.submitOwn(ctx, "Sluice, TLS report", "tls report submitted", from, rcpts, msg)
		},
		Settings: func() tlsrpt.Settings {
			cfg := s.live().cfg
			t := cfg.TLSRPT
			return tlsrpt.Settings{Send: t.Enabled, Sender: tlsrpt.Sender{
				From: cfg.ReportFrom(), Organization: t.OrganizationName, Contact: t.ContactInfo, Hostname: cfg.Hostname}}
		},
		Now:           s.tlsrptClock.now,
		CheckInterval: s.tlsrptClock.every,
		Logger:        s.log,
	})
}

// liveTXT asks the resolver of the configuration in force.
type liveTXT struct{ s *Server }

func (l liveTXT) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return l.s.live().resolver.LookupTXT(ctx, name)
}

// tlsrptClock is the reporter's clock and how often it looks at it; zero
// values are the wall clock and a minute.
type tlsrptClock struct {
	now   func() time.Time
	every time.Duration
}

// WithTLSReportClock gives the TLS-RPT reporter a clock and how often it
// checks it for a finished day, so that tests can cross midnight.
func WithTLSReportClock(now func() time.Time, every time.Duration) Option {
	return func(s *Server) { s.tlsrptClock = tlsrptClock{now, every} }
}

// TLSReport returns the recorder of outbound TLS outcomes.
func (s *Server) TLSReport() *tlsrpt.Reporter { return s.tlsrpt }
