//go:build !linux

package main

// execSelf does nothing where /proc/self/exe does not exist: the server
// runs with the runtime's defaults.
func execSelf(args, env []string) {}
