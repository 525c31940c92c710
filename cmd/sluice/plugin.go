package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/admin"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/plugintool"
)

// pluginCommand is `sluice plugin …`: offline tools for plugin authors.
func pluginCommand() *cli.Command {
	return &cli.Command{
		Name:  "plugin",
		Usage: "create, test and check filter plugins offline",
		Subcommands: []*cli.Command{
			pluginNewCommand(),
			{
				Name:      "test",
				Usage:     "run a plugin (or a plugins directory) through every stage of a message and print what it did",
				ArgsUsage: "FILE.wasm",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "eml", Usage: "the message `FILE` (RFC 5322; LF or CRLF line endings)"},
					&cli.StringFlag{Name: "from", Usage: "the envelope sender `ADDR` (MAIL FROM)"},
					&cli.StringSliceFlag{Name: "rcpt", Usage: "an envelope recipient `ADDR` (RCPT TO); repeat for more"},
					&cli.StringFlag{Name: "ip", Usage: "the client's `IP` address", Value: "127.0.0.1"},
					&cli.StringFlag{Name: "helo", Usage: "the client's HELO `NAME`", Value: "localhost"},
					&cli.StringFlag{Name: "config", Usage: "the plugin's NAME.toml `FILE` (default: the one beside FILE.wasm)"},
					&cli.StringFlag{Name: "dir", Usage: "run every plugin of the plugins `DIR` instead of FILE.wasm"},
					dnsFlag,
					&cli.StringFlag{Name: "now", Usage: "the plugins' clock, a fixed `TIME` (RFC 3339, like 2025-03-01T12:00:00Z; default: the real clock)"},
					&cli.StringFlag{Name: "auth-user", Usage: "play a session authenticated as `USER` (the auth user property)"},
					&cli.BoolFlag{Name: "tls", Usage: "play a session over TLS (the TLS property reads \"" + plugintool.TLSDescription + "\")"},
					&cli.StringFlag{Name: "listener", Usage: "the listener the client came in on: `NAME` smtp or submission", Value: "smtp"},
					&cli.StringFlag{Name: "server-config", Usage: "the server's configuration `FILE` whose [spam] thresholds apply (default: $SLUICE_CONFIG, as for serve, else the embedded default configuration)", EnvVars: []string{"SLUICE_CONFIG"}},
					&cli.BoolFlag{Name: "json", Usage: "print the stages and the score as one JSON object, for a plugin's CI"},
				},
				Action: pluginTest,
			},
			{
				Name:  "ls",
				Usage: "list the running server's plugins: hooks, grants, calls, errors, p50/p99 call time",
				Flags: adminFlags,
				Action: func(c *cli.Context) error {
					cl, err := adminClient(c)
					if err != nil {
						return err
					}
					ps, err := cl.Plugins(c.Context)
					if err != nil {
						return err
					}
					return admin.WritePlugins(os.Stdout, ps)
				},
			},
			{
				Name:      "check",
				Usage:     "validate a plugin's exports, ABI version and limits, with its NAME.toml, without running a hook",
				ArgsUsage: "FILE.wasm...",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "config", Usage: "the plugin's NAME.toml `FILE` (default: the one beside each FILE.wasm); one FILE.wasm only"},
					dnsFlag,
				},
				Action: func(c *cli.Context) error {
					f, args, err := parseInterspersed(c)
					if err != nil {
						return fmt.Errorf("plugin check: %w", err)
					}
					if len(args) == 0 {
						return errors.New("plugin check: give at least one FILE.wasm")
					}
					opts := plugintool.CheckOptions{Config: f.str("config")}
					if opts.Config != "" && len(args) > 1 {
						return errors.New("plugin check: --config names the NAME.toml of one FILE.wasm; give one")
					}
					if opts.Resolver, err = offlineDNS(f.str("dns")); err != nil {
						return fmt.Errorf("plugin check: %w", err)
					}
					failed := 0
					for _, path := range args {
						if err := plugintool.Check(c.Context, os.Stdout, path, opts); err != nil {
							msg := err.Error()
							if !strings.HasPrefix(msg, path+": ") {
								msg = path + ": " + msg
							}
							fmt.Fprintln(os.Stderr, msg)
							failed++
						}
					}
					if failed > 0 {
						return fmt.Errorf("plugin check: %d of %d plugins failed", failed, len(args))
					}
					return nil
				},
			},
		},
	}
}

