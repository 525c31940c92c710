//go:build !wasip1

package sdk

// configFixed is false natively: one test process runs many
// configurations, so ConfigCache.Get compares each call's with the one it
// decoded.
const configFixed = false
