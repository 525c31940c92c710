package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/sluice-mta/sluice/core/users"
)

// userFlags name the users file: --file, or [submission] users_file.
var userFlags = []cli.Flag{configFlag,
	&cli.StringFlag{Name: "file", Usage: "users `FILE` (default: [submission] users_file from the configuration)"}}

// usersFile returns the users file named by --file or the config.
func usersFile(c *cli.Context) (string, error) {
	if f := c.String("file"); f != "" {
		return f, nil
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return "", err
	}
	return cfg.Submission.UsersFile, nil
}

// userCommand is `sluice user add|rm|ls`: the submission users file. The
// running server picks up every change without a restart.
func userCommand() *cli.Command {
	oneName := func(c *cli.Context) (string, error) {
		if c.NArg() != 1 {
			return "", fmt.Errorf("give exactly one user NAME, like alice@example.com")
		}
		return c.Args().First(), nil
	}
	return &cli.Command{
		Name:  "user",
		Usage: "manage the submission users (AUTH logins) in [submission] users_file",
		Subcommands: []*cli.Command{
			{Name: "add", Usage: "add a user or change its password (read from stdin when it is not a terminal)",
				ArgsUsage: "NAME", Flags: userFlags,
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					if err := users.CheckName(name); err != nil {
						return err
					}
					path, err := usersFile(c)
					if err != nil {
						return err
					}
					pw, err := readPassword(os.Stdin, os.Stderr)
					if err != nil {
						return err
					}
					if err := users.Set(path, name, pw); err != nil {
						return fmt.Errorf("user add %s: %w", name, err)
					}
					fmt.Fprintf(os.Stderr, "user %s set in %s\n", name, path)
					return nil
				}},
			{Name: "rm", Usage: "remove a user", ArgsUsage: "NAME", Flags: userFlags,
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					path, err := usersFile(c)
					if err != nil {
						return err
					}
					if err := users.Remove(path, name); err != nil {
						return fmt.Errorf("user rm: %w (see `sluice user ls`)", err)
					}
					return nil
				}},
			{Name: "ls", Usage: "list the users, and any bad lines of the file", Flags: userFlags,
				Action: func(c *cli.Context) error {
					path, err := usersFile(c)
					if err != nil {
						return err
					}
					names, bad, err := users.List(path)
					if err != nil {
						return err
					}
					for _, n := range names {
						fmt.Println(n)
					}
					for _, e := range bad {
						fmt.Fprintln(os.Stderr, "bad line skipped:", e)
					}
					return nil
				}},
		},
	}
}

// readPassword reads the new password: with a prompt, without echo and
// twice when in is a terminal, else the first line of in.
func readPassword(in *os.File, prompt io.Writer) (string, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("no password on stdin; pipe it in, like: echo 'secret' | sluice user add NAME")
		}
		return pw, nil
	}
	fmt.Fprint(prompt, "Password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	fmt.Fprint(prompt, "Again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the passwords differ; nothing changed")
	}
	if len(a) == 0 {
		return "", errors.New("empty password; nothing changed")
	}
	return string(a), nil
}
