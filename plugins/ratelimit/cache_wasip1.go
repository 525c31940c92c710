//go:build wasip1

package ratelimit

// cacheClosedBuckets turns the closed-bucket cache on: a wasm instance
// serves one server, one store, for its life.
const cacheClosedBuckets = true
