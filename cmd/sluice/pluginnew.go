package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/plugintool/scaffold"
)

// pluginNewCommand is `sluice plugin new NAME`: a plugin's own module.
func pluginNewCommand() *cli.Command {
	return &cli.Command{
		Name:      "new",
		Usage:     "create a plugin's own module (outside the Sluice tree) whose tests pass as generated",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "lang", Usage: "the plugin's language: `LANG` go or c", Value: "go"},
			&cli.StringFlag{Name: "sdk", Usage: "the Sluice source tree that go.mod's replace points at: `PATH` of its go.mod, or its sdk directory (default: the tree this binary was built from, or the one around the working directory)"},
			&cli.StringFlag{Name: "dir", Usage: "the `DIR` to create (default: ./NAME)"},
		},
		Action: func(c *cli.Context) error {
			f, args, err := parseInterspersed(c)
			if err != nil {
				return fmt.Errorf("plugin new: %w", err)
			}
			if len(args) != 1 {
				return errors.New("plugin new: give the plugin's NAME")
			}
			res, err := scaffold.New(c.Context, scaffold.Options{Name: args[0], Lang: f.str("lang"), SDK: f.str("sdk"), Dir: f.str("dir")})
			if err != nil {
				return fmt.Errorf("plugin new: %w", err)
			}
			rel := res.Dir
			if wd, err := os.Getwd(); err == nil {
				if r, err := filepath.Rel(wd, res.Dir); err == nil && !strings.HasPrefix(r, "..") {
					rel = r
				}
			}
			fmt.Fprintf(os.Stdout, "created %s (replace %s => %s):\n", res.Dir, "github.com/sluice-mta/sluice", res.SDK)
			for _, file := range res.Files {
				fmt.Fprintf(os.Stdout, "  %s\n", file)
			}
			fmt.Fprintf(os.Stdout, "next:\n  cd %s\n", rel)
			for _, cmd := range res.Next {
				fmt.Fprintf(os.Stdout, "  %s\n", cmd)
			}
			fmt.Fprintln(os.Stdout, "  (PLUGINS_DIR: the server's [plugins] dir)")
			return nil
		},
	}
}
