package integration

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// checkBadInput fails the test unless a run ended as bad input does: exit
// 2, one "pgtwopass: error:" line that contains want (what is wrong) and
// one "pgtwopass: hint:" line (what to do) on stderr, no panic.
func checkBadInput(t *testing.T, r procResult, args []string, want string) {
	t.Helper()
	cmdline := "pgtwopass " + strings.Join(args, " ")
	t.Logf("exit %d: %s", r.code, strings.Join(append(stderrLines(r.stderr, "pgtwopass: error:"), stderrLines(r.stderr, "pgtwopass: hint:")...), " | "))
	if r.code != 2 || r.signal != 0 {
		t.Errorf("%s: bad input exits 2, got %s", cmdline, r)
	}
	errs := stderrLines(r.stderr, "pgtwopass: error:")
	if len(errs) != 1 {
		t.Errorf("%s: bad input is reported on one 'pgtwopass: error:' line of stderr, got %d\nstderr:\n%s", cmdline, len(errs), r.stderr)
	} else if !strings.Contains(errs[0], want) {
		t.Errorf("%s: the error says what is wrong (%q), got %q", cmdline, want, errs[0])
	}
	hints := stderrLines(r.stderr, "pgtwopass: hint:")
	if len(hints) != 1 || len(strings.TrimSpace(strings.TrimPrefix(hints[0], "pgtwopass: hint:"))) < 10 {
		t.Errorf("%s: bad input comes with one 'pgtwopass: hint:' line on stderr saying what to do, got %q\nstderr:\n%s", cmdline, hints, r.stderr)
	}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("%s: bad input must not panic\nstderr:\n%s", cmdline, r.stderr)
	}
}

// serverState is what runs, or how the source was stopped, while a
// bad-input case runs.
type serverState int

const (
	allStopped  serverState = iota
	srcRunning              // the source's server runs
	srcCrashed              // the source was stopped by "immediate": not shut down cleanly
	copyRunning             // a server runs on the finished copy (DEST)
)

func (s serverState) String() string {
	return [...]string{"servers stopped", "source running", "source crash-stopped", "copy running"}[s]
}

