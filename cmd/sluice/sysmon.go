package main

import (
	"os"
	"slices"
	"strings"
)

// sysmonSetting is the GODEBUG setting `sluice serve` runs with unless
// GODEBUG names schedtrace itself. Go's runtime monitor thread (sysmon)
// sleeps for good whenever every P is idle and is woken, with its polling
// reset to every 20 µs, by the next system call: one SMTP session leaves
// the server idle between the client's commands, so with one session the
// setting saves ~6 of that thread's short sleeps and ~2 wake-ups a
// message (a context switch each, costly in a VM). schedtrace > 0 is the runtime's
// only switch that keeps sysmon from that deep sleep; it then backs off
// to sleeping up to 10 ms while nothing needs it. At 2147483647 ms (24.8
// days, the largest value) the trace line itself is printed only on a
// host up for longer than that, once per 24.8 days. RATIONALE.md, "The
// runtime monitor at one session".
const sysmonSetting = "schedtrace=2147483647"

// sysmonEnv returns env with sysmonSetting added to GODEBUG (after the
// settings already there), and false when GODEBUG sets schedtrace
// already: the operator's value stands (schedtrace=0 turns this off). As
// the runtime does, it reads the first GODEBUG in env.
func sysmonEnv(env []string) ([]string, bool) {
	for i, kv := range env {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(v, ",") {
			if strings.HasPrefix(strings.TrimSpace(f), "schedtrace=") {
				return env, false
			}
		}
		out := slices.Clone(env)
		if v == "" {
			out[i] = "GODEBUG=" + sysmonSetting
		} else {
			out[i] = kv + "," + sysmonSetting
		}
		return out, true
	}
	return append(slices.Clone(env), "GODEBUG="+sysmonSetting), true
}

// keepSysmonAwake runs this program again (exec, same process) with
// sysmonEnv's environment when it lacks the setting, which the runtime
// reads only at start; it returns when the setting is there already or
// the exec failed (then the server runs without it).
func keepSysmonAwake() {
	env, ok := sysmonEnv(os.Environ())
	if !ok {
		return
	}
	execSelf(os.Args, env)
}
