// Package admin serves the running server's administration API on a unix
// socket, and is the client that `sluice queue …` uses to reach it. Badger
// is opened by one process only, so every operation on the queue from the
// command line goes through here.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/queue"
)

// Queue is what the admin API needs from the queue.
type Queue interface {
	List(ctx context.Context) ([]mail.Envelope, error)
	Get(ctx context.Context, id string) (*mail.Message, error)
	Hold(ctx context.Context, id string) error
	Release(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	Flush(ctx context.Context) error
	// FlushDomain makes due now the messages with a pending recipient in
	// domain.
	FlushDomain(ctx context.Context, domain string) error
	// Bounce fails every pending recipient of a message at once and sends
	// the sender one DSN.
	Bounce(ctx context.Context, id string) error
}

var _ Queue = (*queue.Queue)(nil)

// Backend is what the admin API serves: the queue, and optionally the
// plugins' state and metrics.
type Backend struct {
	Queue Queue
	// Plugins lists the loaded plugins; nil when there is no filter host.
	Plugins func() []filter.PluginInfo
	// Metrics writes counters in the Prometheus text format; nil for none.
	Metrics interface{ WritePrometheus(w io.Writer) error }
	// Submit queues a message handed over locally (`sluice sendmail`) and
	// returns its queue ID; nil refuses local submission.
	Submit func(ctx context.Context, from string, rcpts []string, msg []byte) (string, error)
	// Reload reads the configuration file again and applies it (`sluice
	// reload`); nil refuses.
	Reload func(ctx context.Context) (*ReloadReport, error)
	// Auth is the AUTH failure throttle (`sluice auth`); nil for none.
	Auth AuthThrottle
	// TLSReport counts outbound TLS outcomes (`sluice tls-report`); nil
	// for none.
	TLSReport TLSReport
}

// Submission is the body of POST /submit.
type Submission struct {
	From  string   `json:"from"`
	Rcpts []string `json:"rcpts"`
	// Data is the message, CRLF line endings (base64 in JSON).
	Data []byte `json:"data"`
}

// Server is the admin API bound to one unix socket.
type Server struct {
	b      Backend
	q      Queue
	log    *slog.Logger
	socket string
	ln     net.Listener
	http   *http.Server
}

// Option sets how NewServer makes the socket.
type Option func(*socketPerm)

// socketPerm is the socket file's mode and group.
type socketPerm struct {
	mode fs.FileMode
	gid  int // -1 keeps the process's group
}

// WithSocketPerm gives the socket file mode (default 0600) and, unless gid
// is -1, group gid, so that the group's members may use it.
func WithSocketPerm(mode fs.FileMode, gid int) Option {
	return func(p *socketPerm) { p.mode, p.gid = mode.Perm(), gid }
}

// NewServer listens on socket (removing a stale socket file first) and
// returns a server ready to Serve. The socket is 0600 unless an option
// says otherwise.
func NewServer(socket string, b Backend, log *slog.Logger, opts ...Option) (*Server, error) {
	perm := socketPerm{mode: 0o600, gid: -1}
	for _, o := range opts {
		o(&perm)
	}
	q := b.Queue
	if err := os.MkdirAll(filepath.Dir(socket), 0o750); err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", socket, err)
	}
	if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("admin socket %s: another sluice is already running on this data directory", socket)
	}
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", socket, err)
	}
	if perm.gid >= 0 {
		if err := os.Chown(socket, -1, perm.gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("admin socket %s: group %d: %w", socket, perm.gid, err)
		}
	}
	if err := os.Chmod(socket, perm.mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", socket, err)
	}
	s := &Server{b: b, q: q, log: log, socket: socket, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /queue", s.list)
	mux.HandleFunc("GET /queue/{id}", s.show)
	mux.HandleFunc("POST /queue/flush", s.flush)
	mux.HandleFunc("POST /queue/{id}/hold", s.action(OpHold))
	mux.HandleFunc("POST /queue/{id}/release", s.action(OpRelease))
	mux.HandleFunc("POST /queue/{id}/bounce", s.action(OpBounce))
	mux.HandleFunc("DELETE /queue/{id}", s.action(OpRemove))
	mux.HandleFunc("GET /plugins", s.plugins)
	mux.HandleFunc("POST /submit", s.submit)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("POST /reload", s.reload)
	mux.HandleFunc("GET /auth", s.authStatus)
	mux.HandleFunc("POST /auth/unblock", s.authUnblock)
	mux.HandleFunc("GET /tls-report", s.tlsReport)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Serve answers requests until Close.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and removes the socket file.
func (s *Server) Close() error {
	err := s.http.Close()
	_ = os.Remove(s.socket)
	return err
}

// Detail is one message as `sluice queue show` prints it.
type Detail struct {
	mail.Envelope
	// Headers is the message's header section.
	Headers string `json:"headers"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	envs, err := s.q.List(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if envs == nil {
		envs = []mail.Envelope{}
	}
	writeJSON(w, http.StatusOK, envs)
}

func (s *Server) plugins(w http.ResponseWriter, r *http.Request) {
	list := []filter.PluginInfo{}
	if s.b.Plugins != nil {
		list = s.b.Plugins()
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	if s.b.Submit == nil {
		writeJSON(w, http.StatusNotImplemented, apiError{Error: "local submission is not enabled"})
		return
	}
	var sub Submission
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 100<<20)).Decode(&sub); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "bad submission: " + err.Error()})
		return
	}
	id, err := s.b.Submit(r.Context(), sub.From, sub.Rcpts, sub.Data)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	if s.b.Metrics != nil {
		_ = s.b.Metrics.WritePrometheus(w)
	}
}

func (s *Server) show(w http.ResponseWriter, r *http.Request) {
	m, err := s.q.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	h, _ := mail.ParseHeader(m.Body)
	writeJSON(w, http.StatusOK, Detail{Envelope: m.Envelope, Headers: string(h.Bytes())})
}

// flush serves POST /queue/flush: every message, or with ?domain=D those
// with a pending recipient in D.
func (s *Server) flush(w http.ResponseWriter, r *http.Request) {
	if err := s.acts().Flush(r.Context(), r.URL.Query().Get("domain"), "socket"); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"ok": "true"})
}

// acts are the server's queue operations (shared with the dashboard).
func (s *Server) acts() Actions { return Actions{Queue: s.q, Log: s.log} }

func (s *Server) action(op Op) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.acts().Do(r.Context(), op, r.PathValue("id"), "socket"); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"ok": "true"})
	}
}

type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, queue.ErrNotFound) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, apiError{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
