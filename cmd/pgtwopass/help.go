package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
)

// The help is written from the commands' definitions by helpPrinter, not
// by urfave/cli's templates: wrapped to helpWidth columns, options grouped
// by their Category with one default each, then the command's EXAMPLES and
// the EXIT STATUS it can return. The man pages (man.go) say the same.

// helpWidth is the width of the help, in columns.
const helpWidth = 80

const (
	helpIndent = "   " // under a heading
	// flagColumn is where an option's description starts; an option whose
	// names are longer has its description on the next line.
	flagColumn = 28
)

func init() {
	cli.HelpFlag = &cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "show this help"}
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Usage: "print the version, the commit and the Go version"}
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, readBuildInfo()) }
	cli.HelpPrinter = helpPrinter
}

// helpPrinter replaces urfave/cli's HelpPrinter: data is the app or the
// command whose help was asked for; the template is not used.
func helpPrinter(w io.Writer, _ string, data any) {
	switch d := data.(type) {
	case *cli.App:
		writeAppHelp(w, commands())
	case *cli.Command:
		if c := findCommand(commands(), d.Name); c != nil {
			writeCommandHelp(w, c)
		}
	}
}

// optionGroup is the options of one Category, in the order of definition.
type optionGroup struct {
	title string
	flags []cli.Flag
}

// groups returns flags grouped by category: the uncategorized first (with
// --help last), then each category in the order of its first flag.
func groups(flags []cli.Flag) []optionGroup {
	out := []optionGroup{{title: "OPTIONS"}}
	index := map[string]int{"OPTIONS": 0}
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		if lookupFlag([]cli.Flag{f}, "help") != nil {
			continue // last of the first group
		}
		title := "OPTIONS"
		if c, ok := f.(cli.CategorizableFlag); ok && c.GetCategory() != "" {
			title = strings.ToUpper(c.GetCategory()) + " OPTIONS"
		}
		i, ok := index[title]
		if !ok {
			i = len(out)
			index[title] = i
			out = append(out, optionGroup{title: title})
		}
		out[i].flags = append(out[i].flags, f)
	}
	out[0].flags = append(out[0].flags, cli.HelpFlag)
	return out
}

// flagDoc is what the help and the man pages say of one option.
type flagDoc struct {
	short, long []string // names without dashes
	placeholder string   // of its value; "" for a switch
	usage       string   // without the backquotes
	deflt       string   // its one default; "" for none
	repeatable  bool
}

// docOf describes f. The placeholder of a flag's value is the part of its
// Usage in backquotes (`N`), or its choices (checksum|quick), else VALUE.
// The default is the flag's DefaultText, else its Value unless zero: the
// Usage itself never says "(default: ...)".
func docOf(f cli.Flag) flagDoc {
	var d flagDoc
	for _, n := range f.Names() {
		if len(n) == 1 {
			d.short = append(d.short, n)
		} else {
			d.long = append(d.long, n)
		}
	}
	dg, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return d
	}
	d.placeholder, d.usage = unquoteUsage(dg.GetUsage())
	if cf, ok := f.(*choiceFlag); ok {
		d.placeholder = strings.Join(cf.Choices, "|")
	}
	if !dg.TakesValue() {
		d.placeholder = ""
		return d
	}
	if d.placeholder == "" {
		d.placeholder = "VALUE"
	}
	switch f.(type) {
	case *cli.StringSliceFlag, *cli.IntSliceFlag, *cli.Int64SliceFlag, *cli.Float64SliceFlag, *cli.UintSliceFlag, *cli.Uint64SliceFlag:
		d.repeatable = true
	}
	switch def := dg.GetDefaultText(); def {
	case "", "0", "0s", `""`:
	default:
		if u, err := strconv.Unquote(def); err == nil && strings.HasPrefix(def, `"`) {
			def = u // a string's Value
		}
		d.deflt = def
	}
	return d
}

// unquoteUsage returns the text in backquotes in usage, and usage without
// the backquotes.
func unquoteUsage(usage string) (name, text string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name = usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+1+j+1:]
}

// names is how the options are typed: "-j, --jobs N".
func (d flagDoc) names() string {
	var parts []string
	for _, s := range d.short {
		parts = append(parts, "-"+s)
	}
	for _, l := range d.long {
		parts = append(parts, "--"+l)
	}
	s := strings.Join(parts, ", ")
	if len(d.short) == 0 {
		s = "    " + s // the long names line up
	}
	if d.placeholder != "" {
		s += " " + d.placeholder
	}
	return s
}

// text is the description with the default and repeatability.
func (d flagDoc) text() string {
	s := d.usage
	if d.deflt != "" {
		s += " (default: " + d.deflt + ")"
	}
	if d.repeatable {
		s += " (repeatable)"
	}
	return s
}

// usageLine is "pgtwopass prepare [OPTIONS] SRC DEST".
func usageLine(c *command) string {
	s := "pgtwopass " + c.Name
	if len(c.Flags) > 0 {
		s += " [OPTIONS]"
	}
	if c.ArgsUsage != "" {
		s += " " + c.ArgsUsage
	}
	return s
}

func writeCommandHelp(w io.Writer, c *command) {
	h := &helpWriter{w: w}
	h.heading("NAME")
	h.para(helpIndent, "pgtwopass "+c.Name+" - "+c.Usage)
	h.heading("USAGE")
	for _, alt := range strings.Split(usageLine(c), " | ") {
		if !strings.HasPrefix(alt, "pgtwopass ") {
			alt = "pgtwopass " + c.Name + " [OPTIONS] " + alt
		}
		h.para(helpIndent, alt)
	}
	if c.Description != "" {
		h.heading("DESCRIPTION")
		h.text(c.Description)
	}
	for _, g := range groups(c.Flags) {
		h.heading(g.title)
		h.options(g.flags)
	}
	h.examples(c.examples)
	h.exits(c.exits)
}

