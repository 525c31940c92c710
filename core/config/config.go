// Package config holds Sluice's TOML configuration: its types, the embedded
// default that `sluice serve` runs with when no file is given, and validation
// that names the file, line and key of every mistake.
package config

import "net/netip"

// Config is the whole server configuration.
type Config struct {
	// Hostname names this server in the banner, HELO and Received headers.
	Hostname string `toml:"hostname"`
	// NodeID names this node among several sharing state ([kv]): in the
	// metrics (sluice_node_info; "" means the machine's host name there)
	// and, when set, in the Received: header's comment and on every log
	// line.
	NodeID string `toml:"node_id"`
	// DataDir holds the queue database, local mailboxes and the admin socket.
	DataDir string `toml:"data_dir"`
	// LocalDomains are delivered locally; anyone may send mail to them.
	LocalDomains []string `toml:"local_domains"`
	// TrustedNetworks may relay to any domain.
	TrustedNetworks []netip.Prefix `toml:"trusted_networks"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `toml:"log_level"`
	// LogFormat is "text" (slog's key=value lines) or "json" (one JSON
	// object a line).
	LogFormat string `toml:"log_format"`
	// ShutdownTimeout is how long a stop (SIGTERM) lets sessions in the
	// middle of a transaction and deliveries in flight finish.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`

	// SMTP is the inbound service, normally port 25.
	SMTP Listener `toml:"smtp"`
	// Submission is the service for the operator's own users, normally 587.
	Submission Submission `toml:"submission"`
	// Local is delivery to LocalDomains.
	Local Local `toml:"local"`
	// Queue is retries and lifetimes of queued mail.
	Queue Queue `toml:"queue"`
	// Admin is the socket `sluice queue …` talks to.
	Admin Admin `toml:"admin"`
	// Plugins is the WebAssembly filter host.
	Plugins Plugins `toml:"plugins"`
	// Spam holds the score thresholds applied after the data stage.
	Spam Spam `toml:"spam"`
	// DNS configures the resolver.
	DNS DNS `toml:"dns"`
	// TLS is the server certificate for STARTTLS and implicit TLS.
	TLS TLS `toml:"tls"`
	// Delivery is outbound SMTP to other domains.
	Delivery Delivery `toml:"delivery"`
	// Auth turns the inbound SPF, DKIM and DMARC checks on and off.
	Auth Auth `toml:"auth"`
	// DKIM holds the keys outbound mail is signed with.
	DKIM DKIM `toml:"dkim"`
	// Addressing is recipient resolution: local mailboxes, aliases and
	// forwards, verified at RCPT (core/addressing).
	Addressing Addressing `toml:"addressing"`
	// HTTP is the optional metrics, health and dashboard listener.
	HTTP HTTP `toml:"http"`
	// Metrics turns the counting behind the metrics on and off.
	Metrics Metrics `toml:"metrics"`
	// KV is where the plugins' store and the AUTH throttle keep their
	// state: this node's database or a shared Redis.
	KV KV `toml:"kv"`
	// TLSRPT is SMTP TLS Reporting: the daily reports to other domains.
	TLSRPT TLSRPT `toml:"tlsrpt"`
}

