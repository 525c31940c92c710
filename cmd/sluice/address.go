package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/addressing"
	"github.com/sluice-mta/sluice/core/config"
)

// addressCommand is `sluice address test ADDR…`: how addresses resolve in
// the configured maps, like Postfix's `postmap -q`.
func addressCommand() *cli.Command {
	return &cli.Command{
		Name:  "address",
		Usage: "look up recipient addresses in the configured maps",
		Subcommands: []*cli.Command{{
			Name:      "test",
			Usage:     "show how each ADDR resolves (mailbox, alias chain, forward, unknown); exits 1 when one is refused",
			ArgsUsage: "ADDR…",
			Flags:     []cli.Flag{configFlag},
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return fmt.Errorf("name at least one address: sluice address test alice@example.com")
				}
				cfg, err := loadConfig(c)
				if err != nil {
					return err
				}
				opts, err := addressing.FromConfig(cfg, nil)
				if err != nil {
					return err
				}
				r, err := addressing.New(opts)
				if err != nil {
					return err
				}
				defer r.Close()
				refused := 0
				for i, addr := range c.Args().Slice() {
					if i > 0 {
						fmt.Println()
					}
					res, err := r.Explain(c.Context, addr)
					addressing.WriteReport(os.Stdout, res, err)
					if err != nil {
						refused++
					}
				}
				if refused > 0 {
					return fmt.Errorf("%d of %d addresses refused", refused, c.NArg())
				}
				return nil
			},
		}},
	}
}

// checkAddressing is the [addressing] part of `sluice config check`: the
// warnings, the maps' counts, or the maps' mistakes.
func checkAddressing(w io.Writer, cfg *config.Config) error {
	warnings, st, err := addressing.Check(cfg)
	for _, s := range warnings {
		fmt.Fprintln(w, "warning:", s)
	}
	if err != nil {
		return err
	}
	if cfg.Addressing.Domains != "" || cfg.Addressing.Mailboxes != "" || cfg.Addressing.Aliases != "" {
		fmt.Fprintf(w, "addressing: %d domains, %d mailboxes, %d aliases, %d catch-alls (verify = %q)\n",
			st.Domains, st.Mailboxes, st.Aliases, st.CatchAlls, cfg.Addressing.Verify)
	}
	return nil
}
