package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Shell completion. Bash and zsh ask the binary, as urfave/cli's scripts
// do: the words typed so far, then --generate-bash-completion; the answer
// is one candidate per line ("candidate:description" for zsh), and no
// answer means files. Unlike urfave's scripts, ours always pass the word
// being completed, also when it is empty, so that the values of an option
// (--cold-pass <TAB>) can be told from the option itself (--cold<TAB>).
// Fish gets its completions written out from the same definitions.

// completionFlag ends a command line that asks for completions.
const completionFlag = "--generate-bash-completion"

func completionCommand() *command {
	c := define(&cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "SHELL",
		Description: `completion prints a script that completes pgtwopass's commands, options and
their values in SHELL (bash, zsh or fish). The packages install it where each
shell finds it; without a package, load it from the shell's startup file.`,
	}, parseCompletion, runCompletion)
	c.examples = []example{
		{"Completion in the current bash (add it to ~/.bashrc to keep it).",
			"pgtwopass completion bash > ~/.pgtwopass-completion.bash"},
		{"Completion for fish, where fish looks for it.",
			"pgtwopass completion fish > ~/.config/fish/completions/pgtwopass.fish"},
	}
	c.exits = []int{exitOK, exitFailure, exitBadInput}
	c.argChoices = []string{"bash", "zsh", "fish"}
	return c
}

func parseCompletion(c *cli.Context) (string, error) {
	if err := argsNeeded(c, "SHELL"); err != nil {
		return "", err
	}
	shell := c.Args().First()
	switch shell {
	case "bash", "zsh", "fish":
		return shell, nil
	}
	return "", &usageError{err: fmt.Errorf("no completion for the shell %q", shell), hint: "give bash, zsh or fish"}
}

func runCompletion(c *cli.Context, shell string) error {
	var err error
	switch shell {
	case "bash":
		_, err = io.WriteString(c.App.Writer, bashCompletion)
	case "zsh":
		_, err = io.WriteString(c.App.Writer, zshCompletion)
	case "fish":
		err = writeFishCompletion(c.App.Writer, commands())
	}
	return err
}

const bashCompletion = `# bash completion for pgtwopass (pgtwopass completion bash)
_pgtwopass() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local words=("${COMP_WORDS[@]:1:COMP_CWORD-1}" "$cur")
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${words[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o bashdefault -o default -F _pgtwopass pgtwopass
`

const zshCompletion = `#compdef pgtwopass
# zsh completion for pgtwopass (pgtwopass completion zsh)
_pgtwopass() {
    local -a args candidates
    args=("${(@)words[2,CURRENT]}")
    candidates=("${(@f)$(_CLI_ZSH_AUTOCOMPLETE_HACK=1 ${words[1]} "${args[@]}" --generate-bash-completion 2>/dev/null)}")
    if [[ -n ${candidates[1]} ]]; then
        _describe -t values 'pgtwopass' candidates
    else
        _files
    fi
}
if [[ ${funcstack[1]} == _pgtwopass ]]; then
    _pgtwopass "$@"
else
    compdef _pgtwopass pgtwopass
fi
`

// complete answers a completion request: words are the command line after
// the program's name, without completionFlag; the last is the word being
// completed.
func complete(w io.Writer, cmds []*command, words []string) {
	describe := os.Getenv("_CLI_ZSH_AUTOCOMPLETE_HACK") == "1"
	say := func(candidate, description string) {
		if describe && description != "" {
			fmt.Fprintf(w, "%s:%s\n", strings.ReplaceAll(candidate, ":", `\:`), firstClause(description))
		} else {
			fmt.Fprintln(w, candidate)
		}
	}
	cur := ""
	if n := len(words); n > 0 {
		cur, words = words[n-1], words[:n-1]
		if !strings.HasPrefix(cur, "-") {
			cur = "" // an argument or a value: the shell filters
		}
	}
	i := 0
	for i < len(words) && isOption(words[i]) {
		i++
	}
	if i == len(words) { // no command yet
		if cur != "" {
			for _, f := range []cli.Flag{cli.HelpFlag, cli.VersionFlag} {
				sayFlag(say, f, cur)
			}
			return
		}
		for _, c := range visible(cmds) {
			say(c.Name, c.Usage)
		}
		return
	}
	cmd := findCommand(cmds, words[i])
	if cmd == nil {
		return
	}
	args := words[i+1:]
	if slicesContains(args, "--") {
		return // arguments only: files
	}
	if cur != "" {
		for _, f := range append(cmd.Flags, cli.HelpFlag) {
			if !repeatable(f) && given(args, f) {
				continue
			}
			sayFlag(say, f, cur)
		}
		return
	}
	// The value of an option: "--log-format " or "--log-format=" (bash
	// splits the = off).
	if n := len(args); n > 0 {
		prev := args[n-1]
		if prev == "=" && n > 1 {
			prev = args[n-2]
		}
		if isOption(prev) && !strings.Contains(prev, "=") {
			if f := lookupFlag(cmd.Flags, strings.TrimLeft(prev, "-")); f != nil && takesValue(f) {
				if cf, ok := f.(*choiceFlag); ok {
					for _, v := range cf.Choices {
						say(v, "")
					}
				}
				return // else files
			}
		}
	}
	if len(cmd.argChoices) > 0 && positionals(cmd, args) == 0 {
		for _, v := range cmd.argChoices {
			say(v, "")
		}
	}
}

