package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/sluice-mta/sluice/core/addressing/srs"
)

// Addressing configures recipient resolution (core/addressing): which
// addresses at the local domains exist, what aliases expand to, how
// unknown recipients are found out at RCPT, and SRS for forwards.
type Addressing struct {
	// Domains lists more local domains, one a line (path template with
	// {data_dir}; "" for none).
	Domains string `toml:"domains"`
	// Mailboxes lists the mailboxes, one address a line (Postfix
	// virtual_mailbox_maps format).
	Mailboxes string `toml:"mailboxes"`
	// Aliases maps sources to targets (Postfix virtual(5) format).
	Aliases string `toml:"aliases"`
	// RecipientDelimiter: with "+", alice+tag@d is delivered to alice@d;
	// each character is a delimiter; "" turns it off.
	RecipientDelimiter string `toml:"recipient_delimiter"`
	// Verify is "maps", "lmtp" or "none"; "" (the default) means "maps"
	// when Mailboxes or Aliases is set, else "none". Loading resolves it.
	Verify string `toml:"verify"`
	// SRSDomain, when set, rewrites the envelope sender of mail forwarded
	// to a remote target with SRS under this domain.
	SRSDomain string `toml:"srs_domain"`
	// SRSSecretFile holds the SRS secret, one a line (the first signs).
	SRSSecretFile string `toml:"srs_secret_file"`
	// Transports give domains an LMTP server of their own.
	Transports []AddressingTransport `toml:"transport"`
}

// AddressingTransport delivers one domain's mailboxes to its own LMTP
// server instead of [local].
type AddressingTransport struct {
	Domain string `toml:"domain"`
	// LMTP is "host:port" or "unix:/path".
	LMTP string `toml:"lmtp"`
}

// addressing checks [addressing].
func (ck *checker) addressing(c *Config) {
	a := &c.Addressing
	for _, f := range []struct{ key, path string }{
		{"addressing.domains", a.Domains},
		{"addressing.mailboxes", a.Mailboxes},
		{"addressing.aliases", a.Aliases},
	} {
		if f.path == "" {
			continue
		}
		if fi, err := os.Stat(c.Path(f.path)); err != nil {
			ck.bad(f.key, "cannot read the map file: %v", err)
		} else if fi.IsDir() {
			ck.bad(f.key, "%q is a directory; name the map file", f.path)
		}
	}
	for _, r := range a.RecipientDelimiter {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`@"\<>()[],;:`, r) {
			ck.bad("addressing.recipient_delimiter", `%q cannot be a delimiter; use characters like "+" or "-", or "" for none`, r)
			break
		}
	}
	ck.oneOf("addressing.verify", a.Verify, "", "maps", "lmtp", "none")
	switch a.Verify {
	case "maps":
		if a.Mailboxes == "" && a.Aliases == "" {
			ck.bad("addressing.verify", `is "maps" but neither addressing.mailboxes nor addressing.aliases is set, so every recipient would be refused; name the files, or use "lmtp" or "none"`)
		}
	case "lmtp":
		if c.Local.Transport != "lmtp" && len(a.Transports) == 0 {
			ck.bad("addressing.verify", `is "lmtp" but no domain is delivered over LMTP; set local.transport = "lmtp" or add an [[addressing.transport]] with lmtp`)
		}
	}
	switch {
	case a.SRSDomain != "":
		if why := checkDomain(a.SRSDomain); why != "" {
			ck.bad("addressing.srs_domain", "%q is not a valid domain: %s", a.SRSDomain, why)
		}
		if a.SRSSecretFile == "" {
			ck.bad("addressing.srs_domain", `is set but addressing.srs_secret_file is empty; write a secret (e.g. "head -c 24 /dev/urandom | base64 > /etc/sluice/srs.secret") and name the file`)
		} else if _, err := srs.LoadSecrets(c.Path(a.SRSSecretFile)); err != nil {
			ck.bad("addressing.srs_secret_file", "%v", err)
		}
	case a.SRSSecretFile != "":
		ck.bad("addressing.srs_secret_file", "is set but addressing.srs_domain is empty; set the domain forwarded senders are rewritten under")
	}
	seen := map[string]int{}
	for i, t := range a.Transports {
		key := fmt.Sprintf("addressing.transport[%d]", i)
		dom := strings.ToLower(strings.TrimSuffix(t.Domain, "."))
		if why := checkDomain(t.Domain); why != "" {
			ck.bad(key+".domain", "%q is not a valid domain: %s", t.Domain, why)
		} else if j, dup := seen[dom]; dup {
			ck.bad(key+".domain", "%q already has a transport (addressing.transport[%d]); keep one", t.Domain, j)
		} else {
			seen[dom] = i
		}
		if why := checkLMTP(t.LMTP); why != "" {
			ck.bad(key+".lmtp", `bad address %q: %s; write it like "127.0.0.1:24" or "unix:/run/dovecot/lmtp"`, t.LMTP, why)
		}
	}
}

// normalize expands the paths, lowercases the domains and decides an
// empty verify.
func (a *Addressing) normalize(c *Config) {
	a.Domains = c.Path(a.Domains)
	a.Mailboxes = c.Path(a.Mailboxes)
	a.Aliases = c.Path(a.Aliases)
	a.SRSSecretFile = c.Path(a.SRSSecretFile)
	a.SRSDomain = strings.ToLower(strings.TrimSuffix(a.SRSDomain, "."))
	for i := range a.Transports {
		a.Transports[i].Domain = strings.ToLower(strings.TrimSuffix(a.Transports[i].Domain, "."))
	}
	if a.Verify == "" {
		a.Verify = "none"
		if a.Mailboxes != "" || a.Aliases != "" {
			a.Verify = "maps"
		}
	}
}

// Warnings returns what a loaded configuration allows that an operator
// probably does not want, for `sluice config check`. Today: local domains
// that accept any local part (addressing.verify = "none"), where a
// dictionary attack is accepted and every guessed user gets a mailbox or
// a bounce.
func (c *Config) Warnings() []string {
	var w []string
	if c.Addressing.Verify == "none" && len(c.LocalDomains) > 0 {
		w = append(w, fmt.Sprintf(`local domain%s %s accept%s any local part (addressing.verify = "none"): mail to any guessed user is taken; list the mailboxes in addressing.mailboxes and addressing.aliases, or set addressing.verify = "lmtp"`,
			plural(len(c.LocalDomains)), strings.Join(quoteEach(c.LocalDomains), ", "), verbS(len(c.LocalDomains))))
	}
	return w
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func verbS(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

func quoteEach(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}
