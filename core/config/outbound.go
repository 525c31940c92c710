package config

import (
	"fmt"
	"net"

	"github.com/sluice-mta/sluice/core/tlsconf"
)

// tlsPolicies are the values of delivery.tls and a route's tls.
var tlsPolicies = []string{"opportunistic", "none", "verify", "dane-only"}

// outboundTLS checks how outbound sessions are secured: relay_tls, the CA
// files, each route's relay credentials and TLS. A password never goes over
// a session that is not verified, nor in plain text but to loopback.
func (ck *checker) outboundTLS(c *Config) {
	d := &c.Delivery
	ck.oneOf("delivery.relay_tls", d.RelayTLS, "starttls", "implicit", "none")
	if d.RelayTLS == "none" && d.RelayHost != "" && !relayOnLoopback(d.RelayHost) {
		ck.bad("delivery.relay_tls", `is "none" but delivery.relay_host %q is not on a loopback address: the relay would be spoken to (and the password sent) in plain text across the network; use "starttls" or "implicit"`, d.RelayHost)
	}
	for _, f := range []struct{ key, path string }{{"delivery.relay_ca_file", d.RelayCAFile}, {"delivery.ca_file", d.CAFile}} {
		if f.path == "" {
			continue
		}
		if _, err := tlsconf.CAPool(c.Path(f.path)); err != nil {
			ck.bad(f.key, "%v; name a PEM file of CA certificates, or \"\" for the system's roots", err)
		}
	}
	for i, r := range d.Routes {
		key := fmt.Sprintf("delivery.route[%d]", i)
		if r.TLS != "" {
			ck.oneOf(key+".tls", r.TLS, tlsPolicies...)
		}
		if r.RelayTLS != "" {
			ck.oneOf(key+".relay_tls", r.RelayTLS, "starttls", "implicit", "none")
		}
		if r.RelayCAFile != "" {
			if _, err := tlsconf.CAPool(c.Path(r.RelayCAFile)); err != nil {
				ck.bad(key+".relay_ca_file", "%v; name a PEM file of CA certificates, or \"\" for delivery.relay_ca_file", err)
			}
		}
		switch {
		case (r.RelayUser != "" || r.RelayTLS != "" || r.RelayCAFile != "") && r.Relay == "":
			ck.bad(key+".relay", "is empty but the route sets relay_user, relay_tls or relay_ca_file; name the relay (\"host:port\") or remove them")
		case r.RelayTLS == "none" && !relayOnLoopback(r.Relay):
			ck.bad(key+".relay_tls", `is "none" but relay %q is not on a loopback address; use "starttls" or "implicit"`, r.Relay)
		case r.RelayUser != "" && r.RelayTLS != "none" && (r.TLS == "opportunistic" || r.TLS == "none"):
			ck.bad(key+".tls", `is %q but the route has relay_user: the password would go over a session that is not verified; use "verify" (the default with credentials)`, r.TLS)
		case r.Relay != "" && r.TLS == "dane-only":
			ck.bad(key+".tls", `is "dane-only" but the route goes to relay %q, not to the domain's MX hosts, where DANE applies; use "verify" (the relay's certificate checked against relay_ca_file)`, r.Relay)
		case r.Relay == "" && r.TLS != "" && d.RelayHost != "":
			ck.bad(key+".tls", `sets the TLS policy of %s's MX delivery, but the route has no relay and delivery.relay_host %q takes the domain's mail (its certificate always verified); remove tls, or give the route a relay of its own`, r.Domain, d.RelayHost)
		}
	}
}

// relayOnLoopback reports whether a "host:port" relay is on loopback.
func relayOnLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	return err == nil && isLoopback(host)
}
