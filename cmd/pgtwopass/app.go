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

// Exit codes: the one table is exitCode; exitTexts says what each means.
const (
	exitOK          = 0
	exitFailure     = 1
	exitBadInput    = 2
	exitBudget      = 3
	exitDifferences = 4
)

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
		return "run the same command again to finish the copy; 'pgtwopass status DEST' says whether it is sealed (only a sealed copy can be started)"
	case errors.Is(err, manifest.ErrCorrupt):
		return "the copy's manifest is damaged and is not trusted: finish rebuilds it from the copy's contents; verify SRC DEST compares the copy with the source"
	}
	return ""
}

const appUsage = "copy a PostgreSQL data directory with the shortest possible downtime"

const appDescription = `pgtwopass copies a data directory in two kinds of pass. Live passes run while the
server runs and copy what changed since the last pass. The cold pass runs with the
server stopped: it reads every source block, compares it with the manifest of block
hashes kept in DEST/.pgtwopass, and writes only the blocks that changed. Only a copy
finished by a cold pass can be started: global/pg_control goes in last (the seal).

DEST may be on another host, [user@]host:PATH, as with rsync: pgtwopass runs
"pgtwopass receive PATH" there through a remote shell (-e/--rsh, default ssh) and
sends only the blocks that differ; every command takes such a DEST.

Options go before or after the arguments; -- ends them. "pgtwopass COMMAND --help"
lists a command's options.`

// appExamples are the maintenance window of the README.
var appExamples = []example{
	{"Any time before the window, as often as you like: live passes while the server runs.",
		"pgtwopass prepare /var/lib/postgresql/15/main /mnt/new/main"},
	{"In the window: stop the server, finish and seal the copy, start the server again.",
		"pgtwopass finish --restart /var/lib/postgresql/15/main /mnt/new/main"},
	{"Whether the copy is sealed and can be started.",
		"pgtwopass status /mnt/new/main"},
}

// newApp returns the app of the commands cmds.
func newApp(cmds []*command, stdout, stderr io.Writer) *cli.App {
	onUsage := usageErrorFor(cmds)
	app := &cli.App{
		Name:            "pgtwopass",
		Version:         readBuildInfo().Version,
		Usage:           appUsage,
		Description:     appDescription,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		OnUsageError:    onUsage,
		Action:          unknownCommand,
		ExitErrHandler: func(*cli.Context, error) {
			// run() reports errors and picks the exit status.
		},
	}
	for _, c := range cmds {
		c.OnUsageError = onUsage
		app.Commands = append(app.Commands, c.Command)
	}
	return app
}

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
	if n := len(args); n > 0 && args[n-1] == completionFlag {
		complete(stdout, commands(), args[1:n-1])
		return exitOK
	}
	cmds := commands()
	reordered, err := reorder(cmds, args)
	if err == nil {
		err = newApp(cmds, stdout, stderr).RunContext(ctx, reordered)
	}
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
