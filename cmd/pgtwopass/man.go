package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
)

// Man pages, in roff (man(7)), from the same definitions as the help:
// pgtwopass(1) lists the commands, and pgtwopass-COMMAND(1) describes each.
// make install and make deb write them with the hidden command "man".

func manCommand() *command {
	c := define(&cli.Command{
		Name:      "man",
		Usage:     "write the man pages into a directory (for make install)",
		ArgsUsage: "DIR",
		Hidden:    true,
		Description: `man writes pgtwopass.1 and pgtwopass-COMMAND.1 for each command into DIR,
generated from the same definitions as the help.`,
	}, parseMan, runMan)
	c.examples = []example{{"What make install runs.", "pgtwopass man build/man"}}
	c.exits = []int{exitOK, exitFailure, exitBadInput}
	return c
}

func parseMan(c *cli.Context) (string, error) {
	if err := argsNeeded(c, "DIR"); err != nil {
		return "", err
	}
	return c.Args().First(), nil
}

func runMan(c *cli.Context, dir string) error {
	cmds := commands()
	pages := map[string]func(io.Writer){"pgtwopass.1": func(w io.Writer) { writeAppMan(w, cmds) }}
	for _, cmd := range visible(cmds) {
		pages["pgtwopass-"+cmd.Name+".1"] = func(w io.Writer) { writeCommandMan(w, cmd, cmds) }
	}
	for name, write := range pages {
		var b strings.Builder
		write(&b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("failed to write the man page: %w", err)
		}
	}
	return nil
}

// roff escapes text for a man page: backslashes, hyphens of options, and a
// leading dot or quote that roff would take for a request.
func roff(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// manHeader writes .TH and NAME.
func manHeader(w io.Writer, name, summary string) {
	fmt.Fprintf(w, ".TH %s 1 \"\" \"pgtwopass %s\" \"pgtwopass manual\"\n", strings.ToUpper(roff(name)), roff(readBuildInfo().Version))
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roff(name), roff(summary))
}

// manText writes a description: paragraphs, and lines kept as they are.
func manText(w io.Writer, s string) {
	for i, p := range paragraphs(s) {
		if i > 0 {
			fmt.Fprintln(w, ".PP")
		}
		if p.pre {
			fmt.Fprintln(w, ".nf\n.RS 4")
			for _, l := range p.lines {
				fmt.Fprintln(w, roff(strings.TrimLeft(l, " ")))
			}
			fmt.Fprintln(w, ".RE\n.fi")
			continue
		}
		fmt.Fprintln(w, roff(strings.Join(p.lines, " ")))
	}
}

func manOptions(w io.Writer, flags []cli.Flag) {
	for _, f := range flags {
		d := docOf(f)
		var names []string
		for _, s := range d.short {
			names = append(names, `\fB`+roff("-"+s)+`\fR`)
		}
		for _, l := range d.long {
			names = append(names, `\fB`+roff("--"+l)+`\fR`)
		}
		line := strings.Join(names, ", ")
		if d.placeholder != "" {
			line += ` \fI` + roff(d.placeholder) + `\fR`
		}
		fmt.Fprintf(w, ".TP\n%s\n%s\n", line, roff(d.text()))
	}
}

func manExamples(w io.Writer, ex []example) {
	if len(ex) == 0 {
		return
	}
	fmt.Fprintln(w, ".SH EXAMPLES")
	for i, e := range ex {
		if i > 0 {
			fmt.Fprintln(w, ".PP")
		}
		fmt.Fprintln(w, roff(e.comment))
		fmt.Fprintln(w, ".PP\n.nf\n.RS 4")
		for _, l := range wrapCommand(e.line, helpWidth-8) {
			fmt.Fprintln(w, roff(l))
		}
		fmt.Fprintln(w, ".RE\n.fi")
	}
}

func manExits(w io.Writer, codes []int) {
	fmt.Fprintln(w, ".SH EXIT STATUS")
	for _, c := range codes {
		fmt.Fprintf(w, ".TP\n.B %d\n%s\n", c, roff(exitTexts[c]))
	}
}

func writeCommandMan(w io.Writer, c *command, cmds []*command) {
	manHeader(w, "pgtwopass-"+c.Name, c.Usage)
	fmt.Fprintln(w, ".SH SYNOPSIS")
	for i, alt := range strings.Split(usageLine(c), " | ") {
		if i > 0 {
			fmt.Fprintln(w, ".br")
			alt = "pgtwopass " + c.Name + " [OPTIONS] " + alt
		}
		prog, rest, _ := strings.Cut(alt, " "+c.Name)
		fmt.Fprintf(w, ".B %s %s\n%s\n", prog, c.Name, roff(strings.TrimSpace(rest)))
	}
	if c.Description != "" {
		fmt.Fprintln(w, ".SH DESCRIPTION")
		manText(w, c.Description)
	}
	for _, g := range groups(c.Flags) {
		fmt.Fprintf(w, ".SH %s\n", g.title)
		manOptions(w, g.flags)
	}
	manExamples(w, c.examples)
	manExits(w, c.exits)
	fmt.Fprintln(w, ".SH SEE ALSO")
	var refs []string
	refs = append(refs, `\fBpgtwopass\fR(1)`)
	for _, o := range visible(cmds) {
		if o.Name != c.Name {
			refs = append(refs, `\fBpgtwopass\-`+o.Name+`\fR(1)`)
		}
	}
	fmt.Fprintln(w, strings.Join(refs, ", "))
}

func writeAppMan(w io.Writer, cmds []*command) {
	manHeader(w, "pgtwopass", appUsage)
	fmt.Fprintln(w, ".SH SYNOPSIS")
	fmt.Fprintln(w, ".B pgtwopass\n\\fICOMMAND\\fR [\\fIOPTIONS\\fR] \\fIARGUMENTS\\fR...\n.br\n.B pgtwopass\n\\fB\\-\\-version\\fR")
	fmt.Fprintln(w, ".SH DESCRIPTION")
	manText(w, appDescription)
	fmt.Fprintln(w, ".SH COMMANDS")
	for _, c := range visible(cmds) {
		fmt.Fprintf(w, ".TP\n\\fBpgtwopass\\-%s\\fR(1)\n%s\n", c.Name, roff(c.Usage))
	}
	fmt.Fprintln(w, ".SH OPTIONS")
	manOptions(w, []cli.Flag{cli.HelpFlag, cli.VersionFlag})
	manExamples(w, appExamples)
	manExits(w, allExits())
	fmt.Fprintln(w, ".SH FILES")
	fmt.Fprintln(w, ".TP\n.I DEST/.pgtwopass\nthe manifest of block hashes, the lock, and the copy's pg_control until the seal")
	fmt.Fprintln(w, ".SH SEE ALSO")
	var refs []string
	for _, c := range visible(cmds) {
		refs = append(refs, `\fBpgtwopass\-`+c.Name+`\fR(1)`)
	}
	fmt.Fprintln(w, strings.Join(append(refs, `\fBpg_basebackup\fR(1)`, `\fBrsync\fR(1)`), ", "))
}