// TestBadInput: every bad command line, bad path and bad state of SRC or
// DEST that a careless user can give is refused with exit 2, an error that
// says what is wrong and a hint that says what to do, without a panic, and
// nothing is created (a missing DEST stays missing) or changed (the tree
// hashes of SRC and of every DEST involved: contents, modes, owners and
// mtimes). A running server is never stopped.
func TestBadInput(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 0)
	other := newCluster(t, 0)
	base := pgTempDir(t)
	missing := filepath.Join(base, "missing-dest")
	empty := filepath.Join(base, "empty")
	file := filepath.Join(base, "a-file")
	foreign := filepath.Join(base, "foreign")
	link := filepath.Join(base, "src-link")
	copyDir := filepath.Join(base, "copy")
	prepared := filepath.Join(base, "prepared")
	parent := filepath.Dir(src.Dir)
	for _, d := range []string{empty, foreign} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "data.txt"), []byte("someone else's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(src.Dir, link); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "finish", "--no-stop", src.Dir, copyDir)
	mustRun(t, "prepare", src.Dir, prepared)

	// SRC unreadable: as root, run pgtwopass as nobody (root reads
	// anything); otherwise take the read permission away for the case.
	var unreadable runOpts
	var unreadableSetup func(t *testing.T) func()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("an unreadable SRC is tested as the nobody user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		unreadable.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	} else {
		unreadableSetup = func(t *testing.T) func() {
			fi, err := os.Stat(src.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(src.Dir, 0); err != nil {
				t.Fatal(err)
			}
			return func() { os.Chmod(src.Dir, fi.Mode().Perm()) }
		}
	}

	// No pg_ctl where PGTWOPASS_BINDIR points: finish and sync, which must
	// stop or start the server, refuse before they create DEST.
	noPgCtl := runOpts{env: []string{"PGTWOPASS_BINDIR=" + empty}}

	type badInput struct {
		name  string
		state serverState
		args  []string
		want  string   // what the error line says is wrong
		watch []string // paths that must not change, or must stay absent
		opts  runOpts  // working directory, OS user
		setup func(t *testing.T) (undo func())
	}
	cases := []badInput{
		// SRC.
		{name: "missing SRC", args: []string{"prepare", filepath.Join(base, "no-such-src"), missing}, want: "does not exist", watch: []string{missing}},
		{name: "empty SRC argument", args: []string{"prepare", "", missing}, want: "missing SRC or DEST", watch: []string{missing}},
		{name: "SRC not a data directory", args: []string{"prepare", empty, missing}, want: "not a PostgreSQL data directory", watch: []string{empty, missing}},
		{name: "SRC the parent of the data directory", args: []string{"prepare", parent, missing}, want: "not a PostgreSQL data directory", watch: []string{missing}},
		{name: "SRC a regular file", args: []string{"prepare", file, missing}, want: "is not a directory", watch: []string{file, missing}},
		{name: "SRC unreadable", args: []string{"prepare", src.Dir, missing}, want: "permission denied", watch: []string{missing}, opts: unreadable, setup: unreadableSetup},
		{name: "SRC an unsealed copy", args: []string{"prepare", prepared, missing}, want: "global/pg_control is missing", watch: []string{prepared, missing}},
		{name: "SRC and DEST swapped", args: []string{"prepare", copyDir, src.Dir}, want: "is not empty and is not a pgtwopass copy", watch: []string{copyDir}},
		{name: "SRC and DEST swapped, finish", args: []string{"finish", "--no-stop", copyDir, src.Dir}, want: "is not empty and is not a pgtwopass copy", watch: []string{copyDir}},

		// DEST against SRC.
		{name: "DEST is SRC", args: []string{"prepare", src.Dir, src.Dir}, want: "is SRC itself"},
		{name: "DEST is SRC through a symlink", args: []string{"prepare", src.Dir, link}, want: "is SRC itself", watch: []string{link}},
		{name: "DEST is SRC with a trailing slash", args: []string{"finish", "--no-stop", src.Dir, src.Dir + "/"}, want: "is SRC itself"},
		{name: "DEST is SRC as a relative path", args: []string{"prepare", src.Dir, "./" + filepath.Base(src.Dir) + "/"}, want: "is SRC itself", opts: runOpts{dir: parent}},
		{name: "DEST inside SRC", args: []string{"prepare", src.Dir, filepath.Join(src.Dir, "copy")}, want: "is inside SRC"},
		{name: "DEST inside SRC, finish", args: []string{"finish", "--no-stop", src.Dir, filepath.Join(src.Dir, "base", "copy")}, want: "is inside SRC"},
		{name: "DEST inside SRC, relative from within SRC", args: []string{"prepare", ".", "copy"}, want: "is inside SRC", opts: runOpts{dir: src.Dir}},
		{name: "DEST inside SRC through a symlink", args: []string{"sync", "--no-stop", src.Dir, filepath.Join(link, "copy")}, want: "is inside SRC"},
		{name: "SRC inside DEST", args: []string{"prepare", src.Dir, parent}, want: "is inside DEST", watch: []string{parent}},
		{name: "DEST is /", args: []string{"finish", "--no-stop", src.Dir, "/"}, want: "is inside DEST"},

		// DEST's contents.
		{name: "DEST a regular file", args: []string{"prepare", src.Dir, file}, want: "is not a directory", watch: []string{file}},
		{name: "DEST non-empty and foreign", args: []string{"prepare", src.Dir, foreign}, want: "is not empty and is not a pgtwopass copy", watch: []string{foreign}},
		{name: "DEST non-empty and foreign, sync", args: []string{"sync", "--no-stop", src.Dir, foreign}, want: "is not empty and is not a pgtwopass copy", watch: []string{foreign}},
		{name: "DEST a copy of another cluster", args: []string{"prepare", other.Dir, copyDir}, want: "is a copy of another cluster", watch: []string{copyDir, other.Dir}},
		{name: "DEST a copy of another cluster, finish", args: []string{"finish", "--no-stop", other.Dir, copyDir}, want: "is a copy of another cluster", watch: []string{copyDir, other.Dir}},
		{name: "DEST a copy made with another block size", args: []string{"prepare", "--block-size", "16384", src.Dir, copyDir}, want: "block size 8192, not 16384", watch: []string{copyDir}},

		// Flags.
		{name: "unknown flag", args: []string{"prepare", "--no-such-flag", src.Dir, missing}, want: "prepare does not take --no-such-flag", watch: []string{missing}},
		{name: "unknown command", args: []string{"copy", src.Dir, missing}, want: `unknown command "copy"`, watch: []string{missing}},
		{name: "block size 0", args: []string{"prepare", "--block-size", "0", src.Dir, missing}, want: "invalid block size 0", watch: []string{missing}},
		{name: "block size 1000", args: []string{"prepare", "--block-size", "1000", src.Dir, missing}, want: "invalid block size 1000", watch: []string{missing}},
		{name: "block size 3000", args: []string{"prepare", "--block-size", "3000", src.Dir, missing}, want: "invalid block size 3000", watch: []string{missing}},
		{name: "block size 1 GiB", args: []string{"prepare", "--block-size", "1073741824", src.Dir, missing}, want: "invalid block size 1073741824", watch: []string{missing}},
		{name: "block size -1", args: []string{"prepare", "--block-size", "-1", src.Dir, missing}, want: "invalid block size -1", watch: []string{missing}},
		{name: "block size abc", args: []string{"prepare", "--block-size", "abc", src.Dir, missing}, want: `invalid --block-size "abc"`, watch: []string{missing}},
		{name: "block size 1000, finish", args: []string{"finish", "--no-stop", "--block-size", "1000", src.Dir, missing}, want: "invalid block size 1000", watch: []string{missing}},
		{name: "jobs 0", args: []string{"prepare", "--jobs", "0", src.Dir, missing}, want: "invalid --jobs 0", watch: []string{missing}},
		{name: "jobs -1", args: []string{"prepare", "--jobs", "-1", src.Dir, missing}, want: "invalid --jobs -1", watch: []string{missing}},
		{name: "jobs -1, sync", args: []string{"sync", "--no-stop", "-j", "-1", src.Dir, missing}, want: "invalid --jobs -1", watch: []string{missing}},
		{name: "jobs abc", args: []string{"finish", "--no-stop", "--jobs", "abc", src.Dir, missing}, want: `invalid --jobs "abc"`, watch: []string{missing}},
		{name: "--no-stop with --stop-command", args: []string{"finish", "--no-stop", "--stop-command", "true", src.Dir, missing}, want: "--no-stop conflicts with --stop-command", watch: []string{missing}},
		{name: "--no-stop with --systemd-unit", args: []string{"sync", "--no-stop", "--systemd-unit", "postgresql", src.Dir, missing}, want: "--no-stop conflicts with", watch: []string{missing}},
		{name: "--systemd-unit with --stop-command", args: []string{"finish", "--systemd-unit", "postgresql", "--stop-command", "true", src.Dir, missing}, want: "--systemd-unit conflicts with", watch: []string{missing}},
		{name: "--restart with --stop-command only", args: []string{"finish", "--restart", "--stop-command", "true", src.Dir, missing}, want: "needs --start-command", watch: []string{missing}},
		{name: "bad --log-format", args: []string{"prepare", "--log-format", "xml", src.Dir, missing}, want: "--log-format must be console or json", watch: []string{missing}},
		{name: "bad --max-downtime", args: []string{"finish", "--max-downtime", "soon", src.Dir, missing}, want: `invalid --max-downtime "soon"`, watch: []string{missing}},
		{name: "negative --max-downtime", args: []string{"finish", "--max-downtime", "-5s", src.Dir, missing}, want: "invalid --max-downtime -5s", watch: []string{missing}},
		{name: "--max-passes 0", args: []string{"prepare", "--max-passes", "0", src.Dir, missing}, want: "invalid --max-passes 0", watch: []string{missing}},
		{name: "bad --cold-pass", args: []string{"finish", "--no-stop", "--cold-pass", "fast", src.Dir, missing}, want: `--cold-pass must be checksum, quick or wal, not "fast"`, watch: []string{missing}},
		{name: "--tablespace-map without =", args: []string{"prepare", "--tablespace-map", "/srv/ts1", src.Dir, missing}, want: "invalid --tablespace-map", watch: []string{missing}},
		{name: "--tablespace-map with relative paths", args: []string{"prepare", "--tablespace-map", "ts1=ts2", src.Dir, missing}, want: "both directories must be absolute", watch: []string{missing}},
		{name: "--exclude with an absolute path", args: []string{"prepare", "--exclude", "/abs/*", src.Dir, missing}, want: "invalid --exclude pattern", watch: []string{missing}},
		{name: "--exclude not a glob", args: []string{"prepare", "--exclude", "log/[", src.Dir, missing}, want: "invalid --exclude pattern", watch: []string{missing}},
		{name: "--progress with --no-progress", args: []string{"prepare", "--progress", "--no-progress", src.Dir, missing}, want: "--progress and --no-progress contradict each other", watch: []string{missing}},
		{name: "--progress with --no-progress, finish", args: []string{"finish", "--no-stop", "--progress", "--no-progress", src.Dir, missing}, want: "--progress and --no-progress contradict each other", watch: []string{missing}},
		{name: "--metrics-file in a missing directory", args: []string{"prepare", "--metrics-file", filepath.Join(base, "no-such-dir", "m.prom"), src.Dir, missing}, want: "invalid --metrics-file", watch: []string{missing}},
		{name: "bad --bwlimit", args: []string{"prepare", "--bwlimit", "fast", src.Dir, "h:" + missing}, want: "invalid --bwlimit", watch: []string{missing}},
		{name: "DEST on another host with a relative path", args: []string{"prepare", src.Dir, "h:relative"}, want: "must be absolute"},

		// Arguments.
		{name: "prepare without arguments", args: []string{"prepare"}, want: "needs two arguments"},
		{name: "prepare with one argument", args: []string{"prepare", src.Dir}, want: "needs two arguments"},
		{name: "finish with three arguments", args: []string{"finish", "--no-stop", src.Dir, missing, empty}, want: "needs two arguments", watch: []string{missing, empty}},
		{name: "verify with one argument", args: []string{"verify", src.Dir}, want: "needs two arguments"},
		{name: "verify --manifest-only with two arguments", args: []string{"verify", "--manifest-only", src.Dir, copyDir}, want: "needs one argument", watch: []string{copyDir}},
		{name: "status without DEST", args: []string{"status"}, want: "needs one argument"},

		// Commands on what is not a copy.
		{name: "status of a directory that is no copy", args: []string{"status", foreign}, want: "has no pgtwopass manifest", watch: []string{foreign}},
		{name: "status of SRC", args: []string{"status", src.Dir}, want: "has no pgtwopass manifest"},
		{name: "status of a missing path", args: []string{"status", missing}, want: "has no pgtwopass manifest", watch: []string{missing}},
		{name: "verify --manifest-only of a directory that is no copy", args: []string{"verify", "--manifest-only", foreign}, want: "has no pgtwopass manifest", watch: []string{foreign}},
		{name: "verify against a directory that is no copy", args: []string{"verify", src.Dir, foreign}, want: "neither a pgtwopass copy nor a data directory", watch: []string{foreign}},
		{name: "verify against a missing DEST", args: []string{"verify", src.Dir, missing}, want: "is not a directory", watch: []string{missing}},

		// The source's server runs: it must keep running.
		{name: "finish --no-stop while SRC runs", state: srcRunning, args: []string{"finish", "--no-stop", src.Dir, missing}, want: "is running and --no-stop was given", watch: []string{missing}},
		{name: "sync --no-stop while SRC runs", state: srcRunning, args: []string{"sync", "--no-stop", src.Dir, missing}, want: "is running and --no-stop was given", watch: []string{missing}},
		{name: "finish --no-stop into a copy while SRC runs", state: srcRunning, args: []string{"finish", "--no-stop", src.Dir, copyDir}, want: "is running and --no-stop was given", watch: []string{copyDir}},
		{name: "verify while SRC runs", state: srcRunning, args: []string{"verify", src.Dir, copyDir}, want: "the server on SRC is running", watch: []string{copyDir}},
		{name: "finish while SRC runs, no pg_ctl of its version", state: srcRunning, opts: noPgCtl, args: []string{"finish", src.Dir, missing}, want: "has no pg_ctl", watch: []string{missing}},
		{name: "sync --restart, no pg_ctl of its version", opts: noPgCtl, args: []string{"sync", "--restart", src.Dir, missing}, want: "has no pg_ctl", watch: []string{missing}},

		// The source was not shut down cleanly (kill -9 of the postmaster,
		// a power loss, pg_ctl stop -m immediate).
		{name: "finish --no-stop of a crash-stopped SRC", state: srcCrashed, args: []string{"finish", "--no-stop", src.Dir, missing}, want: "was not shut down cleanly", watch: []string{missing}},
		{name: "finish of a crash-stopped SRC into a copy", state: srcCrashed, args: []string{"finish", src.Dir, copyDir}, want: "was not shut down cleanly", watch: []string{copyDir}},
		{name: "sync of a crash-stopped SRC", state: srcCrashed, args: []string{"sync", "--restart", src.Dir, missing}, want: "was not shut down cleanly", watch: []string{missing}},

		// A server runs on the copy: it must keep running.
		{name: "DEST's own server running, prepare", state: copyRunning, args: []string{"prepare", src.Dir, copyDir}, want: "is running on DEST", watch: []string{filepath.Join(copyDir, ".pgtwopass")}},
		{name: "DEST's own server running, finish", state: copyRunning, args: []string{"finish", "--no-stop", src.Dir, copyDir}, want: "is running on DEST", watch: []string{filepath.Join(copyDir, ".pgtwopass")}},
	}

	cp := openCopy(t, copyDir)
	enter := map[serverState]func(){
		allStopped: func() {},
		srcRunning: func() { startCluster(t, src) },
		srcCrashed: func() {
			startCluster(t, src)
			execSQL(t, src, "CREATE TABLE after_checkpoint AS SELECT 1 AS x")
			if err := src.Stop(ctxFor(t, time.Minute), "immediate"); err != nil {
				t.Fatalf("stop the source with -m immediate: %v", err)
			}
		},
		copyRunning: func() {
			// A clean shutdown of the source first: the crash-stopped state
			// ends here.
			startCluster(t, src)
			stopCluster(t, src)
			if err := cp.Start(ctxFor(t, 3*time.Minute)); err != nil {
				t.Fatalf("start the finished copy: %v", err)
			}
		},
	}
	for _, state := range []serverState{allStopped, srcRunning, srcCrashed, copyRunning} {
		enter[state]()
		// Hashes of what must not change; SRC is hashed while it is stopped.
		want := map[string]string{}
		for _, tc := range cases {
			if tc.state != state {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				watch := tc.watch
				if state != srcRunning {
					watch = append([]string{src.Dir}, watch...)
				}
				for _, p := range watch {
					if _, ok := want[p]; !ok {
						want[p] = hashTree(t, p)
					}
				}
				undo := func() {}
				if tc.setup != nil {
					undo = tc.setup(t)
				}
				r := runWith(t, tc.opts, tc.args...)
				undo()
				checkBadInput(t, r, tc.args, tc.want)
				for _, p := range watch {
					if got := hashTree(t, p); got != want[p] {
						if want[p] == "absent" {
							t.Errorf("bad input (%s) creates nothing, but %s now exists", tc.name, p)
							os.RemoveAll(p)
							continue
						}
						t.Errorf("bad input (%s) changes nothing, but the tree hash of %s changed (%s, then %s)", tc.name, p, short(want[p]), short(got))
						want[p] = got
					}
				}
				switch state {
				case srcRunning:
					if !src.Running() {
						t.Fatalf("%s: refusing bad input never stops the source's server, but it is down", tc.name)
					}
				case copyRunning:
					if !cp.Running() {
						t.Fatalf("%s: refusing bad input never stops the copy's server, but it is down", tc.name)
					}
				}
			})
		}
		switch state {
		case srcRunning:
			if s := query(t, src, "SELECT 1"); s != "1" {
				t.Errorf("after the refusals the source's server still answers: %q", s)
			}
			stopCluster(t, src)
		case copyRunning:
			if err := cp.Stop(ctxFor(t, time.Minute), "fast"); err != nil {
				t.Errorf("stop the copy: %v", err)
			}
		}
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
