package config

import (
	"fmt"
	"net"
	"net/netip"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/sluice-mta/sluice/core/auth/dkimkey"
)

// checker collects the mistakes found in one decoded configuration.
type checker struct {
	file string
	ix   *keyIndex
	errs []*Error
}

// bad records a mistake in key, at the line where the file set it.
func (ck *checker) bad(key, format string, args ...any) {
	line, _ := ck.ix.line(key)
	ck.errs = append(ck.errs, &Error{File: ck.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// inFile reports whether the file (not the default) set key.
func (ck *checker) inFile(key string) bool {
	_, ok := ck.ix.line(key)
	return ok
}

// validate checks every value of c; file and ix place each mistake.
func (c *Config) validate(file string, ix *keyIndex) []*Error {
	ck := &checker{file: file, ix: ix}
	if c.Hostname == "" {
		ck.bad("hostname", `must not be empty; set it to this server's DNS name, like "mx.example.com"`)
	} else if why := checkDomain(c.Hostname); why != "" {
		ck.bad("hostname", "%q is not a valid host name: %s", c.Hostname, why)
	}
	if c.DataDir == "" {
		ck.bad("data_dir", `must not be empty; use "." for the current directory`)
	}
	for i, d := range c.LocalDomains {
		if why := checkDomain(d); why != "" {
			ck.bad(fmt.Sprintf("local_domains[%d]", i), "%q is not a valid domain: %s", d, why)
		}
	}
	for i, p := range c.TrustedNetworks {
		if !p.IsValid() {
			ck.bad(fmt.Sprintf("trusted_networks[%d]", i), "%s", badNetwork(`""`, "empty"))
		}
	}
	ck.oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")
	ck.oneOf("log_format", c.LogFormat, "text", "json")
	ck.duration("shutdown_timeout", c.ShutdownTimeout)
	ck.listener("smtp", &c.SMTP)
	ck.listener("submission", &c.Submission.Listener)
	ck.submission(&c.Submission)
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		set, empty := "tls.cert", "tls.key"
		if c.TLS.Cert == "" {
			set, empty = empty, set
		}
		ck.bad(set, "is set but %s is empty; set both, or leave both empty for a self-signed certificate", empty)
	}
	for i, x := range c.TLS.Extra {
		switch {
		case c.TLS.Cert == "":
			ck.bad(fmt.Sprintf("tls.extra[%d]", i), "needs tls.cert and tls.key set: extra certificates are served beside a configured one")
		case x.Cert == "" || x.Key == "":
			ck.bad(fmt.Sprintf("tls.extra[%d]", i), "needs both cert and key")
		}
	}
	ck.oneOf("tls.min_version", c.TLS.MinVersion, "", "1.0", "1.1", "1.2", "1.3")
	ck.oneOf("smtp.tls_min_version", c.SMTP.TLSMinVersion, "", "1.0", "1.1", "1.2", "1.3")
	ck.oneOf("submission.tls_min_version", c.Submission.TLSMinVersion, "", "1.0", "1.1", "1.2", "1.3")
	ck.local(&c.Local)
	ck.queue(&c.Queue)
	ck.spam(&c.Spam)
	ck.auth(c)
	for i, s := range c.DNS.Servers {
		if why := checkHostPort(s); why != "" {
			ck.bad(fmt.Sprintf("dns.servers[%d]", i), "%q: %s", s, why)
		}
	}
	ck.duration("dns.timeout", c.DNS.Timeout)
	for i, s := range c.DNS.TrustedServers {
		key := fmt.Sprintf("dns.trusted_servers[%d]", i)
		switch {
		case checkHostPort(s) != "":
			ck.bad(key, "%q: %s", s, checkHostPort(s))
		case len(c.DNS.Servers) > 0 && !slices.Contains(c.DNS.Servers, s):
			ck.bad(key, "%q is not one of dns.servers; list it there too (the AD bit of a server not asked means nothing)", s)
		}
	}
	ck.delivery(&c.Delivery)
	ck.outboundTLS(c)
	ck.addressing(c)
	ck.admin(&c.Admin)
	ck.http(c)
	ck.kv(c)
	ck.tlsrpt(c)
	return ck.errs
}

// admin checks the admin socket's path, mode and group.
func (ck *checker) admin(a *Admin) {
	if a.Socket == "" {
		ck.bad("admin.socket", `must not be empty; the default is "{data_dir}/admin.sock"`)
	}
	switch m := a.SocketMode.Perm(); {
	case m&0o007 != 0:
		ck.bad("admin.socket_mode", `%04o lets every local user manage the queue; give the socket a group instead (socket_group, socket_mode = "0660")`, m)
	case m&0o600 != 0o600:
		ck.bad("admin.socket_mode", `%04o does not let the server's own user use the socket; keep the owner's read and write bits, like "0600" or "0660"`, m)
	}
	if a.SocketGroup != "" {
		if _, err := LookupGroup(a.SocketGroup); err != nil {
			ck.bad("admin.socket_group", "%v", err)
		}
	}
}

// LookupGroup resolves a group name or number to its ID.
func LookupGroup(name string) (int, error) {
	if gid, err := strconv.Atoi(name); err == nil && gid >= 0 {
		return gid, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("no group %q on this system: create it, or name an existing group (or its number)", name)
	}
	return strconv.Atoi(g.Gid)
}

// listener checks one SMTP service.
func (ck *checker) listener(sec string, l *Listener) {
	ck.proxy(sec, l)
	for i, a := range l.Listen {
		if why := checkHostPort(a); why != "" {
			ck.bad(fmt.Sprintf("%s.listen[%d]", sec, i), `bad address %q: %s; write it like "0.0.0.0:25" or "[::]:25"`, a, why)
		}
	}
	if l.MaxMessageSize < 1024 {
		ck.bad(sec+".max_message_size", `must be at least 1024 bytes; write it like "50MiB"`)
	}
	ck.atLeast(sec+".max_recipients", l.MaxRecipients, 1)
	ck.atLeast(sec+".max_line_length", l.MaxLineLength, 512)
	ck.oneOf(sec+".bare_newline", l.BareNewline, "reject", "normalize")
	ck.duration(sec+".command_timeout", l.CommandTimeout)
	ck.duration(sec+".data_timeout", l.DataTimeout)
	ck.duration(sec+".session_timeout", l.SessionTimeout)
	ck.duration(sec+".rdns_timeout", l.RDNSTimeout)
	ck.atLeast(sec+".max_connections", l.MaxConnections, 1)
	ck.atLeast(sec+".max_connections_per_ip", l.MaxConnectionsPerIP, 1)
	if l.MaxConnectionsPerIP > l.MaxConnections && l.MaxConnections >= 1 {
		ck.bad(sec+".max_connections_per_ip", "%d is more than %s.max_connections (%d); lower it or raise max_connections",
			l.MaxConnectionsPerIP, sec, l.MaxConnections)
	}
	ck.atLeast(sec+".min_data_rate", l.MinDataRate, 1)
	ck.duration(sec+".stress_timeout", l.StressTimeout)
	if l.StressThreshold < 0 || l.StressThreshold > l.MaxConnections && l.MaxConnections >= 1 {
		ck.bad(sec+".stress_threshold", "%d is not between 1 and %s.max_connections (%d); use 0 for 80%% of max_connections",
			l.StressThreshold, sec, l.MaxConnections)
	}
}

// submission checks the keys that only [submission] has.
func (ck *checker) submission(sub *Submission) {
	for i, a := range sub.TLSListen {
		if why := checkHostPort(a); why != "" {
			ck.bad(fmt.Sprintf("submission.tls_listen[%d]", i), `bad address %q: %s; write it like "0.0.0.0:465"`, a, why)
		}
	}
	if sub.UsersFile == "" {
		ck.bad("submission.users_file", `must not be empty; the default is "{data_dir}/users"`)
	}
	ck.duration("submission.auth_fail_delay", sub.AuthFailDelay)
	ck.duration("submission.auth_fail_max_delay", sub.AuthFailMaxDelay)
	ck.duration("submission.auth_fail_window", sub.AuthFailWindow)
	ck.atLeast("submission.auth_max_failures", sub.AuthMaxFailures, 1)
	ck.atLeast("submission.auth_max_user_failures", sub.AuthMaxUserFailures, 1)
	ck.atLeast("submission.auth_max_address_failures", sub.AuthMaxAddressFailures, 1)
	if sub.AuthMaxAddressFailures < sub.AuthMaxFailures && sub.AuthMaxAddressFailures >= 1 {
		ck.bad("submission.auth_max_address_failures", "%d is less than submission.auth_max_failures (%d): one user's mistakes would block everyone at that address; make it larger",
			sub.AuthMaxAddressFailures, sub.AuthMaxFailures)
	}
	if sub.AuthFailMaxDelay < sub.AuthFailDelay {
		ck.bad("submission.auth_fail_max_delay", "is shorter than submission.auth_fail_delay (%v): make it at least as long", sub.AuthFailDelay.D())
	}
	if sub.AllowInsecureAuth {
		for _, a := range sub.Listen {
			if host, _, err := net.SplitHostPort(a); err == nil && !isLoopback(host) {
				ck.bad("submission.allow_insecure_auth", "is true while submission.listen has %q, which is not a loopback address: passwords would cross the network in clear text; set it to false", a)
				break
			}
		}
	}
}

// isLoopback reports whether a listen host is a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// local checks local delivery.
func (ck *checker) local(l *Local) {
	ck.oneOf("local.transport", l.Transport, "maildir", "lmtp")
	if l.Transport == "maildir" && !strings.Contains(l.Maildir, "{user}") {
		ck.bad("local.maildir", `%q has no {user}, so every user would share one mailbox; write it like "{data_dir}/mail/{domain}/{user}"`, l.Maildir)
	}
	if l.Transport == "lmtp" || ck.inFile("local.lmtp") {
		if why := checkLMTP(l.LMTP); why != "" {
			ck.bad("local.lmtp", `bad address %q: %s; write it like "127.0.0.1:24" or "unix:/run/dovecot/lmtp"`, l.LMTP, why)
		}
	}
}

// queue checks retries and lifetimes.
func (ck *checker) queue(q *Queue) {
	ck.duration("queue.min_backoff", q.MinBackoff)
	ck.duration("queue.max_backoff", q.MaxBackoff)
	ck.duration("queue.max_lifetime", q.MaxLifetime)
	ck.duration("queue.gc_interval", q.GCInterval)
	if q.MinBackoff > 0 && q.MinBackoff > q.MaxBackoff {
		if ck.inFile("queue.min_backoff") || !ck.inFile("queue.max_backoff") {
			ck.bad("queue.min_backoff", "%v is longer than queue.max_backoff (%v); lower it or raise max_backoff",
				q.MinBackoff.D(), q.MaxBackoff.D())
		} else {
			ck.bad("queue.max_backoff", "%v is shorter than queue.min_backoff (%v); raise it or lower min_backoff",
				q.MaxBackoff.D(), q.MinBackoff.D())
		}
	}
	if q.DelayWarning != 0 || ck.ix.kinds["queue.delay_warning"] == unstable.Integer {
		ck.duration("queue.delay_warning", q.DelayWarning)
	}
	if q.DelayWarning > 0 && q.MaxLifetime > 0 && q.DelayWarning >= q.MaxLifetime {
		ck.bad("queue.delay_warning", `%v is not shorter than queue.max_lifetime (%v), so no warning would come before the bounce; lower it, or set "0s" to turn warnings off`,
			q.DelayWarning.D(), q.MaxLifetime.D())
	}
	if q.HoldLifetime != 0 || ck.ix.kinds["queue.hold_lifetime"] == unstable.Integer {
		ck.duration("queue.hold_lifetime", q.HoldLifetime)
	}
	ck.atLeast("queue.workers", q.Workers, 1)
	if q.Workers > 10000 {
		ck.bad("queue.workers", "must be at most 10000")
	}
}

// atLeast checks an integer's lower bound.
func (ck *checker) atLeast(key string, v, lo int) {
	if v < lo {
		ck.bad(key, "must be at least %d", lo)
	}
}

// duration checks that a duration is positive and, when the file set it,
// that it was written with a unit rather than as a bare number (which TOML
// would read as nanoseconds).
func (ck *checker) duration(key string, d Duration) {
	if ck.ix.kinds[key] == unstable.Integer {
		ck.bad(key, `bad duration %d: write it as a quoted string with a unit, like "30s", "5m" or "1h"`, int64(d))
		return
	}
	if d <= 0 {
		ck.bad(key, `must be longer than zero; write it like "30s", "5m" or "1h"`)
	}
}

// oneOf checks an enumerated value.
func (ck *checker) oneOf(key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	ck.bad(key, "%q is not allowed: use %s", v, quoteList(allowed))
}

// quoteList writes `"a", "b" or "c"`.
func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// checkDomain returns why s is not a plausible domain name, or "".
func checkDomain(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "it is empty"
	}
	if len(s) > 253 {
		return "longer than 253 characters"
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return "it is an IP address, not a name"
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return "it has an empty label (two dots in a row)"
		}
		if len(label) > 63 {
			return "a label is longer than 63 characters"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "a label starts or ends with '-'"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("character %q is not allowed; use letters, digits, '-' and '.' (IDNs in their xn-- form)", c)
			}
		}
	}
	return ""
}

