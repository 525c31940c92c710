package main

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/admin"
	"github.com/sluice-mta/sluice/core/queue"
)

// adminFlags find the running server's admin socket.
var adminFlags = []cli.Flag{configFlag, &cli.StringFlag{Name: "socket", Usage: "admin socket `PATH` (default: from the configuration)"}}

// adminClient connects to the admin socket named by --socket or the config.
func adminClient(c *cli.Context) (*admin.Client, error) {
	if s := c.String("socket"); s != "" {
		return admin.NewClient(s), nil
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	return admin.NewClient(cfg.Admin.Socket), nil
}

func queueCommand() *cli.Command {
	client, flags := adminClient, adminFlags
	byID := func(name, usage string, op func(*admin.Client, *cli.Context, string) error) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "ID...", Flags: flags,
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return fmt.Errorf("%s: give at least one queue ID (see `sluice queue ls`)", name)
				}
				cl, err := client(c)
				if err != nil {
					return err
				}
				for _, id := range c.Args().Slice() {
					if err := op(cl, c, id); err != nil {
						return fmt.Errorf("%s %s: %w", name, id, err)
					}
				}
				return nil
			},
		}
	}
	return &cli.Command{
		Name:  "queue",
		Usage: "inspect and manage the running server's queue",
		Subcommands: []*cli.Command{
			{Name: "ls", Usage: "list queued messages and their recipients, page by page",
				Flags: append([]cli.Flag{
					&cli.IntFlag{Name: "limit", Usage: "list at most `N` messages (0: all)"},
					&cli.StringFlag{Name: "after", Usage: "start after queue `ID` (the last one of a previous listing)"},
					&cli.StringFlag{Name: "state", Usage: "only messages in `STATE`: queued, deferred or held"},
					&cli.StringFlag{Name: "sender", Usage: "only messages from `ADDRESS` (<> for bounces)"},
					&cli.StringFlag{Name: "rcpt", Usage: "only messages with a pending recipient `ADDRESS`"},
					&cli.StringFlag{Name: "domain", Usage: "only messages with a pending recipient in `DOMAIN`"},
				}, flags...),
				Action: func(c *cli.Context) error {
					cl, err := client(c)
					if err != nil {
						return err
					}
					o := queue.ListOptions{After: c.String("after"), State: c.String("state"), Sender: c.String("sender"),
						Rcpt: c.String("rcpt"), Domain: c.String("domain")}
					limit := c.Int("limit")
					if limit < 0 {
						return fmt.Errorf("ls: --limit %d: must not be negative", limit)
					}
					if err := queue.CheckListOptions(o); err != nil {
						return fmt.Errorf("ls: %w", err)
					}
					out := bufio.NewWriter(os.Stdout)
					defer out.Flush()
					lw := admin.NewListWriter(out, time.Now())
					for left := limit; ; {
						o.Limit = queue.MaxPageLimit
						if limit > 0 {
							o.Limit = min(left, queue.MaxPageLimit)
						}
						p, err := cl.Page(c.Context, o)
						if err != nil {
							return err
						}
						if err := lw.Write(p.Messages); err != nil {
							return err
						}
						out.Flush()
						left -= len(p.Messages)
						if p.Next == "" || (limit > 0 && left <= 0) {
							break
						}
						o.After = p.Next
					}
					return lw.Close()
				}},
			{Name: "stats", Usage: "count queued messages by state, and pending recipients by destination domain and age (like qshape)",
				Flags: append([]cli.Flag{&cli.IntFlag{Name: "top", Value: 20, Usage: "list the `N` domains with the most recipients (0: all)"}}, flags...),
				Action: func(c *cli.Context) error {
					if c.Int("top") < 0 {
						return fmt.Errorf("stats: --top %d: must not be negative", c.Int("top"))
					}
					cl, err := client(c)
					if err != nil {
						return err
					}
					st, err := cl.Stats(c.Context, c.Int("top"))
					if err != nil {
						return err
					}
					return admin.WriteStats(os.Stdout, st, time.Now())
				}},
			byID("show", "show one message's envelope, state and headers", func(cl *admin.Client, c *cli.Context, id string) error {
				d, err := cl.Show(c.Context, id)
				if err != nil {
					return err
				}
				return admin.WriteDetail(os.Stdout, d)
			}),
			{Name: "flush", Usage: "retry queued messages now: all, or with --domain those with a recipient there",
				Flags: append([]cli.Flag{&cli.StringFlag{Name: "domain", Usage: "retry only messages with a pending recipient in `DOMAIN` (case-insensitive)"}}, flags...),
				Action: func(c *cli.Context) error {
					cl, err := client(c)
					if err != nil {
						return err
					}
					if d := c.String("domain"); d != "" {
						return cl.FlushDomain(c.Context, d)
					}
					return cl.Flush(c.Context)
				}},
			byID("bounce", "fail every pending recipient now and send the sender one DSN", func(cl *admin.Client, c *cli.Context, id string) error {
				return cl.Bounce(c.Context, id)
			}),
			byID("rm", "delete messages without delivering them", func(cl *admin.Client, c *cli.Context, id string) error {
				return cl.Remove(c.Context, id)
			}),
			byID("hold", "keep messages from delivery until released", func(cl *admin.Client, c *cli.Context, id string) error {
				return cl.Hold(c.Context, id)
			}),
			byID("release", "release held messages for delivery now", func(cl *admin.Client, c *cli.Context, id string) error {
				return cl.Release(c.Context, id)
			}),
		},
	}
}
