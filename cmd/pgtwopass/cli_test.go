package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kballard/go-shellquote"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/urfave/cli/v2"
)

// The CLI's behaviour that needs no PostgreSQL is tested two ways: scripts
// in testdata/*.txtar run the binary as a user would (testscript, as
// filippo.io/age does), and the tests below check properties of every
// command, derived from the definitions, so that a new flag or command is
// checked without a test of its own.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"pgtwopass": main})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitCode,
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("JOURNAL_STREAM", "")
			return nil
		},
	})
}

// cmdExitCode is "exitcode N PROGRAM ARGS...": runs PROGRAM and requires
// exit status N; stdout and stderr are kept for the next commands.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exitcode: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args[1:], " "), got, want, ts.ReadFile("stdout"), ts.ReadFile("stderr"))
	}
}

// runCLI runs a command line in-process and returns stdout, stderr and
// the exit status.
func runCLI(args ...string) (string, string, int) {
	var o, e bytes.Buffer
	code := run(context.Background(), append([]string{"pgtwopass"}, args...), &o, &e)
	return o.String(), e.String(), code
}

// parseOnly parses a command line with the command's parse, without
// running it, and returns the options or the error.
func parseOnly(t *testing.T, args ...string) (any, error) {
	t.Helper()
	cmds := commands()
	var got any
	var perr error
	for _, c := range cmds {
		c.Action = func(ctx *cli.Context) error {
			got, perr = c.parse(ctx)
			return perr
		}
	}
	var o, e bytes.Buffer
	full, err := reorder(cmds, append([]string{"pgtwopass"}, args...))
	if err != nil {
		return nil, err
	}
	if err := newApp(cmds, &o, &e).RunContext(context.Background(), full); err != nil {
		return nil, err
	}
	return got, perr
}

