// Package pluginapi is the contract between the Sluice filter host and the
// WebAssembly plugins it runs: the host module name, the names and
// signatures of every host function and guest export, which hooks and
// grants each host function needs, hook and verdict codes, property and
// status codes, the ABI version and its optional features. It uses only the
// standard library, so the host and the Go SDK (GOOS=wasip1) share it.
//
// ABI.md in this directory describes the same contract for authors in any
// language.
//
// Conventions:
//   - Strings and byte strings cross as (pointer, length) pairs in guest
//     memory. The guest owns every buffer: to receive a value it passes a
//     buffer (pointer, capacity) and the host writes at most capacity bytes
//     and returns the value's full length. When that is larger than the
//     capacity nothing was written and the guest retries with a buffer of
//     the returned size.
//   - Functions return an i32: >= 0 is success (a length or 0), < 0 is one
//     of the Status codes. No host function traps on bad input; a pointer
//     outside guest memory is StatusBadArgument.
//   - Lists (recipients, DNS answers, header values) are returned as one
//     string of items each terminated by "\n".
package pluginapi

import "strconv"

// Version is the ABI version this package describes. A guest declares the
// version it was built for by exporting ExportABIVersion; the host refuses a
// module whose major version differs. Optional parts added within a version
// are Features, negotiated through ExportFeatures, so they need no new
// version.
const Version uint32 = 1

// HostModule is the import module name of every host function.
const HostModule = "sluice"

// Guest exports.
const (
	// ExportABIVersion () -> i32: the ABI version the guest was built for.
	ExportABIVersion = "sluice_abi_version"
	// ExportHooks () -> i32: a bit set of Hook values the guest implements
	// (bit 1<<hook). Called once at load; the host never calls the rest.
	ExportHooks = "sluice_hooks"
	// ExportOnHook (hook i32) -> i32: run one hook; returns a Verdict.
	ExportOnHook = "sluice_on_hook"
	// ExportInit () -> i32, optional: called once when the plugin is loaded
	// (after sluice_hooks, at HookInit) to validate its configuration. 0
	// loads the plugin; any other value refuses it, and the host reports
	// the last line the guest logged at error level as the reason. A
	// plugin that depends on it being called requires FeatureInit.
	ExportInit = "sluice_init"
	// ExportFeatures (host_features i32) -> i32, optional: the feature
	// negotiation. The host calls it on every instance, after _initialize
	// and sluice_abi_version and before any other export, with the
	// Features it supports; the guest returns the Features it requires. A
	// module requiring a feature the host lacks is refused at load, with
	// a message naming the feature and the features the host has. A module
	// without this export requires none.
	ExportFeatures = "sluice_features"
	// ExportInitialize is the WASI reactor initializer; the host calls it
	// once per instance when present (Go's -buildmode=c-shared has it).
	ExportInitialize = "_initialize"
)

// Features is a set of optional parts of the ABI, one bit each, exchanged
// through ExportFeatures: the host passes the set it supports, the guest
// returns the set it requires. Bits are never reused; a host refuses a
// module that requires a bit it does not know.
type Features uint32

// Feature bits.
const (
	// FeatureInit: the host calls the guest's sluice_init export once at
	// load, at HookInit, and refuses the plugin when it returns non-zero.
	// A module requiring it must export sluice_init.
	FeatureInit Features = 1 << 0

	// FeatureEntry: the module holds several plugins (a bundle) and runs
	// the one named by PropPlugin, which the host answers at every export
	// call after sluice_features (sluice_hooks, sluice_init and every
	// hook). Plugins loaded from one module's bytes share its compiled
	// code; each still has its own instances, memory, configuration and
	// key-value namespace.
	FeatureEntry Features = 1 << 1

	// KnownFeatures is every feature this package defines. The filter
	// host built with it supports all of them and passes this set to
	// sluice_features.
	KnownFeatures = FeatureInit | FeatureEntry
)

var featureNames = [...]string{"init", "entry"}

