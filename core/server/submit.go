package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// maxLocalRcpts bounds the recipients of one local submission.
const maxLocalRcpts = 1000

// submitLocal queues a message handed over by `sluice sendmail` through
// the admin socket, which only the owner of the data directory can use. It
// is the operator's own mail: it may go anywhere, and is DKIM-signed on the
// way out like mail from trusted networks. Its recipients are resolved as
// at RCPT (aliases expanded, unknown local users refused). No SMTP session exists, so the
// connect…data plugins do not run; the deliver stage does.
func (s *Server) submitLocal(ctx context.Context, from string, rcpts []string, msg []byte) (string, error) {
	return s.submitOwn(ctx, "Sluice, from local sendmail", "submitted locally", from, rcpts, msg)
}

// submitOwn queues the server's own mail (submitLocal's rules): comment
// goes into the Received: header, event is the log line.
func (s *Server) submitOwn(ctx context.Context, comment, event, from string, rcpts []string, msg []byte) (string, error) {
	s = s.live() // the configuration and maps as they are now
	if strings.ContainsAny(from, " <>\r\n") || (from != "" && !strings.Contains(from, "@")) {
		return "", fmt.Errorf("sender %q is not an address", from)
	}
	if len(rcpts) == 0 || len(rcpts) > maxLocalRcpts {
		return "", fmt.Errorf("give between 1 and %d recipients", maxLocalRcpts)
	}
	if int64(len(msg)) > int64(s.cfg.Submission.MaxMessageSize) {
		return "", fmt.Errorf("message of %d bytes is over submission.max_message_size", len(msg))
	}
	env := &mail.Envelope{From: from, ClientIP: "127.0.0.1", Helo: "localhost", Trusted: true}
	seen := map[string]bool{}
	for _, r := range rcpts {
		local, domain, ok := mail.Split(r)
		if !ok || local == "" || domain == "" || strings.ContainsAny(r, " <>\r\n") {
			return "", fmt.Errorf("recipient %q is not an address", r)
		}
		r = local + "@" + mail.NormDomain(domain)
		if k := mail.Key(r); !seen[k] {
			seen[k] = true
			env.Rcpts = append(env.Rcpts, mail.Recipient{Addr: r})
		}
	}
	expanded, err := s.expandLocal(ctx, env.Rcpts)
	if err != nil {
		return "", err
	}
	env.Rcpts = expanded
	if hasBareNewline(msg) {
		return "", errors.New("message has bare CR or LF line endings")
	}
	env.ID = s.queue.NewID()
	body := mail.AppendReceived(make([]byte, 0, 200+len(msg)), mail.Trace{
		By: s.cfg.Hostname, Comment: comment, ID: env.ID, Date: time.Now(),
	})
	body = append(body, msg...)
	id, err := s.queue.Enqueue(ctx, env, body)
	if err != nil {
		return "", err
	}
	s.log.Info(event, "id", id, "from", from, "nrcpt", len(env.Rcpts), "size", len(body))
	return id, nil
}

// hasBareNewline reports a CR not followed by LF or an LF not preceded by CR.
func hasBareNewline(b []byte) bool {
	for i, c := range b {
		if (c == '\n' && (i == 0 || b[i-1] != '\r')) || (c == '\r' && (i+1 == len(b) || b[i+1] != '\n')) {
			return true
		}
	}
	return false
}
