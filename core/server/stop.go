package server

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/core/queue"
	"github.com/sluice-mta/sluice/core/smtpd"
)

// defaultShutdownTimeout is shutdown_timeout's value when it is not set.
const defaultShutdownTimeout = 30 * time.Second

// stop drains the server after Run's context ended (SIGTERM): the SMTP
// listeners and the admin and HTTP sockets stop accepting; idle SMTP
// sessions are told 421 4.3.2 at once, sessions in the middle of a
// transaction may finish it and deliveries in flight may complete, all
// within shutdown_timeout; then the rest of the sessions get 421 and the
// deliveries are released for retry. It logs one line with what it
// drained. A reload in progress finishes first; none starts after.
func (s *Server) stop() {
	sh := s.sh
	sh.reloadMu.Lock()
	sh.stopping = true
	sh.reloadMu.Unlock()
	sh.mu.Lock()
	sh.running = false
	sh.mu.Unlock()

	l := s.live()
	timeout := l.cfg.ShutdownTimeout.D()
	if timeout <= 0 {
		timeout = defaultShutdownTimeout
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.log.Info("stopping: draining sessions and deliveries", "timeout", timeout)

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		smtp   smtpd.Drained
		queued queue.DrainStats
	)
	for _, svc := range l.services {
		wg.Go(func() {
			d, err := svc.srv.Shutdown(ctx)
			if err != nil {
				s.log.Warn("stopping", "service", svc.Name, "err", err)
			}
			mu.Lock()
			smtp.Idle, smtp.Finished, smtp.Cut = smtp.Idle+d.Idle, smtp.Finished+d.Finished, smtp.Cut+d.Cut
			mu.Unlock()
		})
	}
	wg.Go(func() {
		if err := s.admin.Shutdown(ctx); err != nil {
			s.log.Warn("stopping the admin socket", "err", err)
		}
	})
	wg.Go(func() {
		if err := s.closeHTTP(); err != nil {
			s.log.Warn("stopping the HTTP listener", "err", err)
		}
	})
	wg.Go(func() { queued = s.queue.Drain(ctx) })
	wg.Wait()
	s.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond),
		"sessions_closed", smtp.Idle, "messages_finished", smtp.Finished, "sessions_cut", smtp.Cut,
		"deliveries_finished", queued.Finished, "deliveries_released", queued.Released)
}