// Delivery configures outbound SMTP to other domains' mail exchangers.
type Delivery struct {
	// Port is where mail exchangers are connected to.
	Port int `toml:"port"`
	// RelayHost, "host:port", sends all outbound mail through a smarthost;
	// "" delivers to the MX hosts.
	RelayHost string `toml:"relay_host"`
	// RelayUser and RelayPassword authenticate to RelayHost (AUTH PLAIN
	// or LOGIN), only over a verified TLS session, or in plain text with
	// relay_tls = "none" to a loopback relay; "" for none.
	RelayUser     string `toml:"relay_user"`
	RelayPassword string `toml:"relay_password"`
	// RelayTLS is how a relay's session is secured: "starttls", "implicit"
	// (port 465) or "none" (plain text, loopback relays only).
	RelayTLS string `toml:"relay_tls"`
	// RelayCAFile is a PEM file of the CAs relays' certificates are
	// verified against (path template with {data_dir}); "" means the
	// system's roots.
	RelayCAFile string `toml:"relay_ca_file"`
	// CAFile is the same for mail exchangers (tls = "verify", MTA-STS) and
	// MTA-STS policy servers.
	CAFile string `toml:"ca_file"`
	// MTASTS applies the MTA-STS policies (RFC 8461) domains publish.
	MTASTS bool `toml:"mta_sts"`
	// DANE applies the DANE TLSA records (RFC 7672) of MX hosts, when
	// [dns] trusted_servers validate DNSSEC.
	DANE bool `toml:"dane"`
	// MaxConnections bounds outbound deliveries in progress at once.
	MaxConnections int `toml:"max_connections"`
	// MaxPerDestination bounds them per recipient domain.
	MaxPerDestination int `toml:"max_per_destination"`
	// MaxRcptsPerTransaction bounds the recipients of one transaction.
	MaxRcptsPerTransaction int `toml:"max_rcpts_per_transaction"`
	// MaxMessagesPerConnection is how many messages a connection carries.
	MaxMessagesPerConnection int `toml:"max_messages_per_connection"`
	// IdleTimeout closes a connection kept for reuse after this long.
	IdleTimeout Duration `toml:"idle_timeout"`
	// TLS is the TLS policy of MX delivery: "opportunistic" (STARTTLS when
	// offered, and MTA-STS and DANE when published), "verify" (a
	// certificate valid for the MX name required), "dane-only" or "none".
	TLS string `toml:"tls"`
	// MaxReceivedHeaders is how many Received: headers make a mail loop.
	MaxReceivedHeaders int `toml:"max_received_headers"`
	// Routes override delivery for single domains.
	Routes []DeliveryRoute `toml:"route"`
}

// DeliveryRoute overrides delivery for one domain: a relay to send its
// mail to instead of its MX hosts, and/or its own connection limit.
type DeliveryRoute struct {
	Domain string `toml:"domain"`
	// Relay is "host:port"; "" keeps MX delivery.
	Relay string `toml:"relay"`
	// RelayUser and RelayPassword log in to Relay, as [delivery]'s do.
	RelayUser     string `toml:"relay_user"`
	RelayPassword string `toml:"relay_password"`
	// RelayTLS is "starttls" (default), "implicit" or "none" (loopback).
	RelayTLS string `toml:"relay_tls"`
	// RelayCAFile is a PEM file of the CAs the relay's certificate is
	// verified against, instead of delivery.relay_ca_file (path template
	// with {data_dir}; "" takes that one).
	RelayCAFile string `toml:"relay_ca_file"`
	// TLS is the domain's TLS policy ("none", "opportunistic", "verify",
	// "dane-only"); "" takes delivery.tls, or "verify" for a relay with
	// credentials.
	TLS string `toml:"tls"`
	// MaxConnections replaces max_per_destination for the domain; 0 keeps
	// it.
	MaxConnections int `toml:"max_connections"`
}

// Plugins configures the WebAssembly filter host.
type Plugins struct {
	// Dir holds the plugins: every *.wasm, with an optional NAME.toml
	// beside it. A path template with {data_dir}; "" disables plugins.
	Dir string `toml:"dir"`
	// CacheDir keeps compiled modules between restarts ("" = none).
	CacheDir string `toml:"cache_dir"`
	// MemoryBudget bounds what the plugins' instances may take together,
	// each plugin counted at pool_max × (memory_limit + its tables); a
	// plugin over what is left is refused at load. 0 means the machine's
	// memory (or its cgroup's limit).
	MemoryBudget Size `toml:"memory_budget"`
}

// Spam holds the thresholds applied to the sum of the plugins' scores
// after the data stage; 0 switches one off.
type Spam struct {
	// AddHeader adds "X-Spam-Status: Yes, score=… symbols=…".
	AddHeader float64 `toml:"add_header"`
	// Quarantine keeps the message held in the queue.
	Quarantine float64 `toml:"quarantine"`
	// Reject refuses the message with 550 5.7.1.
	Reject float64 `toml:"reject"`
}

// DNS configures the resolver used by plugins (and outbound delivery).
type DNS struct {
	// Servers are "host:port" of recursive resolvers; empty means the
	// nameservers of /etc/resolv.conf.
	Servers []string `toml:"servers"`
	// Timeout is per query attempt.
	Timeout Duration `toml:"timeout"`
	// TrustedServers are those of Servers that validate DNSSEC and whose
	// AD bit is believed (DANE needs one): a resolver on this machine.
	TrustedServers []string `toml:"trusted_servers"`
}

