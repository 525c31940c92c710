package addressing

import (
	"log/slog"

	"github.com/sluice-mta/sluice/core/addressing/srs"
	"github.com/sluice-mta/sluice/core/config"
)

// FromConfig returns the Options of a loaded configuration: its local
// domains, [addressing] files, delimiter, verification, transports and
// SRS (whose secret file it reads), and [local] as the default transport.
func FromConfig(cfg *config.Config, log *slog.Logger) (Options, error) {
	a := cfg.Addressing
	o := Options{
		LocalDomains: cfg.LocalDomains,
		Files:        Files{Domains: a.Domains, Mailboxes: a.Mailboxes, Aliases: a.Aliases},
		Delimiter:    a.RecipientDelimiter,
		Verify:       Verify(a.Verify),
		Local:        Transport{Kind: Maildir},
		LMTP:         LMTPOptions{Hostname: cfg.Hostname},
		Logger:       log,
	}
	if cfg.Local.Transport == "lmtp" {
		o.Local = Transport{Kind: LMTP, LMTP: cfg.Local.LMTP}
	}
	if len(a.Transports) > 0 {
		o.Transports = make(map[string]string, len(a.Transports))
		for _, t := range a.Transports {
			o.Transports[t.Domain] = t.LMTP
		}
	}
	if a.SRSDomain != "" {
		secrets, err := srs.LoadSecrets(a.SRSSecretFile)
		if err != nil {
			return Options{}, err
		}
		rw, err := srs.New(srs.Options{Domain: a.SRSDomain, Secrets: secrets})
		if err != nil {
			return Options{}, err
		}
		o.SRS = rw
	}
	return o, nil
}