// TestHelpProperties: the help of pgtwopass and of each command fits in 80
// columns, has examples, lists the exit statuses the command can return,
// and gives each option at most one default.
func TestHelpProperties(t *testing.T) {
	check := func(t *testing.T, args []string, exits []int) string {
		out, errOut, code := runCLI(args...)
		if code != 0 || errOut != "" {
			t.Fatalf("pgtwopass %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		for i, l := range strings.Split(out, "\n") {
			if width(l) > helpWidth {
				t.Errorf("line %d is %d columns wide, more than %d: %q", i+1, width(l), helpWidth, l)
			}
		}
		if !regexp.MustCompile(`(?m)^EXAMPLES:\n(   # .*\n)+   pgtwopass `).MatchString(out) {
			t.Errorf("the help has an EXAMPLES section, a comment then a command line:\n%s", out)
		}
		var listed []int
		_, section, _ := strings.Cut(out, "EXIT STATUS:\n")
		for _, m := range regexp.MustCompile(`(?m)^   (\d)  `).FindAllStringSubmatch(section, -1) {
			n, _ := strconv.Atoi(m[1])
			listed = append(listed, n)
		}
		if !slices.Equal(listed, exits) {
			t.Errorf("EXIT STATUS lists %v, want the statuses the command can return, %v:\n%s", listed, exits, section)
		}
		if n := strings.Count(out, "(default:"); n > 0 {
			for _, entry := range regexp.MustCompile(`(?m)^   (-.|    -)`).Split(out, -1) {
				if strings.Count(entry, "(default:") > 1 {
					t.Errorf("an option has one default: %q", entry)
				}
			}
		}
		return out
	}
	t.Run("pgtwopass", func(t *testing.T) {
		out := check(t, []string{"--help"}, allExits())
		for _, c := range visible(commands()) {
			if !regexp.MustCompile(`(?m)^   ` + c.Name + ` +\S`).MatchString(out) {
				t.Errorf("the help lists the command %s:\n%s", c.Name, out)
			}
		}
	})
	for _, c := range commands() {
		t.Run(c.Name, func(t *testing.T) {
			out := check(t, []string{c.Name, "--help"}, c.exits)
			// Every option of the command, and nothing else.
			var want []string
			for _, f := range append(slices.Clone(c.Flags), cli.HelpFlag) {
				want = append(want, "--"+docOf(f).long[0])
			}
			var got []string
			for _, m := range regexp.MustCompile(`(?m)^   (?:-., |    )(--[a-z0-9-]+)`).FindAllStringSubmatch(out, -1) {
				got = append(got, m[1])
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("the help lists the options %v, want those of the command %v", got, want)
			}
		})
	}
}

// TestExitStatuses: every command lists 0, 1 and 2; 3 (the downtime
// budget) only the commands that take --max-downtime; 4 (differences)
// only verify.
func TestExitStatuses(t *testing.T) {
	for _, c := range commands() {
		want := []int{exitOK, exitFailure, exitBadInput}
		if lookupFlag(c.Flags, "max-downtime") != nil {
			want = append(want, exitBudget)
		}
		if c.Name == "verify" {
			want = append(want, exitDifferences)
		}
		if !slices.Equal(c.exits, want) {
			t.Errorf("%s lists the exit statuses %v, want %v", c.Name, c.exits, want)
		}
	}
}

// TestFlagDocs: a flag's Usage never states its default (the help adds
// the one default, from Value or DefaultText); a flag that takes a value
// names it; and a value's placeholder is upper case or its choices.
func TestFlagDocs(t *testing.T) {
	for _, c := range commands() {
		for _, f := range c.Flags {
			d := docOf(f)
			name := c.Name + " --" + d.long[0]
			if strings.Contains(strings.ToLower(d.usage), "(default") {
				t.Errorf("%s: the Usage says no default (%q): set Value or DefaultText", name, d.usage)
			}
			if takesValue(f) && !regexp.MustCompile(`^([A-Z][A-Z0-9=_]*|[a-z]+(\|[a-z]+)+)$`).MatchString(d.placeholder) {
				t.Errorf("%s takes a value: its Usage names it in backquotes (`N`), got placeholder %q", name, d.placeholder)
			}
			if strings.Count(d.text(), "(default:") > 1 {
				t.Errorf("%s has one default: %q", name, d.text())
			}
		}
	}
}

// sampleValues are values of flags that need a particular form; other
// flags get one by their type (flagSample).
var sampleValues = map[string]string{
	"bwlimit":        "50M",
	"tablespace-map": "/srv/ts1=/mnt/ts1",
	"tablespace":     "16384=/srv/ts1",
	"exclude":        "log/*",
	"block-size":     "16384",
}

func flagSample(f cli.Flag) string {
	name := docOf(f).long[0]
	if v, ok := sampleValues[name]; ok {
		return v
	}
	switch f := f.(type) {
	case *choiceFlag:
		for _, c := range f.Choices {
			if c != f.Value {
				return c
			}
		}
	case *cli.IntFlag:
		return "3"
	case *cli.DurationFlag:
		return "7s"
	}
	return "/tmp/sample"
}

// argSamples are the command lines of a command's arguments, one per
// alternative of its ArgsUsage ("SRC DEST | --manifest-only DEST").
func argSamples(c *command) [][]string {
	values := map[string]string{"SRC": "/tmp/src", "DEST": "/tmp/dest", "PATH": "/tmp/path", "DIR": "/tmp/dir", "SHELL": "bash"}
	var out [][]string
	for _, alt := range strings.Split(c.ArgsUsage, "|") {
		var args []string
		for _, w := range strings.Fields(alt) {
			if v, ok := values[w]; ok {
				w = v
			}
			args = append(args, w)
		}
		out = append(out, args)
	}
	return out
}

// TestEveryFlagIsUsed: each flag a command offers changes what the command
// does, as its parse says: with the flag the options differ, or the
// command line is refused. A flag offered but never read (status
// --compress) fails this test.
func TestEveryFlagIsUsed(t *testing.T) {
	for _, c := range commands() {
		for _, f := range c.Flags {
			name := docOf(f).long[0]
			t.Run(c.Name+"/"+name, func(t *testing.T) {
				opt := "--" + name
				if takesValue(f) {
					opt += "=" + flagSample(f)
				}
				for _, args := range argSamples(c) {
					base, baseErr := parseOnly(t, append([]string{c.Name}, args...)...)
					with, withErr := parseOnly(t, append([]string{c.Name, opt}, args...)...)
					if withErr != nil && baseErr == nil || !reflect.DeepEqual(base, with) {
						return
					}
				}
				t.Errorf("pgtwopass %s %s changes nothing in what the command does: drop the flag from the command, or read it in its parse", c.Name, opt)
			})
		}
	}
}

// TestExamplesParse: the command line of every example is one the
// command accepts.
func TestExamplesParse(t *testing.T) {
	all := map[string][]example{"pgtwopass": appExamples}
	for _, c := range commands() {
		all[c.Name] = c.examples
	}
	for name, examples := range all {
		for _, e := range examples {
			words, err := shellquote.Split(e.line)
			if err != nil {
				t.Fatalf("%s: example %q: %v", name, e.line, err)
			}
			if i := slices.IndexFunc(words, func(w string) bool { return w == ">" || w == "|" }); i >= 0 {
				words = words[:i]
			}
			if len(words) < 2 || words[0] != "pgtwopass" || name != "pgtwopass" && words[1] != name {
				t.Errorf("an example of %s runs pgtwopass %s: %q", name, name, e.line)
				continue
			}
			if _, err := parseOnly(t, words[1:]...); err != nil {
				t.Errorf("example of %s does not parse: %q: %v", name, e.line, err)
			}
			if strings.TrimSpace(e.comment) == "" || strings.Contains(e.comment, "\n") {
				t.Errorf("an example of %s has a comment of one line: %q", name, e.line)
			}
		}
	}
}

// TestReorder: options after the arguments, values taken with them, "--",
// and --help.
func TestReorder(t *testing.T) {
	cmds := commands()
	for _, tc := range []struct {
		in, want string
	}{
		{"prepare SRC DEST --jobs 2", "prepare --jobs 2 -- SRC DEST"},
		{"prepare --jobs 2 SRC DEST", "prepare --jobs 2 -- SRC DEST"},
		{"prepare SRC --jobs=2 DEST -n", "prepare --jobs=2 -n -- SRC DEST"},
		{"prepare SRC -T /a=/b DEST", "prepare -T /a=/b -- SRC DEST"},
		{"prepare -v SRC DEST -- --weird", "prepare -v -- SRC DEST --weird"},
		{"prepare -- -src DEST", "prepare -- -src DEST"},
		{"prepare - DEST", "prepare -- - DEST"},
		{"sync SRC host:/x -e 'ssh -p 2' --restart", "sync -e 'ssh -p 2' --restart -- SRC host:/x"},
		{"prepare SRC DEST --help", "prepare --help"},
		{"prepare SRC DEST --bogus 1", "prepare --bogus -- SRC DEST 1"},
		{"--version", "--version"},
		{"-v prepare SRC DEST", "-v prepare -- SRC DEST"}, // and -v is refused
		{"nosuch SRC --jobs 2", "nosuch SRC --jobs 2"},
		{"status", "status"},
	} {
		in, _ := shellquote.Split(tc.in)
		got, err := reorder(cmds, append([]string{"pgtwopass"}, in...))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if g := shellquote.Join(got[1:]...); g != shellquote.Join(mustSplit(tc.want)...) {
			t.Errorf("reorder(%s) = %s, want %s", tc.in, g, tc.want)
		}
	}
	if _, err := reorder(cmds, []string{"pgtwopass", "prepare", "SRC", "DEST", "--jobs"}); err == nil || exitCode(err) != exitBadInput {
		t.Errorf("an option without its value at the end is bad usage: %v", err)
	}
}

func mustSplit(s string) []string {
	w, err := shellquote.Split(s)
	if err != nil {
		panic(err)
	}
	return w
}

// TestOptionsAfterArguments: the options after SRC and DEST take effect.
func TestOptionsAfterArguments(t *testing.T) {
	got, err := parseOnly(t, "prepare", "/srv/main", "/mnt/copy", "--jobs", "2", "-n", "--exclude", "log/*", "--log-format=json")
	if err != nil {
		t.Fatal(err)
	}
	o := got.(runOptions)
	if o.Pass.Source != "/srv/main" || o.Pass.Dest != "/mnt/copy" || o.Pass.Jobs != 2 || !o.Pass.DryRun ||
		!slices.Equal(o.Pass.Excludes, []string{"log/*"}) || o.Output.LogFormat != "json" {
		t.Errorf("options after the arguments: %+v", o)
	}
}

// TestVersionInfo: the version and commit from the linker flags win; else
// go install's module version and the VCS stamp.
func TestVersionInfo(t *testing.T) {
	info := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}}
	if b := (buildInfo{}).from(info); b.Version != "1.2.3" || b.Commit != "abc123-dirty" {
		t.Errorf("go install pgtwopass@v1.2.3: %+v", b)
	}
	if b := (buildInfo{Version: "1.3.0-2-gdef", Commit: "def"}).from(info); b.Version != "1.3.0-2-gdef" || b.Commit != "def" {
		t.Errorf("the linker flags win: %+v", b)
	}
	if b := (buildInfo{}).from(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}); b.Version != "" {
		t.Errorf("a local build has no module version: %+v", b)
	}
	s := buildInfo{Version: "1.2.3", Commit: "abc", GoVersion: "go1.26.8", Platform: "linux/amd64"}.String()
	if s != "pgtwopass 1.2.3 (commit abc, go1.26.8 linux/amd64)" {
		t.Errorf("--version prints %q", s)
	}
}

