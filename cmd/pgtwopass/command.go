package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// command is one subcommand: urfave's definition (name, usage, flags,
// description) and what the help, the man pages and the shell completion
// show beyond it. Everything shown to the user is derived from these
// definitions; the tests check properties of what they produce.
type command struct {
	*cli.Command
	// parse reads the command line into the command's options struct. It
	// reads nothing but the command line (no file system, no network): the
	// tests call it to check that each flag a command offers changes what
	// it does.
	parse func(*cli.Context) (any, error)
	// examples are real command lines, each with a comment; each must parse.
	examples []example
	// exits are the exit statuses the command can return.
	exits []int
	// argChoices are the values of its first argument, for completion.
	argChoices []string
}

// example is a command line in a help's EXAMPLES section.
type example struct {
	comment string // what it does, one sentence
	line    string // the command line, as typed in a shell
}

// define makes a command whose action parses its command line into an O,
// then runs it.
func define[O any](c *cli.Command, parse func(*cli.Context) (O, error), run func(*cli.Context, O) error) *command {
	c.Action = func(ctx *cli.Context) error {
		o, err := parse(ctx)
		if r, ok := any(o).(parseErrorReporter); ok && err != nil {
			return r.reportParseError(ctx, err)
		}
		if err != nil {
			return err
		}
		return run(ctx, o)
	}
	c.HideHelpCommand = true // "prepare help" is not help: help is --help
	return &command{Command: c, parse: func(ctx *cli.Context) (any, error) { return parse(ctx) }}
}

// parseErrorReporter is an options struct that reports a command line it
// could not read as a failed run (runOptions).
type parseErrorReporter interface {
	reportParseError(*cli.Context, error) error
}

// commands returns every command, in the order of the help.
func commands() []*command {
	return []*command{
		prepareCommand(), finishCommand(), syncCommand(), verifyCommand(), statusCommand(), detachCommand(),
		demoCommand(), receiveCommand(), completionCommand(), manCommand(),
	}
}

// exitTexts say what each exit status means; a command lists those it can
// return (command.exits).
var exitTexts = map[int]string{
	exitOK:          "success",
	exitFailure:     "failure (the message says what failed and in what state it left SRC and DEST)",
	exitBadInput:    "bad usage or bad input: nothing was changed",
	exitBudget:      "the downtime budget (--max-downtime) cannot be met: the server was not stopped",
	exitDifferences: "verify found differences between SRC and DEST",
}

// allExits are the exit statuses of pgtwopass as a whole.
func allExits() []int {
	var codes []int
	for c := range exitTexts {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}

// argsNeeded returns an error unless c has n arguments; names says them.
func argsNeeded(c *cli.Context, names ...string) error {
	if c.NArg() == len(names) {
		return nil
	}
	what := ""
	switch len(names) {
	case 0:
		return &usageError{err: fmt.Errorf("%s takes no arguments; got %d", c.Command.Name, c.NArg()),
			hint: fmt.Sprintf("see 'pgtwopass %s --help'", c.Command.Name)}
	case 1:
		what = "one argument, " + names[0]
	case 2:
		what = "two arguments, " + names[0] + " and " + names[1]
	default:
		what = fmt.Sprintf("%d arguments, %s", len(names), strings.Join(names, " "))
	}
	name := c.Command.Name
	if c.NArg() > len(names) && len(names) > 0 {
		// Most often an option's value taken for an argument, or a
		// misspelled option after --.
		return &usageError{err: fmt.Errorf("%s needs %s; got %d: %s", name, what, c.NArg(), quoteArgs(c.Args().Slice())),
			hint: fmt.Sprintf("options may come before or after the arguments; see 'pgtwopass %s --help'", name)}
	}
	return &usageError{err: fmt.Errorf("%s needs %s; got %d", name, what, c.NArg()),
		hint: fmt.Sprintf("see 'pgtwopass %s --help'", name)}
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}
