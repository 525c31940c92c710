package server

import (
	"fmt"

	"github.com/sluice-mta/sluice/core/auth"
)

// newAuth builds the inbound checker (nil when every check is off) and the
// DKIM signer (nil without keys).
func (s *Server) newAuth() error {
	ac := s.cfg.Auth
	if ac.SPF || ac.DKIMVerify || ac.DMARC {
		s.checker = auth.NewChecker(auth.CheckerOptions{
			Hostname:  s.cfg.Hostname,
			Resolver:  s.resolver,
			Logger:    s.log,
			SkipSPF:   !ac.SPF,
			SkipDKIM:  !ac.DKIMVerify,
			SkipDMARC: !ac.DMARC,
		})
	}
	if len(s.cfg.DKIM.Keys) == 0 {
		return nil
	}
	keys := make([]auth.KeyConfig, len(s.cfg.DKIM.Keys))
	for i, k := range s.cfg.DKIM.Keys {
		keys[i] = auth.KeyConfig{Domain: k.Domain, Selector: k.Selector, PrivateKeyPath: k.PrivateKey}
	}
	var err error
	if s.signer, err = auth.NewSigner(keys); err != nil {
		return fmt.Errorf("[[dkim.key]]: %w", err)
	}
	return nil
}