// checkHostPort returns why s is not a listen address host:port, or "".
func checkHostPort(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "not host:port"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("port %q is not a number from 0 to 65535", port)
	}
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if checkDomain(host) != "" {
		return fmt.Sprintf("host %q is neither an IP address nor a host name", host)
	}
	return ""
}

// checkLMTP returns why s is not "host:port" or "unix:/path", or "".
func checkLMTP(s string) string {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return "the socket path must be absolute"
		}
		return ""
	}
	if why := checkHostPort(s); why != "" {
		return why
	}
	if _, port, _ := net.SplitHostPort(s); port == "0" {
		return "port 0 cannot be connected to"
	}
	return ""
}

// spam checks that the thresholds are not negative and rise in order.
func (ck *checker) spam(s *Spam) {
	for _, t := range []struct {
		key string
		v   float64
	}{{"spam.add_header", s.AddHeader}, {"spam.quarantine", s.Quarantine}, {"spam.reject", s.Reject}} {
		if t.v < 0 || t.v != t.v {
			ck.bad(t.key, "must be 0 (off) or a positive score, not %v", t.v)
		}
	}
	if s.Quarantine > 0 && s.Reject > 0 && s.Quarantine > s.Reject {
		ck.bad("spam.quarantine", "%v is above spam.reject (%v): nothing would ever be quarantined", s.Quarantine, s.Reject)
	}
}

