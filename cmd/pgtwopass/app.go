package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// Exit codes, documented in every command's help (exitStatusHelp).
const (
	exitOK          = 0
	exitFailure     = 1
	exitBadInput    = 2
	exitBudget      = 3
	exitDifferences = 4
)

const exitStatusHelp = `EXIT STATUS:
   0  success
   1  failure (the message says what failed and in what state it left SRC and DEST)
   2  bad usage or bad input: nothing was changed
   3  the downtime budget cannot be met: the server was not stopped
   4  verify found differences between SRC and DEST`

// usageError is a command line that does not parse. hint, when set, says
// more than the default hint.
type usageError struct {
	err  error
	hint string
}

func (e *usageError) Error() string { return e.err.Error() }

// hintedError is a failure with the hint to print after it.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() }
func (e *hintedError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitCode maps an error to the process's exit status: the one table.
func exitCode(err error) int {
	var usage *usageError
	var input *pgsync.InputError
	var budget *pgsync.BudgetError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.As(err, &input):
		return exitBadInput
	case errors.As(err, &budget):
		return exitBudget
	case errors.Is(err, pgsync.ErrDifferences):
		return exitDifferences
	}
	return exitFailure
}

func hintFor(err error) string {
	var usage *usageError
	var input *pgsync.InputError
	var budget *pgsync.BudgetError
	var hinted *hintedError
	switch {
	case errors.As(err, &hinted):
		return hinted.hint
	case errors.As(err, &input):
		return input.Hint
	case errors.As(err, &budget):
		return budget.Hint()
	case errors.As(err, &usage) && usage.hint != "":
		return usage.hint
	case errors.As(err, &usage):
		return "see 'pgtwopass --help' and 'pgtwopass COMMAND --help'"
	case errors.Is(err, pgsync.ErrInterrupted):
		return "the copy is left unsealed and cannot be started; run the same command again to finish it"
	case errors.Is(err, manifest.ErrCorrupt):
		return "the copy's manifest is damaged and is not trusted: finish rebuilds it from the copy's contents; verify SRC DEST compares the copy with the source"
	}
	return ""
}

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "devel"

// program names this pgtwopass to a receiver on another host, and to the
// sender that started it.
func program() string { return "pgtwopass " + version }

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "pgtwopass",
		Version: version,
		Usage:   "copy a PostgreSQL data directory with the shortest possible downtime",
		Description: `pgtwopass copies a data directory in two kinds of pass. Live passes run while the
server runs and copy what changed since the last pass. The cold pass runs with the
server stopped: it reads every source block, compares it with the manifest of block
hashes kept in DEST/.pgtwopass, and writes only the blocks that changed. Only a copy
finished by a cold pass can be started: global/pg_control goes in last (the seal).

A maintenance window:
   pgtwopass prepare /var/lib/postgresql/15/main /mnt/new/main   # any time, repeatable
   pgtwopass finish --restart /var/lib/postgresql/15/main /mnt/new/main

DEST may be on another host, [user@]host:PATH, as with rsync: pgtwopass runs
"pgtwopass receive PATH" there through a remote shell (-e/--rsh, default ssh) and
sends only the blocks that differ; every command takes such a DEST.

` + exitStatusHelp,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Commands: []*cli.Command{
			prepareCommand(), finishCommand(), syncCommand(), verifyCommand(), statusCommand(), demoCommand(), receiveCommand(),
		},
		OnUsageError: onUsageError,
		Action:       unknownCommand,
		ExitErrHandler: func(*cli.Context, error) {
			// run() reports errors and picks the exit status.
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = onUsageError
		c.Description = strings.TrimSpace(c.Description) + "\n\n" + exitStatusHelp
	}
	return app
}

func onUsageError(_ *cli.Context, err error, _ bool) error { return &usageError{err: err} }

// unknownCommand runs when no command matches: without arguments (or with
// "help [COMMAND]") it shows the help, otherwise the first argument is a
// command that does not exist.
func unknownCommand(c *cli.Context) error {
	switch {
	case c.NArg() == 0, c.NArg() == 1 && c.Args().First() == "help":
		return cli.ShowAppHelp(c)
	case c.NArg() == 2 && c.Args().First() == "help" && c.App.Command(c.Args().Get(1)) != nil:
		return cli.ShowCommandHelp(c, c.Args().Get(1))
	}
	name := c.Args().First()
	if name == "help" {
		name = c.Args().Get(1)
	}
	var names []string
	for _, cmd := range c.App.VisibleCommands() {
		names = append(names, cmd.Name)
	}
	return &usageError{
		err:  fmt.Errorf("unknown command %q", name),
		hint: "the commands are " + strings.Join(names, ", ") + "; see 'pgtwopass --help'",
	}
}

// run runs the command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := newApp(stdout, stderr).RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	if !errors.Is(err, pgsync.ErrDifferences) {
		name := "pgtwopass"
		if len(args) > 1 && args[1] == "receive" {
			// Its stderr reaches the user through the sender's: say whose.
			name = "pgtwopass receive"
		}
		fmt.Fprintf(stderr, "%s: error: %v\n", name, err)
		if hint := hintFor(err); hint != "" {
			fmt.Fprintf(stderr, "%s: hint: %s\n", name, hint)
		}
	}
	return exitCode(err)
}

// twoArgs returns SRC and DEST.
func twoArgs(c *cli.Context) (string, string, error) {
	if c.NArg() != 2 {
		return "", "", usagef("%s needs two arguments, SRC and DEST; got %d", c.Command.Name, c.NArg())
	}
	return c.Args().Get(0), c.Args().Get(1), nil
}