// sayFlag offers the names of f that start with cur.
func sayFlag(say func(string, string), f cli.Flag, cur string) {
	if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
		return
	}
	usage := ""
	if d, ok := f.(cli.DocGenerationFlag); ok {
		_, usage = unquoteUsage(d.GetUsage())
	}
	for _, n := range f.Names() {
		if name := dashes(n); len(n) > 1 && strings.HasPrefix(name, cur) || len(n) == 1 && cur == name {
			say(name, usage)
		}
	}
}

// firstClause is a description cut for a completion menu.
func firstClause(s string) string {
	if i := strings.IndexAny(s, ";("); i > 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func repeatable(f cli.Flag) bool { return docOf(f).repeatable }

// given says whether one of f's names is among args.
func given(args []string, f cli.Flag) bool {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if isOption(a) && lookupFlag([]cli.Flag{f}, name) != nil {
			return true
		}
	}
	return false
}

// positionals counts the arguments among args (not options nor their
// values).
func positionals(cmd *command, args []string) int {
	n := 0
	for j := 0; j < len(args); j++ {
		a := args[j]
		if !isOption(a) {
			n++
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f := lookupFlag(cmd.Flags, name); f != nil && takesValue(f) && !hasValue {
			j++
		}
	}
	return n
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// writeFishCompletion writes fish's completions of every visible command
// and its options.
func writeFishCompletion(w io.Writer, cmds []*command) error {
	var b strings.Builder
	b.WriteString("# fish completion for pgtwopass (pgtwopass completion fish)\n")
	b.WriteString("complete -c pgtwopass -f\n")
	names := []string{}
	for _, c := range visible(cmds) {
		names = append(names, c.Name)
	}
	noCmd := "not __fish_seen_subcommand_from " + strings.Join(names, " ")
	for _, f := range []cli.Flag{cli.HelpFlag, cli.VersionFlag} {
		b.WriteString(fishFlag(noCmd, f))
	}
	for _, c := range visible(cmds) {
		fmt.Fprintf(&b, "complete -c pgtwopass -n %s -a %s -d %s\n", fishQuote(noCmd), c.Name, fishQuote(firstClause(c.Usage)))
	}
	for _, c := range visible(cmds) {
		cond := "__fish_seen_subcommand_from " + c.Name
		for _, f := range append(c.Flags, cli.HelpFlag) {
			b.WriteString(fishFlag(cond, f))
		}
		switch {
		case len(c.argChoices) > 0:
			fmt.Fprintf(&b, "complete -c pgtwopass -n %s -a %s\n", fishQuote(cond), fishQuote(strings.Join(c.argChoices, " ")))
		case c.ArgsUsage != "":
			fmt.Fprintf(&b, "complete -c pgtwopass -n %s -F\n", fishQuote(cond)) // SRC, DEST, PATH: files
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fishFlag(cond string, f cli.Flag) string {
	if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
		return ""
	}
	d := docOf(f)
	s := "complete -c pgtwopass -n " + fishQuote(cond)
	for _, n := range d.short {
		s += " -s " + n
	}
	for _, n := range d.long {
		s += " -l " + n
	}
	values := ""
	if d.placeholder != "" {
		s += " -r"
		if cf, ok := f.(*choiceFlag); ok {
			// The values on a line of their own, so that the option's
			// description is not shown beside each value.
			s += " -f"
			values = s + " -a " + fishQuote(strings.Join(cf.Choices, " ")) + "\n"
		} else {
			s += " -F"
		}
	}
	return values + s + " -d " + fishQuote(firstClause(d.usage)) + "\n"
}

// fishQuote quotes s for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
