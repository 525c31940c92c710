package main

import (
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/admin"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/sendmail"
)

// sendmailCommand is `sluice sendmail`, also run when the binary is called
// as "sendmail" (a symlink at /usr/sbin/sendmail). It takes sendmail's own
// options, so urfave's flag parsing is off; the configuration comes from
// $SLUICE_CONFIG and the socket from $SLUICE_SOCKET when set.
func sendmailCommand() *cli.Command {
	return &cli.Command{
		Name:            "sendmail",
		Usage:           "queue a message from standard input, as sendmail(1) does (-f, -F, -t, -i)",
		ArgsUsage:       "[-f sender] [-t] [-i] [recipient...]",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			inv, err := sendmail.ParseArgs(c.Args().Slice())
			if err != nil {
				return err
			}
			cfg := config.Default()
			if path := os.Getenv("SLUICE_CONFIG"); path != "" {
				if cfg, err = config.Load(path); err != nil {
					return err
				}
			}
			socket := cfg.Admin.Socket
			if s := os.Getenv("SLUICE_SOCKET"); s != "" {
				socket = s
			}
			name := "root"
			if u, err := user.Current(); err == nil {
				name = u.Username
			}
			m, err := inv.Read(os.Stdin, name+"@"+cfg.Hostname, time.Now().Format(time.RFC1123Z))
			if err != nil {
				return err
			}
			// Silent on success, as sendmail is: scripts read only the status.
			if _, err := admin.NewClient(socket).Submit(c.Context, admin.Submission{From: m.From, Rcpts: m.Rcpts, Data: m.Data}); err != nil {
				return fmt.Errorf("sendmail: %w", err)
			}
			return nil
		},
	}
}
