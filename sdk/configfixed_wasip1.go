//go:build wasip1

package sdk

// configFixed says the configuration cannot change under a ConfigCache: in
// a wasm instance it is fixed for the instance's life (a changed NAME.toml
// loads new instances), so Get need not fetch it again to compare.
const configFixed = true
