package filter

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/pluginapi"
)

// Defaults for a plugin whose NAME.toml does not say otherwise.
const (
	defaultMemoryLimit = 128 << 20 // bytes
	defaultTimeout     = 100 * time.Millisecond
	defaultPoolMin     = 1
	maxMemoryLimit     = 4 << 30 // the wasm32 address space
	maxTimeout         = time.Minute
	// defaultInitTimeout bounds an instance's start (init_timeout): a Go
	// guest's runtime starts in tens of milliseconds.
	defaultInitTimeout = 2 * time.Second
	maxInitTimeout     = 10 * time.Minute
	pageSize           = 64 << 10
	// tableElemSize is what one table element costs the host (wazero keeps
	// a pointer per element); tables count in a plugin's memory.
	tableElemSize = 8
)

// Load-time limits on a module: defaults generous for real Go plugins (a
// first-party plugin is a 4.5 MB module of 2,800 functions, 8 globals,
// 1.5 MB of data and a table of 6,900 elements), each up to a hard
// ceiling. [limits] in NAME.toml raises or lowers them.
const (
	defaultModuleSize    = 64 << 20
	defaultFunctions     = 100_000
	defaultGlobals       = 10_000
	defaultDataSize      = 32 << 20
	defaultTableElements = 1 << 18 // 2 MiB of host memory per instance
	defaultLogLines      = 100
	defaultLogBytes      = 64 << 10
	defaultKVBytes       = 256 << 10
	defaultLogPerMinute  = 4 << 20
	defaultKVPerMinute   = 16 << 20
	maxModuleSize        = 1 << 30
	maxFunctions         = 1 << 27 // wazero's own ceilings
	maxGlobals           = 1 << 27
	maxDataSize          = 4 << 30
	maxTableElements     = 1 << 22
)

// Limits bound what a module may declare, checked before it is compiled;
// a table is also bounded at run time (table.grow fails beyond
// TableElements).
type Limits struct {
	// ModuleSize bounds the .wasm file.
	ModuleSize config.Size `toml:"module_size"`
	// Functions bounds the functions, imported and defined.
	Functions int `toml:"functions"`
	// Globals bounds the globals, imported and defined.
	Globals int `toml:"globals"`
	// DataSize bounds the bytes of all data segments together.
	DataSize config.Size `toml:"data_size"`
	// TableElements bounds each table, at load and when it grows.
	TableElements int `toml:"table_elements"`

	// The quotas (Quota; 0: none): what one call may log (lines and
	// bytes, its stdout and stderr included) and write to the key-value
	// store (keys and values), and what the plugin may log and write over
	// all its calls per minute.
	LogLines          int         `toml:"log_lines"`
	LogBytes          config.Size `toml:"log_bytes"`
	KVBytes           config.Size `toml:"kv_bytes"`
	LogBytesPerMinute config.Size `toml:"log_bytes_per_minute"`
	KVBytesPerMinute  config.Size `toml:"kv_bytes_per_minute"`
}

// quota returns a plugin's Quota.
func (l *Limits) quota() *Quota {
	return &Quota{LogLines: l.LogLines, LogBytes: int(l.LogBytes), KVBytes: int(l.KVBytes),
		LogBytesPerMinute: int64(l.LogBytesPerMinute), KVBytesPerMinute: int64(l.KVBytesPerMinute)}
}

// pluginConf is a plugin's NAME.toml.
type pluginConf struct {
	// Entry names the plugin to run in a module that holds several (a
	// bundle, pluginapi.FeatureEntry); "" means the file's NAME.
	Entry         string          `toml:"entry"`
	Order         int             `toml:"order"`
	FailurePolicy string          `toml:"failure_policy"`
	MemoryLimit   config.Size     `toml:"memory_limit"`
	Timeout       config.Duration `toml:"timeout"`
	// InitTimeout bounds each instance's start: the runtime's
	// _initialize, the load-time exports and sluice_init.
	InitTimeout config.Duration `toml:"init_timeout"`
	PoolMin     int             `toml:"pool_min"`
	PoolMax     int             `toml:"pool_max"`
	Grants      []string        `toml:"grants"`
	// BreakerFailures failed calls (at least half of the calls) within
	// 10s suspend the plugin for BreakerCooldown; 0 never suspends it.
	BreakerFailures int             `toml:"breaker_failures"`
	BreakerCooldown config.Duration `toml:"breaker_cooldown"`
	Limits          Limits          `toml:"limits"`
	Config          map[string]any  `toml:"config"`
}

