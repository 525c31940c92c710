package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/admin"
)

// tlsReportCommand shows today's counts of outbound TLS outcomes (TLS-RPT)
// through the running server's admin socket.
func tlsReportCommand() *cli.Command {
	return &cli.Command{
		Name:  "tls-report",
		Usage: "show today's (UTC) outbound TLS sessions per policy domain: successes, failures by RFC 8460 result type",
		Description: "The counts are what the daily TLS report (RFC 8460) to each domain will say; [tlsrpt] enabled\n" +
			"sends it after midnight UTC to the domains that publish a TLSRPT record.",
		Flags: append([]cli.Flag{&cli.StringFlag{Name: "domain", Usage: "only the policy domain `D`"}}, adminFlags...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("usage: sluice tls-report [--domain D]", 2)
			}
			cl, err := adminClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, time.Minute)
			defer cancel()
			rep, err := cl.TLSReport(ctx, c.String("domain"))
			if err != nil {
				return fmt.Errorf("tls-report: %w", err)
			}
			return admin.WriteTLSReport(os.Stdout, rep, c.String("domain"))
		},
	}
}
