package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/admin"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/sendmail"
)

// sendmailCommand is `sluice sendmail`, also run when the binary is called
// as "sendmail" (a symlink at /usr/sbin/sendmail). It takes sendmail's own
// options, so urfave's flag parsing is off; the configuration comes from
// $SLUICE_CONFIG and the socket from $SLUICE_SOCKET when set. It exits
// with sendmail's sysexits statuses: 75 (EX_TEMPFAIL) when the server is
// not running, 64 for a bad command line, 65 for bad input, 77 without
// permission on the socket, 78 for a broken configuration.
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
					return &sendmail.Error{Code: sendmail.ExConfig, Err: err}
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
			m, err := inv.Read(os.Stdin, sendmail.Defaults{
				From:      name + "@" + cfg.Hostname,
				Date:      time.Now().Format(time.RFC1123Z),
				MessageID: sendmail.NewMessageID(cfg.Hostname),
			})
			if err != nil {
				return err
			}
			// Silent on success, as sendmail is: scripts read only the status.
			if _, err := admin.NewClient(socket).Submit(c.Context, admin.Submission{From: m.From, Rcpts: m.Rcpts, Data: m.Data}); err != nil {
				return submitError(socket, err)
			}
			return nil
		},
	}
}

// submitError gives a failed submission its sendmail exit status: the
// server is not running (EX_TEMPFAIL: the caller should try again), the
// socket is not ours to use (EX_NOPERM), the connection was lost
// (EX_TEMPFAIL), or the server refused the message (EX_DATAERR).
func submitError(socket string, err error) error {
	c, derr := net.DialTimeout("unix", socket, 2*time.Second)
	if derr != nil {
		if errors.Is(derr, syscall.EACCES) || errors.Is(derr, syscall.EPERM) {
			return &sendmail.Error{Code: sendmail.ExNoPerm, Err: fmt.Errorf(
				"sendmail: no permission to use the mail server's admin socket %s (it needs write access: see [admin] socket_group and socket_mode); the message was not sent", socket)}
		}
		return &sendmail.Error{Code: sendmail.ExTempFail, Err: fmt.Errorf(
			"sendmail: the mail server is not running (nothing answers on %s); the message was not sent, try again later", socket)}
	}
	c.Close()
	var ue *url.Error
	if errors.As(err, &ue) {
		return &sendmail.Error{Code: sendmail.ExTempFail, Err: fmt.Errorf(
			"sendmail: lost the mail server on %s: %v; the message was not sent, try again later", socket, ue.Err)}
	}
	return &sendmail.Error{Code: sendmail.ExDataErr, Err: fmt.Errorf("sendmail: the mail server refused the message: %w", err)}
}