// String names the features of the set, comma-separated ("init"); a bit
// this package does not define is "bit N"; the empty set is "none".
func (f Features) String() string {
	if f == 0 {
		return "none"
	}
	var s []byte
	for i := 0; i < 32; i++ {
		if f&(1<<i) == 0 {
			continue
		}
		if len(s) > 0 {
			s = append(s, ", "...)
		}
		if i < len(featureNames) {
			s = append(s, featureNames[i]...)
		} else {
			s = append(s, "bit "...)
			s = strconv.AppendInt(s, int64(i), 10)
		}
	}
	return string(s)
}

// Hook is a stage of a message's life at which plugins run.
type Hook int32

// Hooks, in the order a message meets them.
const (
	// HookConnect: a new SMTP session. The server creates the session at
	// the client's first HELO or EHLO, not at the TCP connection, so
	// connect runs then, after the 220 banner and just before helo (the
	// helo property is still empty). A refusal answers that HELO/EHLO; the
	// client may greet again, which runs connect and helo again. After
	// STARTTLS the next EHLO starts a new session: both run again, with
	// the TLS property set.
	HookConnect Hook = iota
	// HookHelo: the HELO/EHLO that started the session (see HookConnect).
	// A later EHLO in the same session resets the transaction but does not
	// run the hook again.
	HookHelo
	HookMail    // MAIL FROM
	HookRcpt    // each RCPT TO
	HookData    // end of data, before the 250
	HookDeliver // before each delivery attempt, per destination
	NumHooks

	// HookInit is the stage of a sluice_init call. Only functions allowed
	// at every hook answer (get_prop, get_config, log, now, notes, and the
	// granted capabilities); the rest return StatusWrongStage.
	HookInit Hook = -1
)

var hookNames = [...]string{"connect", "helo", "mail", "rcpt", "data", "deliver"}

// String returns the hook's name as used in configuration and logs.
func (h Hook) String() string {
	if h == HookInit {
		return "init"
	}
	if h >= 0 && h < NumHooks {
		return hookNames[h]
	}
	return "unknown"
}

// ParseHook returns the hook named s.
func ParseHook(s string) (Hook, bool) {
	for i, n := range hookNames {
		if n == s {
			return Hook(i), true
		}
	}
	return -1, false
}

// Verdict is a hook's answer.
type Verdict int32

// Verdicts.
const (
	// Continue: no objection; the next plugin runs.
	Continue Verdict = iota
	// Accept: skip the remaining plugins for this stage.
	Accept
	// Reject: refuse with 5xx (SetReply gives code and text; default 550 5.7.1).
	Reject
	// Tempfail: refuse with 4xx (default 451 4.7.1).
	Tempfail
	// Discard: answer 250 but drop the message (data, rcpt: drop the recipient).
	Discard
	// Quarantine: accept, but keep the message held in the queue.
	Quarantine
	// Disconnect: answer 421 and close the connection.
	Disconnect
	numVerdicts
)

var verdictNames = [...]string{"continue", "accept", "reject", "tempfail", "discard", "quarantine", "disconnect"}

// String names the verdict.
func (v Verdict) String() string {
	if v >= 0 && v < numVerdicts {
		return verdictNames[v]
	}
	return "invalid"
}

// Valid reports whether v is a known verdict.
func (v Verdict) Valid() bool { return v >= 0 && v < numVerdicts }

// Status is what a host function returns when it fails. Success is >= 0.
type Status int32

// Statuses.
const (
	StatusOK Status = 0
	// StatusNotFound: no such property, header, note, key or config key.
	StatusNotFound Status = -1
	// StatusDenied: the plugin lacks the capability grant for this call.
	StatusDenied Status = -2
	// StatusBadArgument: a pointer outside memory, a bad name or value.
	StatusBadArgument Status = -3
	// StatusWrongStage: the call is not available at this hook (e.g. a
	// header edit at rcpt).
	StatusWrongStage Status = -4
	// StatusTempFail: a temporary failure (DNS timeout, store busy), or
	// the call's deadline reached in a DNS or KV call.
	StatusTempFail Status = -5
	// StatusTooLarge: a value over the host's limit for it (too many notes
	// or recipients), or over a quota of the plugin (log or KV bytes).
	StatusTooLarge Status = -6
)

