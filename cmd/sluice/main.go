// Command sluice is the Sluice mail transfer agent: `sluice serve` runs the
// server; `sluice queue …` manages the running server's queue.
package main

import (
	"fmt"
	"os"

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
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}