// defaultConf is the configuration of a plugin without NAME.toml.
func defaultConf() pluginConf {
	return pluginConf{
		FailurePolicy:   "continue",
		MemoryLimit:     defaultMemoryLimit,
		Timeout:         config.Duration(defaultTimeout),
		InitTimeout:     config.Duration(defaultInitTimeout),
		PoolMin:         defaultPoolMin,
		PoolMax:         defaultPoolMax(nil),
		BreakerFailures: defaultBreakerFailures,
		BreakerCooldown: config.Duration(defaultBreakerCooldown),
		Limits: Limits{ModuleSize: defaultModuleSize, Functions: defaultFunctions, Globals: defaultGlobals,
			DataSize: defaultDataSize, TableElements: defaultTableElements,
			LogLines: defaultLogLines, LogBytes: defaultLogBytes, KVBytes: defaultKVBytes,
			LogBytesPerMinute: defaultLogPerMinute, KVBytesPerMinute: defaultKVPerMinute},
	}
}

// defaultPoolMax is pool_max when NAME.toml does not set it: the CPUs
// (at least 2), as a call runs on a CPU from start to end (a KV call on
// the local store takes microseconds), so more instances would only hold
// memory; for a plugin granted dns 2 × CPUs + 2, as its calls hold their
// instance while they wait for an answer (RATIONALE.md, "Filter calls").
func defaultPoolMax(grants []string) int {
	cpus := runtime.GOMAXPROCS(0)
	if slices.Contains(grants, pluginapi.CapDNS) {
		return 2*cpus + 2
	}
	return max(cpus, 2)
}

// instanceMemory is what one instance may take at most: its linear memory
// up to memory_limit and its tables at their bound.
func (c *pluginConf) instanceMemory(tables int) int64 {
	return int64(c.MemoryLimit) + int64(tables)*int64(c.Limits.TableElements)*tableElemSize
}

// loadConf reads path (NAME.toml); a missing file gives the defaults.
func loadConf(path string) (pluginConf, error) {
	c := defaultConf()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	return parseConf(path, data)
}

