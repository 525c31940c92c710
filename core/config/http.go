package config

import (
	"net"
	"os"
	"strings"
)

// HTTP configures the optional HTTP listener: Prometheus metrics at
// /metrics, health checks at /healthz and /readyz, and the dashboard with
// its queue browser at /.
type HTTP struct {
	// Listen is "host:port"; "" turns the listener off.
	Listen string `toml:"listen"`
	// UsersFile holds the dashboard's logins, "user:hash" lines as in
	// [submission] users_file (path template with {data_dir}; "" for none).
	UsersFile string `toml:"users_file"`
	// Token is a secret that logs in to the dashboard (as the user
	// "token") and is accepted as "Authorization: Bearer TOKEN"; "" for
	// none.
	Token string `toml:"token"`
	// TLS serves HTTPS with the [tls] certificate.
	TLS bool `toml:"tls"`
	// MetricsLogin requires the login for /metrics too; by default
	// Prometheus scrapes it without one.
	MetricsLogin bool `toml:"metrics_login"`
}

// minTokenLen is the shortest [http] token accepted.
const minTokenLen = 20

// http checks [http].
func (ck *checker) http(c *Config) {
	h := &c.HTTP
	if h.Listen == "" {
		return
	}
	host, _, err := net.SplitHostPort(h.Listen)
	if why := checkHostPort(h.Listen); why != "" || err != nil {
		ck.bad("http.listen", `bad address %q: %s; write it like "127.0.0.1:9125"`, h.Listen, why)
		return
	}
	if !isLoopback(host) && !h.TLS {
		ck.bad("http.listen", "%q is not a loopback address and http.tls is false: dashboard logins would cross the network in clear text; set http.tls = true, or listen on 127.0.0.1 behind a TLS proxy", h.Listen)
	}
	if h.UsersFile == "" && h.Token == "" {
		ck.bad("http.listen", "is set but neither http.users_file nor http.token is: the dashboard needs a login; add users with `sluice user add --file FILE NAME` and set users_file, or set a token")
	}
	if h.Token != "" && len(strings.TrimSpace(h.Token)) < minTokenLen {
		ck.bad("http.token", "is shorter than %d characters; use a long random one, like the output of `openssl rand -hex 24`", minTokenLen)
	}
	if h.UsersFile != "" {
		if fi, err := os.Stat(c.Path(h.UsersFile)); err == nil && fi.IsDir() {
			ck.bad("http.users_file", "%q is a directory; name the users file", h.UsersFile)
		}
	}
}