// TestManPages: a page for pgtwopass and for each command, that groff
// formats without a warning, with the same sections as the help.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := runCLI("man", dir); code != 0 {
		t.Fatalf("pgtwopass man: %d %s", code, errOut)
	}
	want := []string{"pgtwopass.1"}
	for _, c := range visible(commands()) {
		want = append(want, "pgtwopass-"+c.Name+".1")
	}
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("man pages %v, want %v", got, want)
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed: the pages were not formatted")
	}
	for _, name := range got {
		path := filepath.Join(dir, name)
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", path)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil || e.Len() > 0 {
			t.Errorf("groff -man -ww %s: %v\n%s", name, err, e.String())
		}
		text := regexp.MustCompile(".\b").ReplaceAllString(o.String(), "")
		for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "EXIT STATUS", "SEE ALSO"} {
			if !regexp.MustCompile(`(?m)^` + section + `$`).MatchString(text) {
				t.Errorf("%s has a section %s:\n%s", name, section, text)
			}
		}
	}
}

// TestCompletionProtocol: what bash and zsh get for what was typed.
func TestCompletionProtocol(t *testing.T) {
	t.Setenv("_CLI_ZSH_AUTOCOMPLETE_HACK", "")
	ask := func(words ...string) []string {
		out, _, code := runCLI(append(words, completionFlag)...)
		if code != 0 {
			t.Fatalf("%v: exit %d", words, code)
		}
		return strings.Fields(out)
	}
	var names []string
	for _, c := range visible(commands()) {
		names = append(names, c.Name)
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{""}, names},
		{[]string{"pre"}, names}, // the shell picks
		{[]string{"--v"}, []string{"--version"}},
		{[]string{"prepare", "--jo"}, []string{"--jobs"}},
		{[]string{"prepare", "-j"}, []string{"-j"}},
		{[]string{"status", "--"}, []string{"--json", "--rsh", "--remote-path", "--help"}},
		{[]string{"finish", "--cold-pass", ""}, []string{"checksum", "quick", "wal"}},
		{[]string{"finish", "--cold-pass", "q"}, []string{"checksum", "quick", "wal"}},
		{[]string{"finish", "/src", "--log-format", "=", ""}, []string{"console", "json"}},
		{[]string{"finish", "--jobs", ""}, nil},                                 // a number: nothing to offer
		{[]string{"prepare", "/src", ""}, nil},                                  // DEST: files
		{[]string{"prepare", "--json", "--js"}, nil},                            // given already
		{[]string{"prepare", "--exclude", "a", "--exc"}, []string{"--exclude"}}, // repeatable
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"completion", "bash", ""}, nil},
		{[]string{"nosuch", "--"}, nil},
		{[]string{"prepare", "--", "--"}, nil}, // arguments only
	} {
		if got := ask(tc.words...); !slices.Equal(got, tc.want) {
			t.Errorf("completion of %q: %q, want %q", tc.words, got, tc.want)
		}
	}
	t.Setenv("_CLI_ZSH_AUTOCOMPLETE_HACK", "1")
	out, _, _ := runCLI("prepare", "--jo", completionFlag)
	if !strings.HasPrefix(out, "--jobs:N workers that read, hash and write\n") {
		t.Errorf("zsh gets a description with each candidate: %q", out)
	}
}

