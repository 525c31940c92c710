// Command sluice is the Sluice mail transfer agent: `sluice serve` runs the
// server; `sluice queue …` manages the running server's queue.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

func main() {
	app := newApp()
	// Errors are printed, and the exit status chosen, here.
	app.ExitErrHandler = func(*cli.Context, error) {}
	args := os.Args
	if filepath.Base(args[0]) == "sendmail" { // called as /usr/sbin/sendmail
		args = append([]string{args[0], "sendmail"}, args[1:]...)
	}
	if len(args) > 1 && args[1] == "serve" {
		keepSysmonAwake() // before anything is opened: it may exec
	}
	if err := app.Run(flagsFirst(app.Commands, args)); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(exitCode(err))
	}
}

// newApp is the command line: every command and its flags.
func newApp() *cli.App {
	return &cli.App{
		Name:  "sluice",
		Usage: "a mail transfer agent with WebAssembly filters",
		Commands: []*cli.Command{
			serveCommand(),
			queueCommand(),
			configCommand(),
			pluginCommand(),
			userCommand(),
			dkimCommand(),
			sendmailCommand(),
			addressCommand(),
			reloadCommand(),
			authCommand(),
			tlsReportCommand(),
		},
	}
}

// exitCode is the status an error exits with: its own (sendmail's
// sysexits codes, cli.Exit), or 1.
func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) && ec.ExitCode() != 0 {
		return ec.ExitCode()
	}
	return 1
}