func writeAppHelp(w io.Writer, cmds []*command) {
	h := &helpWriter{w: w}
	h.heading("NAME")
	h.para(helpIndent, "pgtwopass - "+appUsage)
	h.heading("USAGE")
	h.para(helpIndent, "pgtwopass COMMAND [OPTIONS] ARGUMENTS...")
	h.para(helpIndent, "pgtwopass COMMAND --help")
	h.para(helpIndent, "pgtwopass --version")
	h.heading("COMMANDS")
	width := 0
	for _, c := range cmds {
		if !c.Hidden {
			width = max(width, len(c.Name))
		}
	}
	for _, c := range cmds {
		if !c.Hidden {
			h.hanging(helpIndent, fmt.Sprintf("%-*s  ", width, c.Name), c.Usage)
		}
	}
	h.heading("DESCRIPTION")
	h.text(appDescription)
	h.heading("OPTIONS")
	h.options([]cli.Flag{cli.HelpFlag, cli.VersionFlag})
	h.examples(appExamples)
	h.exits(allExits())
}

// helpWriter writes the sections of a help.
type helpWriter struct {
	w       io.Writer
	started bool
}

func (h *helpWriter) heading(s string) {
	if h.started {
		fmt.Fprintln(h.w)
	}
	h.started = true
	fmt.Fprintln(h.w, s+":")
}

// para writes s wrapped, each line after indent.
func (h *helpWriter) para(indent, s string) {
	for _, l := range wrap(s, helpWidth-width(indent)) {
		fmt.Fprintln(h.w, strings.TrimRight(indent+l, " "))
	}
}

// hanging writes label then s wrapped beside it, the following lines
// lined up under s.
func (h *helpWriter) hanging(indent, label, s string) {
	pad := strings.Repeat(" ", width(indent)+width(label))
	for i, l := range wrap(s, helpWidth-len(pad)) {
		if i == 0 {
			fmt.Fprintln(h.w, indent+label+l)
		} else {
			fmt.Fprintln(h.w, pad+l)
		}
	}
}

// text writes a description: paragraphs are separated by blank lines and
// re-wrapped; lines that start with a space are kept as they are (command
// lines, lists).
func (h *helpWriter) text(s string) {
	for i, p := range paragraphs(s) {
		if i > 0 {
			fmt.Fprintln(h.w)
		}
		if p.pre {
			for _, l := range p.lines {
				fmt.Fprintln(h.w, helpIndent+l)
			}
			continue
		}
		h.para(helpIndent, strings.Join(p.lines, " "))
	}
}

func (h *helpWriter) options(flags []cli.Flag) {
	for _, f := range flags {
		d := docOf(f)
		label := helpIndent + d.names()
		if width(label)+2 > flagColumn {
			fmt.Fprintln(h.w, label)
			h.para(strings.Repeat(" ", flagColumn), d.text())
			continue
		}
		h.hanging("", label+strings.Repeat(" ", flagColumn-width(label)), d.text())
	}
}

func (h *helpWriter) examples(ex []example) {
	if len(ex) == 0 {
		return
	}
	h.heading("EXAMPLES")
	for i, e := range ex {
		if i > 0 {
			fmt.Fprintln(h.w)
		}
		h.para(helpIndent+"# ", e.comment)
		for _, l := range wrapCommand(e.line, helpWidth-width(helpIndent)) {
			fmt.Fprintln(h.w, helpIndent+l)
		}
	}
}

func (h *helpWriter) exits(codes []int) {
	h.heading("EXIT STATUS")
	for _, c := range codes {
		h.hanging(helpIndent, fmt.Sprintf("%d  ", c), exitTexts[c])
	}
}

// paragraph is a block of a description.
type paragraph struct {
	lines []string
	pre   bool // kept as is: its lines start with a space
}

func paragraphs(s string) []paragraph {
	var out []paragraph
	var cur *paragraph
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		l = strings.TrimRight(l, " \t")
		pre := strings.HasPrefix(l, " ")
		switch {
		case l == "":
			cur = nil
			continue
		case cur == nil || cur.pre != pre:
			out = append(out, paragraph{pre: pre})
			cur = &out[len(out)-1]
		}
		if !pre {
			l = strings.TrimSpace(l)
		}
		cur.lines = append(cur.lines, l)
	}
	return out
}

// width is the width of s in columns (one per rune).
func width(s string) int { return utf8.RuneCountInString(s) }

// wrap breaks s into lines of at most w columns at spaces; a word longer
// than w gets a line of its own.
func wrap(s string, w int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case width(line)+1+width(word) <= w:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// wrapCommand breaks a shell command line into lines of at most w columns
// with a backslash at the end of each but the last, at spaces outside
// quotes.
func wrapCommand(s string, w int) []string {
	words := shellWords(s)
	var lines []string
	line := ""
	const cont = "    "
	for _, word := range words {
		limit := w - 2 // room for " \"
		switch {
		case line == "":
			line = word
		case width(line)+1+width(word) <= limit:
			line += " " + word
		default:
			lines = append(lines, line+" \\")
			line = cont + word
		}
	}
	return append(lines, line)
}

// shellWords splits a command line at spaces outside quotes, keeping the
// quotes.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == ' ':
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}

// visible returns the commands shown in the help.
func visible(cmds []*command) []*command {
	return slices.DeleteFunc(slices.Clone(cmds), func(c *command) bool { return c.Hidden })
}
