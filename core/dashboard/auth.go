package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// sessionCookie names the login cookie.
const sessionCookie = "sluice_session"

// sessionLifetime is how long a login lasts.
const sessionLifetime = 12 * time.Hour

// maxSessions bounds the sessions kept; the oldest go first.
const maxSessions = 1000

// session is one login.
type session struct {
	user    string
	csrf    string
	expires time.Time
}

// sessions are the logins, in memory: a restart logs everyone out.
type sessions struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, m: map[string]*session{}}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for user and returns its ID.
func (s *sessions) create(user string) (string, *session) {
	id := randomToken()
	ss := &session{user: user, csrf: randomToken(), expires: s.now().Add(sessionLifetime)}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	for len(s.m) >= maxSessions {
		var oldest string
		for k, v := range s.m {
			if oldest == "" || v.expires.Before(s.m[oldest].expires) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	s.m[id] = ss
	return id, ss
}

// get returns the live session with ID id.
func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[id]
	if ss == nil {
		return nil
	}
	if s.now().After(ss.expires) {
		delete(s.m, id)
		return nil
	}
	return ss
}

// drop ends session id.
func (s *sessions) drop(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// ctxKey keys the request's session in its context.
type ctxKey struct{}

// sessionOf returns the request's session (a bearer request has one
// without a CSRF token).
func sessionOf(r *http.Request) *session {
	ss, _ := r.Context().Value(ctxKey{}).(*session)
	return ss
}

// equal compares secrets in constant time.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// login wraps a handler that needs a login: a bearer token or a session
// cookie. A POST with the cookie must come from this origin and carry the
// session's CSRF token. Without a login, pages redirect to /login and
// other requests get 401.
func (d *Dashboard) login(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			if d.opts.Token == "" || !equal(tok, d.opts.Token) {
				http.Error(w, "bad token", http.StatusUnauthorized)
				return
			}
			h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &session{user: "token"})))
			return
		}
		var ss *session
		if c, err := r.Cookie(sessionCookie); err == nil {
			ss = d.auth.get(c.Value)
		}
		if ss == nil {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/metrics") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
			if !equal(r.PostFormValue("csrf"), ss.csrf) {
				http.Error(w, "bad or missing CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, ss)))
	}
}

// sameOrigin refuses a request that a browser says comes from another
// site: by Sec-Fetch-Site when it sends one, else by an Origin naming
// another host (or "null"). A request with neither (curl) passes; the
// CSRF token still guards it.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// loginPage shows the login form.
func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, "login", map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

// loginPost checks a login and starts a session.
func (d *Dashboard) loginPost(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	user, pw := strings.TrimSpace(r.PostFormValue("user")), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	ok := false
	switch {
	case d.opts.Token != "" && (user == "" || user == "token") && equal(pw, d.opts.Token):
		user, ok = "token", true
	case user != "" && d.opts.Users != nil:
		ok = d.opts.Users.Authenticate(user, pw)
	}
	if !ok {
		d.log.Warn("dashboard login failed", "user", user, "client", clientIP(r))
		w.WriteHeader(http.StatusUnauthorized)
		d.render(w, r, "login", map[string]any{"Next": next, "Error": "Wrong user or password.", "User": user})
		return
	}
	id, _ := d.auth.create(user)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
		Secure: d.opts.Secure, SameSite: http.SameSiteStrictMode, MaxAge: int(sessionLifetime / time.Second)})
	d.log.Info("dashboard login", "user", user, "client", clientIP(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		d.auth.drop(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: d.opts.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// clientIP is the request's peer address without the port.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
