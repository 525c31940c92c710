package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"text/tabwriter"
	"unicode"

	"github.com/sluice-mta/sluice/core/smtpd"
)

// AuthThrottle is the AUTH failure throttle (`sluice auth`);
// *smtpd.AuthThrottle implements it.
type AuthThrottle interface {
	// Status lists the failure counters in force.
	Status(ctx context.Context) ([]smtpd.AuthRecord, error)
	// Unblock forgets the failures of a client address or a user and
	// returns how many counters it removed.
	Unblock(ctx context.Context, target string) (int, error)
}

var _ AuthThrottle = (*smtpd.AuthThrottle)(nil)

// AuthUnblock is the body of POST /auth/unblock and its answer.
type AuthUnblock struct {
	// Target is a client address or a user name.
	Target string `json:"target"`
	// Removed is the number of counters removed (in the answer).
	Removed int `json:"removed"`
}

// authStatus serves GET /auth: the throttle's counters.
func (s *Server) authStatus(w http.ResponseWriter, r *http.Request) {
	if s.b.Auth == nil {
		writeJSON(w, http.StatusNotImplemented, apiError{Error: "this server has no AUTH throttle"})
		return
	}
	recs, err := s.b.Auth.Status(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if recs == nil {
		recs = []smtpd.AuthRecord{}
	}
	writeJSON(w, http.StatusOK, recs)
}

// authUnblock serves POST /auth/unblock.
func (s *Server) authUnblock(w http.ResponseWriter, r *http.Request) {
	if s.b.Auth == nil {
		writeJSON(w, http.StatusNotImplemented, apiError{Error: "this server has no AUTH throttle"})
		return
	}
	var req AuthUnblock
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Target == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "name a client address or a user to unblock"})
		return
	}
	n, err := s.b.Auth.Unblock(r.Context(), req.Target)
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("auth unblock", "target", req.Target, "removed", n)
	req.Removed = n
	writeJSON(w, http.StatusOK, req)
}

// AuthStatus lists the AUTH throttle's failure counters.
func (c *Client) AuthStatus(ctx context.Context) ([]smtpd.AuthRecord, error) {
	var out []smtpd.AuthRecord
	if err := c.do(ctx, http.MethodGet, "/auth", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// AuthUnblock forgets the failures of target, a client address or a user,
// and returns how many counters were removed.
func (c *Client) AuthUnblock(ctx context.Context, target string) (int, error) {
	body, err := json.Marshal(AuthUnblock{Target: target})
	if err != nil {
		return 0, err
	}
	var out AuthUnblock
	if err := c.doBody(ctx, http.MethodPost, "/auth/unblock", bytes.NewReader(body), &out); err != nil {
		return 0, err
	}
	return out.Removed, nil
}

// WriteAuthStatus prints recs as `sluice auth status` does: one counter a
// line, blocked ones marked.
func WriteAuthStatus(w io.Writer, recs []smtpd.AuthRecord) error {
	if len(recs) == 0 {
		_, err := fmt.Fprintln(w, "no failed logins counted")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tADDRESS\tUSER\tFAILURES\tSTATE")
	for _, r := range recs {
		state := "counting"
		if r.Blocked {
			state = "blocked"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, dash(r.Address), dash(r.User),
			strconv.FormatInt(r.Failures, 10)+"/"+strconv.Itoa(r.Limit), state)
	}
	return tw.Flush()
}

// dash prints s for a table cell: "-" when empty, quoted when it has
// spaces or characters that are not printable (a user name is whatever a
// client sent).
func dash(s string) string {
	if s == "" {
		return "-"
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
