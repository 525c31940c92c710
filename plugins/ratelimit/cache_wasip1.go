//go:build wasip1

package main

// cacheClosedBuckets turns the closed-bucket cache on: a wasm instance
// serves one server, one store, for its life.
const cacheClosedBuckets = true