// delivery checks outbound delivery and its routes.
func (ck *checker) delivery(d *Delivery) {
	if d.Port < 1 || d.Port > 65535 {
		ck.bad("delivery.port", "%d is not a port from 1 to 65535", d.Port)
	}
	if d.RelayHost != "" {
		if why := checkRelay(d.RelayHost); why != "" {
			ck.bad("delivery.relay_host", `bad address %q: %s; write it like "smtp.example.com:587", or "" to deliver to the MX hosts`, d.RelayHost, why)
		}
	} else if d.RelayUser != "" {
		ck.bad("delivery.relay_user", "is set but delivery.relay_host is empty; set the relay or remove the credentials")
	}
	ck.atLeast("delivery.max_connections", d.MaxConnections, 1)
	ck.atLeast("delivery.max_per_destination", d.MaxPerDestination, 1)
	ck.atLeast("delivery.max_rcpts_per_transaction", d.MaxRcptsPerTransaction, 1)
	ck.atLeast("delivery.max_messages_per_connection", d.MaxMessagesPerConnection, 1)
	ck.atLeast("delivery.max_received_headers", d.MaxReceivedHeaders, 1)
	ck.duration("delivery.idle_timeout", d.IdleTimeout)
	ck.oneOf("delivery.tls", d.TLS, tlsPolicies...)
	seen := make(map[string]int)
	for i, r := range d.Routes {
		key := fmt.Sprintf("delivery.route[%d]", i)
		dom := strings.ToLower(strings.TrimSuffix(r.Domain, "."))
		if why := checkDomain(r.Domain); why != "" {
			ck.bad(key+".domain", "%q is not a valid domain: %s", r.Domain, why)
		} else if j, dup := seen[dom]; dup {
			ck.bad(key+".domain", "%q already has a route (delivery.route[%d]); merge the two", r.Domain, j)
		} else {
			seen[dom] = i
		}
		if r.Relay != "" {
			if why := checkRelay(r.Relay); why != "" {
				ck.bad(key+".relay", `bad address %q: %s; write it like "mail.internal.example:25"`, r.Relay, why)
			}
		}
		if r.MaxConnections < 0 {
			ck.bad(key+".max_connections", "must be 0 (use max_per_destination) or more")
		}
		if r.Relay == "" && r.MaxConnections == 0 && r.TLS == "" {
			ck.bad(key, "route for %q sets neither relay, tls nor max_connections; set one or remove it", r.Domain)
		}
	}
}