var statusNames = map[Status]string{
	StatusOK: "ok", StatusNotFound: "not found", StatusDenied: "denied: capability not granted",
	StatusBadArgument: "bad argument", StatusWrongStage: "not available at this stage",
	StatusTempFail: "temporary failure", StatusTooLarge: "too large",
}

// Error makes a Status usable as an error in Go guests and the host.
func (s Status) Error() string {
	if n, ok := statusNames[s]; ok {
		return "sluice: " + n
	}
	return "sluice: unknown status"
}

// Prop names a read-only property of the connection or transaction, read
// with FuncGetProp.
type Prop int32

// Properties.
const (
	PropClientIP    Prop = iota // "192.0.2.1" or "2001:db8::1"
	PropClientPort              // decimal
	PropClientRDNS              // verified (forward-confirmed) reverse DNS name, "" if none
	PropHelo                    // HELO/EHLO argument
	PropTLS                     // "TLS1.3 TLS_AES_128_GCM_SHA256" or ""
	PropAuthUser                // authenticated user, "" if none
	PropMailFrom                // return path ("" for the null sender)
	PropRcpt                    // the recipient being considered (rcpt hook)
	PropRcpts                   // all accepted recipients, "\n"-terminated
	PropQueueID                 // queue ID (data: the ID it will have; deliver)
	PropHook                    // the current hook's name
	PropListener                // "smtp" or "submission"
	PropBodySize                // message size in bytes, decimal (data, deliver)
	PropDestination             // deliver: the destination domain
	PropAttempt                 // deliver: attempt number, decimal
	PropLocalIP                 // the address the client connected to
	PropAuthResults             // Authentication-Results value we computed
	PropRDNSStatus              // "confirmed", "unconfirmed", "none", "tempfail"; "" when not looked up
	PropClientPTR               // the first PTR name of the client, unverified, "" if none
	PropPlugin                  // the plugin's entry: its NAME.toml entry key, or NAME (FeatureEntry)
	NumProps
)

// Hooks returns the hooks at which FuncGetProp answers p, a bit set of
// 1<<Hook like Func.Hooks: 0 means every hook, init included. Elsewhere
// the call returns StatusWrongStage.
func (p Prop) Hooks() uint32 {
	switch p {
	case PropBodySize:
		return 1<<HookData | 1<<HookDeliver
	case PropDestination, PropAttempt:
		return 1 << HookDeliver
	case PropRDNSStatus, PropClientPTR:
		return 1<<HookConnect | 1<<HookHelo | 1<<HookMail | 1<<HookRcpt | 1<<HookData
	}
	return 0
}

// AllowedAt reports whether FuncGetProp answers p at hook h.
func (p Prop) AllowedAt(h Hook) bool { return hookIn(p.Hooks(), h) }

// hookIn reports whether h is in the bit set hooks, where 0 is every hook
// including HookInit.
func hookIn(hooks uint32, h Hook) bool {
	if hooks == 0 {
		return true
	}
	return h >= 0 && h < NumHooks && hooks&(1<<h) != 0
}

// DNS record types for FuncDNSLookup.
const (
	DNSA    int32 = 1
	DNSAAAA int32 = 28
	DNSMX   int32 = 15
	DNSTXT  int32 = 16
	DNSPTR  int32 = 12
)

// Log levels for FuncLog.
const (
	LogDebug int32 = -4
	LogInfo  int32 = 0
	LogWarn  int32 = 4
	LogError int32 = 8
)

// Capabilities a plugin's configuration may grant (key "grants").
const (
	CapDNS     = "dns"
	CapKV      = "kv"
	CapMetrics = "metrics"
)
