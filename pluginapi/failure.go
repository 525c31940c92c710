package pluginapi

// Kinds of plugin failure the host reports: the kind label of
// sluice_plugin_failures_total and the kind of the filter host's failure
// log lines. The host and its metrics registry share them from here.
const (
	// FailTrap: the guest trapped or exited (a Go guest's panic, an
	// unreachable, an out-of-bounds access), or returned no known verdict.
	FailTrap = "trap"
	// FailTimeout: the call ran past its timeout and was killed, or no
	// instance was free within it.
	FailTimeout = "timeout"
	// FailMemory: the call failed after the guest hit its memory_limit (or
	// its tables' bound). wazero does not trap there: memory.grow returns
	// -1 and the guest gives up (Go's runtime exits with "out of memory",
	// others trap); the host's instrumentation flags the failed grow.
	FailMemory = "memory"
	// FailLoad: the module failed to load, or an instance of it failed to
	// start (instantiate, _initialize, ABI negotiation).
	FailLoad = "load"
	// FailSuspended: the plugin is suspended, its calls having kept
	// failing: its failure policy answered the call without running it.
	FailSuspended = "suspended"
	// FailQuota: a call of the plugin had a log line or KV write refused
	// by its quota, reported once per call. It is not a failed call.
	FailQuota = "quota"
)

// FailureKinds lists every kind of plugin failure, in a fixed order.
func FailureKinds() []string {
	return []string{FailTrap, FailTimeout, FailMemory, FailLoad, FailSuspended, FailQuota}
}
