//go:build wasip1

package sdk

// configFixed says the configuration cannot change under a ConfigCache: in
// a wasm instance it is fixed for the instance's life (a changed NAME.toml
// loads new instances), so Get need not fetch it again to compare.
const configFixed = true

// InstanceCache reports whether a plugin's package-level variables belong
// to one instance that runs one call at a time, as in a wasm build: a
// plugin may then keep what it computed for one call (a session's parsed
// properties, a derived key) in package variables, without a lock, for
// the next call to reuse. It is false natively, where sdktest may run a
// plugin's handlers concurrently.
const InstanceCache = true
