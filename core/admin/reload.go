package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// ReloadReport is what a reload of the configuration did (POST /reload).
type ReloadReport struct {
	// File is the configuration file read ("" for the built-in default).
	File string `json:"file"`
	// Changed are the keys whose new values are in use, like
	// "smtp.max_recipients"; a list or table array is one key.
	Changed []string `json:"changed"`
	// Restart are keys that changed in the file but keep their old value
	// until the next start (data_dir, hostname, …).
	Restart []string `json:"restart"`
	// Listening and Stopped are the addresses the reload began and stopped
	// listening on, as "service address".
	Listening []string `json:"listening"`
	Stopped   []string `json:"stopped"`
}

// WriteText prints the report for an operator, one fact a line.
func (r *ReloadReport) WriteText(w io.Writer) error {
	file := r.File
	if file == "" {
		file = "the built-in default configuration"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "reloaded %s\n", file)
	if len(r.Changed)+len(r.Restart)+len(r.Listening)+len(r.Stopped) == 0 {
		b.WriteString("nothing changed\n")
	}
	if len(r.Changed) > 0 {
		fmt.Fprintf(&b, "changed: %s\n", strings.Join(r.Changed, ", "))
	}
	for _, l := range r.Listening {
		fmt.Fprintf(&b, "listening on %s\n", l)
	}
	for _, l := range r.Stopped {
		fmt.Fprintf(&b, "stopped listening on %s\n", l)
	}
	if len(r.Restart) > 0 {
		fmt.Fprintf(&b, "not applied until a restart: %s\n", strings.Join(r.Restart, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// reload serves POST /reload: the configuration file is read again and
// applied; a mistake is answered 422 with its file:line text.
func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.b.Reload == nil {
		writeJSON(w, http.StatusNotImplemented, apiError{Error: "this server cannot reload its configuration"})
		return
	}
	rep, err := s.b.Reload(r.Context())
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// Reload asks the server to read its configuration file again and returns
// what changed, or the mistake (file:line) that kept anything from
// changing.
func (c *Client) Reload(ctx context.Context) (*ReloadReport, error) {
	var out ReloadReport
	if err := c.do(ctx, http.MethodPost, "/reload", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Shutdown stops accepting requests, lets those in progress finish until
// ctx is done, and removes the socket file.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = s.http.Close()
	}
	_ = os.Remove(s.socket)
	return err
}
