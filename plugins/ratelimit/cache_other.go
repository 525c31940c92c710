//go:build !wasip1

package ratelimit

// cacheClosedBuckets is false natively: one test process runs many
// scenarios, each with its own store and clock, through the same handlers,
// so final counts kept from one would be wrong in the next. The wasm
// tests run the cache (a fresh instance per scenario), and closed_test.go
// tests it directly.
const cacheClosedBuckets = false
