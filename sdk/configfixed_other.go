//go:build !wasip1

package sdk

// configFixed is false natively: one test process runs many
// configurations, so ConfigCache.Get compares each call's with the one it
// decoded.
const configFixed = false

// InstanceCache is false natively: sdktest may run a plugin's handlers
// concurrently, so a plugin keeps no per-instance cache in package
// variables (see the wasip1 build's InstanceCache).
const InstanceCache = false
