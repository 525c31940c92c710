package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"
)

// reloadCommand asks the running server to read its configuration again.
func reloadCommand() *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "make the running server read its configuration file again (as SIGHUP does) and print what changed",
		Description: "Sessions in progress finish with the configuration they started with. A mistake in the file\n" +
			"changes nothing: it is printed as file:line and the command exits with status 1.",
		Flags: adminFlags,
		Action: func(c *cli.Context) error {
			cl, err := adminClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
			defer cancel()
			rep, err := cl.Reload(ctx)
			if err != nil {
				return fmt.Errorf("reload: %w", err)
			}
			return rep.WriteText(os.Stdout)
		},
	}
}
