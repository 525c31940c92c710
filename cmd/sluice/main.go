// Command sluice is the Sluice mail transfer agent: `sluice serve` runs the
// server; `sluice queue …` manages the running server's queue.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{
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
		},
	}
	args := os.Args
	if filepath.Base(args[0]) == "sendmail" { // called as /usr/sbin/sendmail
		args = append([]string{args[0], "sendmail"}, args[1:]...)
	}
	if err := app.Run(args); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}