func pluginTest(c *cli.Context) error {
	f, args, err := parseInterspersed(c)
	if err != nil {
		return fmt.Errorf("plugin test: %w", err)
	}
	opts := plugintool.TestOptions{Dir: f.str("dir"), Config: f.str("config"),
		From: f.str("from"), Rcpts: f.slice("rcpt"), Helo: f.str("helo")}
	switch {
	case opts.Dir != "" && len(args) > 0:
		return errors.New("plugin test: give FILE.wasm or --dir DIR, not both")
	case opts.Dir == "" && len(args) != 1:
		return errors.New("plugin test: give one FILE.wasm (or --dir DIR)")
	case opts.Dir == "":
		opts.Wasm = args[0]
	}
	if len(opts.Rcpts) == 0 {
		return errors.New("plugin test: give at least one --rcpt ADDR")
	}
	if f.str("eml") == "" {
		return errors.New("plugin test: give the message with --eml FILE")
	}
	ip, err := netip.ParseAddr(f.str("ip"))
	if err != nil {
		return fmt.Errorf("plugin test: --ip %q is not an IP address", f.str("ip"))
	}
	opts.ClientIP = ip
	if opts.Message, err = os.ReadFile(f.str("eml")); err != nil {
		return fmt.Errorf("plugin test: --eml: %w", err)
	}
	if opts.Resolver, err = offlineDNS(f.str("dns")); err != nil {
		return fmt.Errorf("plugin test: %w", err)
	}
	if now := f.str("now"); now != "" {
		t, err := time.Parse(time.RFC3339, now)
		if err != nil {
			return fmt.Errorf("plugin test: --now %q is not an RFC 3339 time like 2025-03-01T12:00:00Z", now)
		}
		opts.Now = func() time.Time { return t }
	}
	opts.AuthUser, opts.TLS, opts.Listener = f.str("auth-user"), f.bool("tls"), f.str("listener")
	if opts.Listener != "smtp" && opts.Listener != "submission" {
		return fmt.Errorf("plugin test: --listener %q: give smtp or submission", opts.Listener)
	}
	cfg := config.Default()
	if path := f.str("server-config"); path != "" {
		if cfg, err = config.Load(path); err != nil {
			return fmt.Errorf("plugin test: --server-config: %w", err)
		}
	}
	opts.Spam = filter.Spam(cfg.Spam)
	stages, err := plugintool.Test(c.Context, opts)
	if err != nil {
		return fmt.Errorf("plugin test: %w", err)
	}
	spam := plugintool.SpamOf(stages, opts.Spam)
	spam.Config = f.str("server-config")
	if f.bool("json") {
		return plugintool.WriteJSON(os.Stdout, stages, spam)
	}
	if err := plugintool.WriteStages(os.Stdout, stages); err != nil {
		return err
	}
	return plugintool.WriteSpam(os.Stdout, spam)
}

// dnsFlag names the DNS server an offline run may ask for plugins granted
// "dns"; without it their lookups fail, and the output says why.
var dnsFlag = &cli.StringFlag{Name: "dns", Usage: "serve the plugins' dns grant from the DNS server `ADDR` (host or host:port); default: none, lookups fail"}

// offlineDNS is the resolver of --dns ADDR, nil without it.
func offlineDNS(addr string) (filter.Resolver, error) {
	if addr == "" {
		return nil, nil
	}
	r, err := dns.New(dns.Options{Servers: []string{addr}})
	if err != nil {
		return nil, fmt.Errorf("--dns %s: %w", addr, err)
	}
	return r, nil
}

// flags reads a flag from the flags given after the first argument (urfave/cli
// stops at it) or else from the command's own parse.
type flags struct {
	c    *cli.Context
	tail *flag.FlagSet
	set  map[string]bool
}

func (f flags) str(name string) string {
	if f.set[name] {
		return f.tail.Lookup(name).Value.String()
	}
	return f.c.String(name)
}

func (f flags) bool(name string) bool {
	if f.set[name] {
		return f.tail.Lookup(name).Value.String() == "true"
	}
	return f.c.Bool(name)
}

func (f flags) slice(name string) []string {
	v := f.c.StringSlice(name)
	if f.set[name] {
		v = append(v, f.tail.Lookup(name).Value.(*cli.StringSlice).Value()...)
	}
	return v
}

// parseInterspersed parses the command's flags among its arguments, so that
// `sluice plugin test FILE.wasm --eml MSG …` works, and returns the
// arguments that are not flags.
func parseInterspersed(c *cli.Context) (flags, []string, error) {
	f := flags{c: c, tail: flag.NewFlagSet(c.Command.Name, flag.ContinueOnError), set: map[string]bool{}}
	f.tail.SetOutput(io.Discard)
	for _, fl := range c.Command.Flags {
		if err := fl.Apply(f.tail); err != nil {
			return f, nil, err
		}
	}
	var args []string
	rest := c.Args().Slice()
	for len(rest) > 0 {
		if !strings.HasPrefix(rest[0], "-") || rest[0] == "-" {
			args = append(args, rest[0])
			rest = rest[1:]
			continue
		}
		if err := f.tail.Parse(rest); err != nil {
			return f, nil, err
		}
		rest = f.tail.Args()
	}
	f.tail.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, args, nil
}
