package dns

import "github.com/sluice-mta/sluice/core/filter"

// Resolver serves the filter host's "dns" grant.
var _ filter.Resolver = (*Resolver)(nil)