// Listener configures one SMTP service (port 25 or submission) and its limits.
type Listener struct {
	// Listen addresses, host:port.
	Listen []string `toml:"listen"`
	// MaxMessageSize in bytes ("50MiB" in the file).
	MaxMessageSize Size `toml:"max_message_size"`
	// MaxRecipients per message; more get 452 4.5.3.
	MaxRecipients int `toml:"max_recipients"`
	// MaxLineLength of a command line.
	MaxLineLength int `toml:"max_line_length"`
	// BareNewline is "reject" (default) or "normalize".
	BareNewline string `toml:"bare_newline"`
	// CommandTimeout bounds the time a whole command line may take to
	// arrive, from the end of the previous reply (not each read).
	CommandTimeout Duration `toml:"command_timeout"`
	// DataTimeout is how long the server waits for each read inside DATA.
	DataTimeout Duration `toml:"data_timeout"`
	// SessionTimeout bounds a whole connection.
	SessionTimeout Duration `toml:"session_timeout"`
	// MaxConnections in total on this service.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP from one client address.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MinDataRate in bytes a second is what DATA and BDAT must keep up
	// once their grace period (the command timeout) has passed.
	MinDataRate int `toml:"min_data_rate"`
	// StressThreshold is the number of connections at which the service
	// enters stress mode; 0 means 80% of MaxConnections.
	StressThreshold int `toml:"stress_threshold"`
	// StressTimeout replaces the command and data timeouts (when shorter)
	// while the service is in stress mode.
	StressTimeout Duration `toml:"stress_timeout"`
	// RDNSTimeout bounds the reverse DNS lookup of a client and its
	// forward confirmation (FCrDNS), which run from connect while the
	// banner is sent; past it the client is "unknown".
	RDNSTimeout Duration `toml:"rdns_timeout"`
	// ProxyProtocol makes every connection to this service's addresses
	// start with a PROXY protocol header (v1 or v2) naming the client, as
	// a load balancer sends; only ProxyTrusted may connect.
	ProxyProtocol bool `toml:"proxy_protocol"`
	// ProxyTrusted are the networks of the load balancers.
	ProxyTrusted []netip.Prefix `toml:"proxy_trusted"`
	// TLSMinVersion is the oldest TLS version this service accepts ("1.0"
	// to "1.3"); "" takes [tls] min_version.
	TLSMinVersion string `toml:"tls_min_version"`
	// TLSAskClientCert asks each TLS client for a certificate, which is
	// not verified: its subject, issuer and fingerprint are logged.
	TLSAskClientCert bool `toml:"tls_ask_client_cert"`
}

// Submission is the service for the operator's own users: a Listener
// (STARTTLS on Listen) plus implicit TLS and login.
type Submission struct {
	Listener
	// TLSListen are implicit-TLS addresses (port 465), host:port.
	TLSListen []string `toml:"tls_listen"`
	// UsersFile holds "user:hash" lines (path template with {data_dir}).
	UsersFile string `toml:"users_file"`
	// AllowInsecureAuth offers AUTH without TLS (loopback testing only).
	AllowInsecureAuth bool `toml:"allow_insecure_auth"`
	// RestrictSender limits an authenticated user's MAIL FROM to the
	// domain of its login.
	RestrictSender bool `toml:"restrict_sender"`
	// AuthFailDelay is waited before the reply to a failed login, doubled
	// with each failure of that user from that address, up to
	// AuthFailMaxDelay.
	AuthFailDelay    Duration `toml:"auth_fail_delay"`
	AuthFailMaxDelay Duration `toml:"auth_fail_max_delay"`
	// AuthMaxFailures failed logins of one user from one address within
	// AuthFailWindow get 421 4.7.0, and that user's logins from that
	// address are refused until the window passes.
	AuthMaxFailures int      `toml:"auth_max_failures"`
	AuthFailWindow  Duration `toml:"auth_fail_window"`
	// AuthMaxUserFailures of one user from any addresses block that user
	// everywhere; AuthMaxAddressFailures from one address for any users
	// block that address.
	AuthMaxUserFailures    int `toml:"auth_max_user_failures"`
	AuthMaxAddressFailures int `toml:"auth_max_address_failures"`
	// AuthLimitTrusted throttles logins from trusted_networks too (they
	// are exempt by default).
	AuthLimitTrusted bool `toml:"auth_limit_trusted"`
}

