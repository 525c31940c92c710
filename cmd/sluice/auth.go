package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/admin"
)

// authCommand shows and lifts the blocks of the AUTH throttle through the
// running server's admin socket.
func authCommand() *cli.Command {
	return &cli.Command{
		Name:  "auth",
		Usage: "show or lift the blocks on failed logins (the AUTH throttle of the running server)",
		Description: "Failed logins are counted per login (client address and user), per user and per client\n" +
			"address; a count at its limit blocks what it counts until auth_fail_window has passed.",
		Subcommands: []*cli.Command{
			{
				Name:  "status",
				Usage: "list the failure counts of the current window, blocked ones marked",
				Flags: adminFlags,
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return cli.Exit("usage: sluice auth status", 2)
					}
					cl, err := adminClient(c)
					if err != nil {
						return err
					}
					ctx, cancel := context.WithTimeout(c.Context, time.Minute)
					defer cancel()
					recs, err := cl.AuthStatus(ctx)
					if err != nil {
						return fmt.Errorf("auth status: %w", err)
					}
					return admin.WriteAuthStatus(os.Stdout, recs)
				},
			},
			{
				Name:      "unblock",
				Usage:     "forget the failures of a client address (and its logins) or of a user (and its logins from every address)",
				ArgsUsage: "ADDRESS|USER",
				Flags:     adminFlags,
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 || c.Args().First() == "" {
						return cli.Exit("usage: sluice auth unblock ADDRESS|USER", 2)
					}
					cl, err := adminClient(c)
					if err != nil {
						return err
					}
					ctx, cancel := context.WithTimeout(c.Context, time.Minute)
					defer cancel()
					target := c.Args().First()
					n, err := cl.AuthUnblock(ctx, target)
					if err != nil {
						return fmt.Errorf("auth unblock: %w", err)
					}
					if n == 0 {
						fmt.Printf("%s: no failures counted\n", target)
						return nil
					}
					fmt.Printf("%s: %d failure count(s) removed\n", target, n)
					return nil
				},
			},
		},
	}
}