// TestFishCompletion: the script completes every command and option, and
// fish reads it without an error (when fish is installed).
func TestFishCompletion(t *testing.T) {
	out, _, code := runCLI("completion", "fish")
	if code != 0 {
		t.Fatal(code)
	}
	for _, c := range visible(commands()) {
		if !strings.Contains(out, "-a "+c.Name+" ") {
			t.Errorf("fish completes the command %s", c.Name)
		}
		for _, f := range c.Flags {
			if !strings.Contains(out, fmt.Sprintf("'__fish_seen_subcommand_from %s'%s -l %s ", c.Name, shortOpts(f), docOf(f).long[0])) {
				t.Errorf("fish completes %s --%s", c.Name, docOf(f).long[0])
			}
		}
	}
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("fish not installed: the script was not loaded")
	}
	path := filepath.Join(t.TempDir(), "pgtwopass.fish")
	os.WriteFile(path, []byte(out), 0o644)
	if b, err := exec.Command(fish, "--no-execute", path).CombinedOutput(); err != nil {
		t.Errorf("fish --no-execute: %v\n%s", err, b)
	}
}

func shortOpts(f cli.Flag) string {
	s := ""
	for _, n := range docOf(f).short {
		s += " -s " + n
	}
	return s
}

// TestShellScripts: bash and zsh read their completion scripts without a
// syntax error (when installed; completion.txtar runs the bash one).
func TestShellScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			t.Logf("%s not installed: its script was not checked", shell)
			continue
		}
		out, _, code := runCLI("completion", shell)
		if code != 0 {
			t.Fatal(code)
		}
		file := filepath.Join(t.TempDir(), "pgtwopass."+shell)
		os.WriteFile(file, []byte(out), 0o644)
		if b, err := exec.Command(path, "-n", file).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, b)
		}
	}
}
