package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/admin"
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
			{Name: "ls", Usage: "list queued messages and their recipients", Flags: flags,
				Action: func(c *cli.Context) error {
					cl, err := client(c)
					if err != nil {
						return err
					}
					envs, err := cl.List(c.Context)
					if err != nil {
						return err
					}
					return admin.WriteList(os.Stdout, envs, time.Now())
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
