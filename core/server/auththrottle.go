package server

import (
	"context"

	"github.com/sluice-mta/sluice/core/admin"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/smtpd"
)

// authLimits are the AUTH throttle's limits of cfg ([submission]).
func authLimits(cfg *config.Config) smtpd.AuthLimits {
	sub := cfg.Submission
	return smtpd.AuthLimits{
		Delay:              sub.AuthFailDelay.D(),
		MaxDelay:           sub.AuthFailMaxDelay.D(),
		MaxFailures:        sub.AuthMaxFailures,
		MaxUserFailures:    sub.AuthMaxUserFailures,
		MaxAddressFailures: sub.AuthMaxAddressFailures,
		Window:             sub.AuthFailWindow.D(),
		LimitTrusted:       sub.AuthLimitTrusted,
	}
}

// authKV is where the AUTH throttle keeps its counts: the plugins'
// key-value store ([kv]), so that a Redis shared by several nodes shares
// them too.
func (s *Server) authKV() filter.KV { return s.kv }

// authAdmin is the AUTH throttle for the admin socket, with the limits of
// the configuration in force at each request.
type authAdmin struct{ s *Server }

var _ admin.AuthThrottle = authAdmin{}

func (a authAdmin) throttle() *smtpd.AuthThrottle {
	l := a.s.live()
	return smtpd.NewAuthThrottle(l.authKV(), authLimits(l.cfg), l.cfg.TrustedNetworks)
}

// Status implements admin.AuthThrottle.
func (a authAdmin) Status(ctx context.Context) ([]smtpd.AuthRecord, error) {
	return a.throttle().Status(ctx)
}

// Unblock implements admin.AuthThrottle.
func (a authAdmin) Unblock(ctx context.Context, target string) (int, error) {
	return a.throttle().Unblock(ctx, target)
}