// TLS names the server certificate. Both empty means a self-signed
// certificate generated for hostname into {data_dir}/tls/.
type TLS struct {
	// Cert is a PEM certificate chain (path template with {data_dir}).
	Cert string `toml:"cert"`
	// Key is the PEM private key for Cert.
	Key string `toml:"key"`
	// MinVersion is the oldest TLS version accepted ("1.0" to "1.3");
	// a service's tls_min_version overrides it.
	MinVersion string `toml:"min_version"`
	// Extra are more certificates served beside Cert (an RSA one beside
	// an ECDSA one): a client gets Cert if it supports it, else the first
	// of these it does.
	Extra []TLSPair `toml:"extra"`
}

// TLSPair is one more certificate: [[tls.extra]] cert and key.
type TLSPair struct {
	// Cert is a PEM certificate chain (path template with {data_dir}).
	Cert string `toml:"cert"`
	// Key is the PEM private key for Cert.
	Key string `toml:"key"`
}

// Local configures local delivery.
type Local struct {
	// Transport is "maildir" or "lmtp".
	Transport string `toml:"transport"`
	// Maildir is a path template with {data_dir}, {domain} and {user}.
	Maildir string `toml:"maildir"`
	// CreateMailboxes creates a missing Maildir; when false a missing one is
	// an unknown user (permanent failure, bounced).
	CreateMailboxes bool `toml:"create_mailboxes"`
	// LMTP is host:port or unix:/path.
	LMTP string `toml:"lmtp"`
}

// Queue configures retries and lifetimes.
type Queue struct {
	// MinBackoff is the wait before the first retry after a temporary
	// failure; later waits grow from it.
	MinBackoff Duration `toml:"min_backoff"`
	// MaxBackoff caps the wait between retries; never less than MinBackoff.
	MaxBackoff Duration `toml:"max_backoff"`
	// MaxLifetime is how long a message is retried before it is bounced.
	MaxLifetime Duration `toml:"max_lifetime"`
	// Workers is how many deliveries run at once.
	Workers int `toml:"workers"`
	// GCInterval is how often Badger's value log is garbage collected.
	GCInterval Duration `toml:"gc_interval"`
	// DelayWarning, when not zero, sends the sender one "delayed" DSN once
	// a message has been queued this long (zero is off).
	DelayWarning Duration `toml:"delay_warning"`
	// HoldLifetime is how long a held message (quarantined by a plugin or
	// the spam threshold, or held by the administrator) is kept before it
	// is bounced with a DSN; zero keeps it until released.
	HoldLifetime Duration `toml:"hold_lifetime"`
}

// Admin configures the admin socket used by `sluice queue …`.
type Admin struct {
	// Socket is a path template with {data_dir}.
	Socket string `toml:"socket"`
	// SocketMode is the socket's permission bits, octal ("0600"); no bits
	// for others.
	SocketMode Mode `toml:"socket_mode"`
	// SocketGroup, when set, is the socket's group (a name or a number),
	// so that its members may use it (with SocketMode "0660").
	SocketGroup string `toml:"socket_group"`
}

// Auth configures the inbound checks, whose results go into an
// Authentication-Results header and to the filters.
type Auth struct {
	// SPF checks the envelope sender's SPF record.
	SPF bool `toml:"spf"`
	// DKIMVerify verifies the message's DKIM signatures.
	DKIMVerify bool `toml:"dkim_verify"`
	// DMARC evaluates the From domain's DMARC policy (needs SPF and
	// DKIMVerify).
	DMARC bool `toml:"dmarc"`
	// DMARCEnforce refuses mail whose DMARC policy says p=reject; otherwise
	// the result is only recorded for the filters to score.
	DMARCEnforce bool `toml:"dmarc_enforce"`
}

// DKIM configures outbound signing.
type DKIM struct {
	// Keys are the signing keys, one [[dkim.key]] table each.
	Keys []DKIMKey `toml:"key"`
}

// DKIMKey is one signing key of a domain.
type DKIMKey struct {
	// Domain is the signing domain (d=); mail from it and its subdomains
	// is signed.
	Domain string `toml:"domain"`
	// Selector is the key's selector (s=), published at
	// SELECTOR._domainkey.DOMAIN.
	Selector string `toml:"selector"`
	// PrivateKey is the PEM key file (path template with {data_dir}).
	PrivateKey string `toml:"private_key"`
}
