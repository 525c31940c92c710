package sdk

// GuestGCPercent is the GOGC a plugin's Go runtime runs with on wasip1
// (set by the SDK's init; native builds keep their own). Go's default,
// 100, lets a heap grow to 4 MiB before its first collection, and a
// guest's linear memory never shrinks: with 100 an instance of a
// first-party plugin held 4.6–4.7 MiB after a 100-session load, with 25 (a
// 1 MiB minimum heap) 3.3–3.6 MiB, for a CPU cost lost in the noise of a
// spamscore data hook (0.51 against 0.53 ms; BENCHMARKS.md). The host
// keeps up to pool_max instances of every plugin, so the difference is
// paid pool_max × plugins times. A plugin that allocates much per call
// and would rather spend memory than CPU calls debug.SetGCPercent in its
// own init, which runs after this one.
const GuestGCPercent = 25