// parseConf decodes a NAME.toml over the defaults. Errors name the file,
// the line and the key.
func parseConf(file string, data []byte) (pluginConf, error) {
	c := defaultConf()
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) && len(strict.Errors) > 0 {
			de := &strict.Errors[0]
			line, _ := de.Position()
			return c, fmt.Errorf("%s:%d: unknown key %q (known: entry, order, failure_policy, memory_limit, timeout, pool_min, pool_max, grants, breaker_failures, breaker_cooldown, [limits] module_size, functions, globals, data_size, table_elements, log_lines, log_bytes, kv_bytes, log_bytes_per_minute, kv_bytes_per_minute, [config])",
				file, line, strings.Join(de.Key(), "."))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ := de.Position()
			if k := strings.Join(de.Key(), "."); k != "" {
				return c, fmt.Errorf("%s:%d: %s: %s", file, line, k, strings.TrimPrefix(de.Error(), "toml: "))
			}
			return c, fmt.Errorf("%s:%d: not valid TOML: %s", file, line, strings.TrimPrefix(de.Error(), "toml: "))
		}
		return c, fmt.Errorf("%s: %w", file, err)
	}
	lines := keyLines(data)
	_, poolMaxSet := lines["pool_max"]
	if !poolMaxSet {
		c.PoolMax = defaultPoolMax(c.Grants)
	}
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s: %s", file, lines[key], key, fmt.Sprintf(format, args...))
	}
	if _, set := lines["entry"]; set && !validEntry(c.Entry) {
		return c, bad("entry", "must name one plugin of the module, in letters, digits, '-', '_' and '.', not %q", c.Entry)
	}
	switch c.FailurePolicy {
	case "continue", "tempfail":
	default:
		return c, bad("failure_policy", "must be \"continue\" or \"tempfail\", not %q", c.FailurePolicy)
	}
	if c.MemoryLimit < pageSize || c.MemoryLimit > maxMemoryLimit {
		return c, bad("memory_limit", "must be between 64KiB and 4GiB, like \"64MiB\"")
	}
	if c.Timeout <= 0 || c.Timeout.D() > maxTimeout {
		return c, bad("timeout", "must be more than 0 and at most 1m, like \"100ms\"")
	}
	if c.InitTimeout <= 0 || c.InitTimeout.D() > maxInitTimeout {
		return c, bad("init_timeout", "must be more than 0 and at most 10m, like \"2s\"")
	}
	if c.PoolMin < 0 {
		return c, bad("pool_min", "must not be negative")
	}
	if !poolMaxSet && c.PoolMax < c.PoolMin {
		// pool_max is the default: the error belongs to pool_min's line.
		return c, bad("pool_min", "must be at most pool_max, which is %d by default (the CPUs, at least 2, or 2 × CPUs + 2 with the dns grant); set pool_max too", c.PoolMax)
	}
	if c.PoolMax < 1 || c.PoolMax < c.PoolMin {
		return c, bad("pool_max", "must be at least 1 and at least pool_min (%d)", c.PoolMin)
	}
	if c.BreakerFailures < 0 {
		return c, bad("breaker_failures", "must not be negative (0 never suspends the plugin)")
	}
	if c.BreakerCooldown <= 0 || c.BreakerCooldown.D() > time.Hour {
		return c, bad("breaker_cooldown", "must be more than 0 and at most 1h, like \"30s\"")
	}
	if err := c.Limits.check(func(key, format string, args ...any) error {
		return fmt.Errorf("%s:%d: limits.%s: %s", file, lines["limits"], key, fmt.Sprintf(format, args...))
	}); err != nil {
		return c, err
	}
	for _, g := range c.Grants {
		switch g {
		case pluginapi.CapDNS, pluginapi.CapKV, pluginapi.CapMetrics:
		default:
			return c, bad("grants", "unknown grant %q; grants are \"dns\", \"kv\" and \"metrics\"", g)
		}
	}
	return c, nil
}

// validEntry reports whether s can name a plugin in a bundle: 1 to 64
// letters, digits, '-', '_' and '.'.
func validEntry(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// check refuses limits out of their range.
func (l *Limits) check(bad func(key, format string, args ...any) error) error {
	switch {
	case l.ModuleSize < 8 || l.ModuleSize > maxModuleSize:
		return bad("module_size", "must be between 8B and 1GiB, like \"64MiB\"")
	case l.Functions < 1 || l.Functions > maxFunctions:
		return bad("functions", "must be between 1 and %d", maxFunctions)
	case l.Globals < 0 || l.Globals > maxGlobals:
		return bad("globals", "must be between 0 and %d", maxGlobals)
	case l.DataSize < 0 || l.DataSize > maxDataSize:
		return bad("data_size", "must be between 0 and 4GiB, like \"32MiB\"")
	case l.TableElements < 0 || l.TableElements > maxTableElements:
		return bad("table_elements", "must be between 0 and %d", maxTableElements)
	case l.LogLines < 0:
		return bad("log_lines", "must not be negative (0: no bound)")
	case l.LogBytes > 1<<30 || l.KVBytes > 1<<30 || l.LogBytesPerMinute > 1<<40 || l.KVBytesPerMinute > 1<<40:
		return bad("log_bytes", "a quota must be at most 1GiB per call and 1TiB per minute (0: no bound)")
	}
	return nil
}

// keyLines maps each top-level key of a TOML document, lower-cased (the
// decoder matches keys to fields regardless of case), to its line.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.KeyValue && e.Kind != unstable.Table {
			continue
		}
		it := e.Key()
		if it.Next() {
			k := strings.ToLower(string(it.Node().Data))
			if _, ok := lines[k]; !ok {
				lines[k] = p.Shape(it.Node().Raw).Start.Line
			}
		}
	}
	return lines
}
