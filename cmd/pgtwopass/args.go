package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Command lines are parsed by urfave/cli, which stops at the first
// argument that is not an option, like Go's flag package. pgtwopass takes
// options before and after its arguments, as rsync, pg_basebackup and
// pg_ctl do: reorder moves a command's options in front of its arguments
// before urfave sees them, knowing from the command's own flags which
// options take a value. "--" ends the options.

// reorder returns args (os.Args) with the options of the command moved
// before its arguments, and "--" before the arguments, so that an argument
// that starts with "-" stays an argument. With --help, only the help is
// left. Options before the command, and the command lines of unknown
// commands, are left as they are. An option that lacks its value is an
// error.
func reorder(cmds []*command, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	i := 1
	for i < len(args) && isOption(args[i]) {
		i++
	}
	if i == len(args) {
		return args, nil
	}
	cmd := findCommand(cmds, args[i])
	if cmd == nil {
		return args, nil
	}
	out := append([]string{}, args[:i+1]...)
	var positional []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			positional = append(positional, rest[j+1:]...)
			j = len(rest)
		case isOption(a):
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if name == "help" || name == "h" {
				return append(args[:i+1:i+1], a), nil
			}
			out = append(out, a)
			if f := lookupFlag(cmd.Flags, name); f != nil && takesValue(f) && !hasValue {
				if j+1 == len(rest) {
					return nil, &usageError{err: fmt.Errorf("%s needs a value", a), hint: "see 'pgtwopass " + cmd.Name + " --help'"}
				}
				out = append(out, rest[j+1])
				j++
			}
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out, nil
}

// isOption says whether a word of a command line is an option ("-" alone
// is an argument: standard input or output).
func isOption(a string) bool { return len(a) > 1 && a[0] == '-' }

func findCommand(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// lookupFlag returns the flag of flags called name (without dashes).
func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue says whether a flag takes a value (--jobs 4), rather than
// being a switch (--restart).
func takesValue(f cli.Flag) bool {
	d, ok := f.(cli.DocGenerationFlag)
	return ok && d.TakesValue()
}

// flagUsageError turns the errors of Go's flag package, which urfave/cli
// returns, into messages that name the options as they are typed, with a
// hint. cmd is nil for options before the command.
func flagUsageError(cmds []*command, cmd *cli.Command, err error) error {
	msg := err.Error()
	name := "pgtwopass"
	help := "pgtwopass --help"
	if cmd != nil {
		name = cmd.Name
		help = "pgtwopass " + cmd.Name + " --help"
	}
	if opt, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		if cmd == nil {
			return globalOptionError(cmds, opt)
		}
		var others []string
		for _, c := range cmds {
			if c.Name != cmd.Name && !c.Hidden && lookupFlag(c.Flags, opt) != nil {
				others = append(others, c.Name)
			}
		}
		hint := "the options of " + name + " are listed by '" + help + "'"
		if len(others) > 0 {
			hint = dashes(opt) + " is an option of " + andList(others) + "; " + hint
		}
		return &usageError{err: fmt.Errorf("%s does not take %s", name, dashes(opt)), hint: hint}
	}
	if opt, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return &usageError{err: fmt.Errorf("%s needs a value", dashes(opt)), hint: "see '" + help + "'"}
	}
	// invalid value "x" for flag -jobs: parse error
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if val, after, ok := strings.Cut(rest, " for flag -"); ok {
			opt, why, _ := strings.Cut(after, ": ")
			why = strings.TrimPrefix(why, "parse error")
			if why != "" {
				why = ": " + why
			}
			return &usageError{err: fmt.Errorf("invalid %s %s%s", dashes(opt), val, why), hint: "see '" + help + "'"}
		}
	}
	return &usageError{err: err}
}

// globalOptionError is an unknown option before the command: -v is not
// --version (-V is), and the options of commands go after their names.
func globalOptionError(cmds []*command, opt string) error {
	err := fmt.Errorf("pgtwopass takes no option %s before a command", dashes(opt))
	if opt == "v" {
		return &usageError{err: err, hint: "-V or --version prints the version; -v (--verbose) goes after the command, e.g. pgtwopass prepare -v SRC DEST"}
	}
	for _, c := range cmds {
		if !c.Hidden && lookupFlag(c.Flags, opt) != nil {
			return &usageError{err: err, hint: fmt.Sprintf("put the options after the command, e.g. pgtwopass %s %s ...", c.Name, dashes(opt))}
		}
	}
	return &usageError{err: err, hint: "see 'pgtwopass --help'"}
}

// dashes spells an option as it is typed: -v, --jobs.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// usageErrorFor is the OnUsageError of the app and of every command.
func usageErrorFor(cmds []*command) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, isSubcommand bool) error {
		var cmd *cli.Command
		if isSubcommand {
			cmd = c.Command
		}
		var ue *usageError
		if errors.As(err, &ue) {
			return err
		}
		return flagUsageError(cmds, cmd, err)
	}
}
