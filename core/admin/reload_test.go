package admin

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// serveBackend serves b on a fresh socket and returns a client for it;
// Serve's error fails the test.
func serveBackend(t *testing.T, b Backend) *Client {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "admin.sock")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := NewServer(socket, b, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return NewClient(socket)
}

// TestReloadEndpoint: POST /reload answers the backend's report, or its
// error text (a file:line mistake) as the client's error; without a
// backend it refuses.
func TestReloadEndpoint(t *testing.T) {
	want := &ReloadReport{File: "/etc/sluice.toml", Changed: []string{"local_domains", "smtp.listen"},
		Restart: []string{"queue.workers"}, Listening: []string{"smtp 127.0.0.1:2526"}, Stopped: []string{}}
	tests := []struct {
		name    string
		reload  func(context.Context) (*ReloadReport, error)
		want    *ReloadReport
		wantErr string
	}{
		{"report", func(context.Context) (*ReloadReport, error) { return want, nil }, want, ""},
		{"mistake", func(context.Context) (*ReloadReport, error) {
			return nil, errors.New("/etc/sluice.toml:12: smtp.max_recipients: must be at least 1")
		}, nil, "/etc/sluice.toml:12: smtp.max_recipients: must be at least 1"},
		{"no backend", nil, nil, "cannot reload"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := serveBackend(t, Backend{Reload: tc.reload})
			got, err := c.Reload(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Reload error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Reload = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestReloadReportText(t *testing.T) {
	tests := []struct {
		rep  ReloadReport
		want string
	}{
		{ReloadReport{File: "/etc/sluice.toml", Changed: []string{"local_domains", "log_level"}, Listening: []string{"smtp [::]:25"},
			Stopped: []string{"smtp 0.0.0.0:25"}, Restart: []string{"data_dir"}},
			"reloaded /etc/sluice.toml\nchanged: local_domains, log_level\nlistening on smtp [::]:25\nstopped listening on smtp 0.0.0.0:25\nnot applied until a restart: data_dir\n"},
		{ReloadReport{}, "reloaded the built-in default configuration\nnothing changed\n"},
	}
	for _, tc := range tests {
		var b strings.Builder
		if err := tc.rep.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("WriteText:\n%s\nwant\n%s", b.String(), tc.want)
		}
	}
}