// checkRelay returns why s is not a "host:port" to connect to, or "".
func checkRelay(s string) string {
	if why := checkHostPort(s); why != "" {
		return why
	}
	host, port, _ := net.SplitHostPort(s)
	if host == "" {
		return "the host is missing"
	}
	if port == "0" {
		return "port 0 cannot be connected to"
	}
	return ""
}

// auth checks [auth] and every [[dkim.key]]: its key file must exist and
// hold a usable key.
func (ck *checker) auth(c *Config) {
	if c.Auth.DMARC && (!c.Auth.SPF || !c.Auth.DKIMVerify) {
		ck.bad("auth.dmarc", "needs auth.spf and auth.dkim_verify: DMARC is evaluated from their results; turn them on or set dmarc = false")
	}
	if c.Auth.DMARCEnforce && !c.Auth.DMARC {
		ck.bad("auth.dmarc_enforce", "is true while auth.dmarc is false: there is no DMARC result to enforce")
	}
	seen := map[string]int{}
	for i, k := range c.DKIM.Keys {
		key := fmt.Sprintf("dkim.key[%d]", i)
		if why := checkDomain(k.Domain); why != "" {
			ck.bad(key+".domain", "%q is not a valid domain: %s", k.Domain, why)
		}
		if why := checkDomain(k.Selector); k.Selector == "" || why != "" || strings.Contains(k.Selector, ".") {
			ck.bad(key+".selector", "%q is not a valid selector: write one DNS label, like \"s2025\"", k.Selector)
		}
		id := strings.ToLower(strings.TrimSuffix(k.Domain, ".")) + "/" + k.Selector
		if j, ok := seen[id]; ok {
			ck.bad(key+".selector", "domain %q already has selector %q (dkim.key[%d]); give this key another selector", k.Domain, k.Selector, j)
		}
		seen[id] = i
		if k.PrivateKey == "" {
			ck.bad(key+".private_key", "must name the key's PEM file; make one with \"sluice dkim keygen --domain %s --selector %s\"", k.Domain, k.Selector)
		} else if _, err := dkimkey.Load(c.Path(k.PrivateKey)); err != nil {
			ck.bad(key+".private_key", "%v", err)
		}
	}
}

// proxy checks a service's PROXY protocol keys: a service behind a load
// balancer must say which addresses the balancers have.
func (ck *checker) proxy(sec string, l *Listener) {
	for i, p := range l.ProxyTrusted {
		if !p.IsValid() {
			ck.bad(fmt.Sprintf("%s.proxy_trusted[%d]", sec, i), "%s", badNetwork(`""`, "empty"))
		}
	}
	if l.ProxyProtocol && len(l.ProxyTrusted) == 0 {
		ck.bad(sec+".proxy_protocol", `is true but %s.proxy_trusted is empty: no load balancer could connect; list their networks, like proxy_trusted = ["10.0.0.0/8"]`, sec)
	}
	if !l.ProxyProtocol && len(l.ProxyTrusted) > 0 && ck.inFile(sec+".proxy_trusted") {
		ck.bad(sec+".proxy_trusted", "is set but %s.proxy_protocol is false: set proxy_protocol = true for a service behind a load balancer, or remove proxy_trusted", sec)
	}
}
