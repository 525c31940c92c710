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

// Check loads cfg's map files the way the server would, without watching
// them or asking any LMTP server, for `sluice config check`: it returns
// what to warn about (the configuration's own warnings, then the maps':
// catch-alls, "@domain" mailboxes, duplicates) with the maps' counts, or
// the maps' mistakes as "file:line: what is wrong".
func Check(cfg *config.Config) ([]string, Stats, error) {
	warnings := cfg.Warnings()
	o, err := FromConfig(cfg, nil)
	if err != nil {
		return warnings, Stats{}, err
	}
	t, err := LoadTable(o.Files)
	if err != nil {
		return warnings, Stats{}, err
	}
	return append(warnings, t.Warnings()...), t.Stats(), nil
}
