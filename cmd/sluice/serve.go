package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/logbatch"
	"github.com/sluice-mta/sluice/core/server"
)

var configFlag = &cli.StringFlag{
	Name:    "config",
	Aliases: []string{"c"},
	Usage:   "TOML configuration `FILE` (default: the embedded default configuration)",
	EnvVars: []string{"SLUICE_CONFIG"},
}

func loadConfig(c *cli.Context) (*config.Config, error) {
	if path := c.String("config"); path != "" {
		return config.Load(path)
	}
	return config.Default(), nil
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the mail server",
		Flags: []cli.Flag{configFlag, &cli.StringFlag{Name: "user", Usage: "after binding the ports as root, run as `NAME` (data_dir is given to it)"}},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			// Log lines share write system calls (a few milliseconds'
			// worth at a time); warnings and errors go out at once.
			logw := logbatch.New(os.Stderr, 0, 0)
			defer logw.Close()
			log, logCtl := server.NewLogger(logw, cfg.LogLevel, cfg.LogFormat)
			var runAs *account
			if name := c.String("user"); name != "" {
				if runAs, err = lookupAccount(name); err != nil {
					return err
				}
				if _, err := runAs.dataDir(cfg); err != nil {
					return err
				}
			} else if os.Geteuid() == 0 {
				log.Warn("running as root: start with --user NAME (or systemd's User=) so that only the port binding runs as root")
			}
			ctx, stop := stopOnSignal(c.Context, log)
			defer stop()
			path := c.String("config")
			if path != "" { // a reload reads it again, whatever the directory then
				if path, err = filepath.Abs(path); err != nil {
					return err
				}
			}
			srv, err := server.New(ctx, cfg, log, server.WithConfigFile(path), server.WithLogControl(logCtl))
			if err != nil {
				return err
			}
			if runAs != nil {
				if err := runAs.become(cfg, log); err != nil {
					srv.Close()
					return err
				}
			}
			for _, svc := range srv.Services() {
				for _, a := range svc.Addrs {
					fmt.Printf("sluice: %s listening on %s\n", svc.Name, a)
				}
				for _, a := range svc.TLSAddrs {
					fmt.Printf("sluice: %s listening on %s (implicit TLS)\n", svc.Name, a)
				}
			}
			fmt.Printf("sluice: data in %s, admin socket %s\n", cfg.DataDir, cfg.Admin.Socket)
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					// The server logs what changed, or why nothing did.
					_, _ = srv.Reload(ctx)
				}
			}()
			if err := sdNotify("READY=1"); err != nil {
				log.Warn("telling systemd the server is ready", "err", err)
			}
			return srv.Run(ctx)
		},
	}
}

// stopOnSignal returns a context cancelled at the first SIGTERM or SIGINT,
// which stops the server gracefully; a second one exits at once (status
// 1): what was acknowledged is on disk already, deliveries in flight are
// due again at the next start.
func stopOnSignal(parent context.Context, log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-sigs:
			log.Info("stopping on a signal; send it again to stop at once", "signal", sig.String())
			_ = sdNotify("STOPPING=1")
			cancel()
		case <-ctx.Done():
			return
		}
		sig := <-sigs
		log.Warn("second signal: exiting at once", "signal", sig.String())
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "show or check configuration",
		Subcommands: []*cli.Command{{
			Name:  "default",
			Usage: "print the embedded default configuration, a starting point for a file",
			Action: func(*cli.Context) error {
				_, err := os.Stdout.Write(config.DefaultTOML())
				return err
			},
		}, {
			Name:  "check",
			Usage: "load a configuration file and report the first mistake with its line",
			Flags: []cli.Flag{configFlag},
			Action: func(c *cli.Context) error {
				cfg, err := loadConfig(c)
				if err != nil {
					return err
				}
				if err := checkAddressing(os.Stdout, cfg); err != nil {
					return err
				}
				fmt.Println("configuration ok")
				return nil
			},
		}},
	}
}
