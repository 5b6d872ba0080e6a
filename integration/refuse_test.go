package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkBadInput fails the test unless a run ended as bad input does: exit
// 2, one "pgtwopass: error:" line and one "pgtwopass: hint:" line on
// stderr, no panic.
func checkBadInput(t *testing.T, stdout, stderr string, code int, args []string) {
	t.Helper()
	cmdline := "pgtwopass " + strings.Join(args, " ")
	if code != 2 {
		t.Errorf("%s: exit %d, want 2 (bad input)\nstdout:\n%s\nstderr:\n%s", cmdline, code, stdout, stderr)
	}
	if n := len(stderrLines(stderr, "pgtwopass: error:")); n != 1 {
		t.Errorf("%s: bad input is reported on one 'pgtwopass: error:' line of stderr, got %d\nstderr:\n%s", cmdline, n, stderr)
	}
	if n := len(stderrLines(stderr, "pgtwopass: hint:")); n != 1 {
		t.Errorf("%s: bad input comes with one 'pgtwopass: hint:' line on stderr, got %d\nstderr:\n%s", cmdline, n, stderr)
	}
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine") {
		t.Errorf("%s: bad input must not panic\nstderr:\n%s", cmdline, stderr)
	}
}

// TestRefusesForeignDest: pgtwopass overwrites only a copy of the same
// cluster, and refuses a non-empty directory it did not make.
func TestRefusesForeignDest(t *testing.T) {
	t.Parallel()
	a := newCluster(t, 0)
	b := newCluster(t, 0)
	base := t.TempDir()

	t.Run("copy of another cluster", func(t *testing.T) {
		dest := filepath.Join(base, "copy-of-a")
		mustRun(t, "prepare", a.Dir, dest)
		before := hashTree(t, dest)
		args := []string{"prepare", b.Dir, dest}
		stdout, stderr, code := run(t, args...)
		checkBadInput(t, stdout, stderr, code, args)
		if !strings.Contains(stderr, "another cluster") {
			t.Errorf("refusing a copy of another cluster names it: stderr lacks %q\n%s", "another cluster", stderr)
		}
		if after := hashTree(t, dest); after != before {
			t.Errorf("a copy of another cluster is left untouched: its tree hash changed")
		}
		// finish must refuse it just the same.
		args = []string{"finish", "--no-stop", b.Dir, dest}
		stdout, stderr, code = run(t, args...)
		checkBadInput(t, stdout, stderr, code, args)
		if after := hashTree(t, dest); after != before {
			t.Errorf("finish leaves a copy of another cluster untouched: its tree hash changed")
		}
	})

	t.Run("non-empty directory without .pgtwopass", func(t *testing.T) {
		dest := filepath.Join(base, "foreign")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dest, "precious.txt"), []byte("keep me\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := hashTree(t, dest)
		args := []string{"prepare", a.Dir, dest}
		stdout, stderr, code := run(t, args...)
		checkBadInput(t, stdout, stderr, code, args)
		if after := hashTree(t, dest); after != before {
			t.Errorf("a non-empty foreign DEST is left untouched: its tree hash changed")
		}
	})
}

// TestBadInput: every bad command line or bad path is refused with exit 2,
// an error and a hint, and nothing is created or changed.
func TestBadInput(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 0)
	base := t.TempDir()
	missing := filepath.Join(base, "missing-dest")
	empty := filepath.Join(base, "empty")
	file := filepath.Join(base, "a-file")
	foreign := filepath.Join(base, "foreign")
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
	parent := filepath.Dir(src.Dir)

	cases := []struct {
		name  string
		args  []string
		watch []string // paths whose tree must not change (or must stay absent)
	}{
		{"missing SRC", []string{"prepare", filepath.Join(base, "no-such-src"), missing}, []string{missing}},
		{"SRC not a data directory", []string{"prepare", empty, missing}, []string{empty, missing}},
		{"SRC a regular file", []string{"prepare", file, missing}, []string{file, missing}},
		{"DEST is SRC", []string{"prepare", src.Dir, src.Dir}, []string{src.Dir}},
		{"DEST inside SRC", []string{"prepare", src.Dir, filepath.Join(src.Dir, "copy")}, []string{src.Dir}},
		{"DEST inside SRC, finish", []string{"finish", "--no-stop", src.Dir, filepath.Join(src.Dir, "base", "copy")}, []string{src.Dir}},
		{"SRC inside DEST", []string{"prepare", src.Dir, parent}, []string{parent}},
		{"DEST a regular file", []string{"prepare", src.Dir, file}, []string{file, src.Dir}},
		{"DEST non-empty and foreign", []string{"prepare", src.Dir, foreign}, []string{foreign, src.Dir}},
		{"DEST non-empty and foreign, sync", []string{"sync", "--no-stop", src.Dir, foreign}, []string{foreign, src.Dir}},
		{"unknown flag", []string{"prepare", "--no-such-flag", src.Dir, missing}, []string{missing}},
		{"block size 0", []string{"prepare", "--block-size", "0", src.Dir, missing}, []string{missing}},
		{"jobs 0", []string{"prepare", "--jobs", "0", src.Dir, missing}, []string{missing}},
		{"block size 1000", []string{"prepare", "--block-size", "1000", src.Dir, missing}, []string{missing}},
		{"block size 1 GiB", []string{"prepare", "--block-size", "1073741824", src.Dir, missing}, []string{missing}},
		{"block size 1000, finish", []string{"finish", "--no-stop", "--block-size", "1000", src.Dir, missing}, []string{missing}},
		{"jobs -1", []string{"prepare", "--jobs", "-1", src.Dir, missing}, []string{missing}},
		{"jobs -1, sync", []string{"sync", "--no-stop", "-j", "-1", src.Dir, missing}, []string{missing}},
		{"--no-stop with --stop-command", []string{"finish", "--no-stop", "--stop-command", "true", src.Dir, missing}, []string{missing}},
		{"prepare with one argument", []string{"prepare", src.Dir}, []string{src.Dir}},
		{"finish with three arguments", []string{"finish", "--no-stop", src.Dir, missing, empty}, []string{missing, empty}},
		{"verify with one argument", []string{"verify", src.Dir}, []string{src.Dir}},
		{"status without DEST", []string{"status"}, nil},
		{"status of a directory that is no copy", []string{"status", foreign}, []string{foreign}},
		{"bad --log-format", []string{"prepare", "--log-format", "xml", src.Dir, missing}, []string{missing}},
		{"bad --exclude", []string{"prepare", "--exclude", "/abs/*", src.Dir, missing}, []string{missing}},
		{"--progress with --no-progress", []string{"prepare", "--progress", "--no-progress", src.Dir, missing}, []string{missing}},
		{"--progress with --no-progress, finish", []string{"finish", "--no-stop", "--progress", "--no-progress", src.Dir, missing}, []string{missing}},
		{"--metrics-file in a missing directory", []string{"prepare", "--metrics-file", filepath.Join(base, "no-such-dir", "m.prom"), src.Dir, missing}, []string{missing}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			watch := append([]string{src.Dir}, tc.watch...)
			before := make([]string, len(watch))
			for i, p := range watch {
				before[i] = hashTree(t, p)
			}
			stdout, stderr, code := run(t, tc.args...)
			checkBadInput(t, stdout, stderr, code, tc.args)
			for i, p := range watch {
				if after := hashTree(t, p); after != before[i] {
					t.Errorf("bad input changes nothing: %s changed (before %s, after %s)", p, short(before[i]), short(after))
				}
			}
		})
	}

	// The cases with a running server.
	copyDir := filepath.Join(base, "copy")
	mustRun(t, "finish", "--no-stop", src.Dir, copyDir)

	t.Run("DEST's own server running", func(t *testing.T) {
		cp := openCopy(t, copyDir)
		if err := cp.Start(ctxFor(t, 3*time.Minute)); err != nil {
			t.Fatalf("start the finished copy: %v", err)
		}
		defer func() {
			if err := cp.Stop(ctxFor(t, time.Minute), "fast"); err != nil {
				t.Errorf("stop the copy: %v", err)
			}
		}()
		meta := filepath.Join(copyDir, ".pgtwopass")
		before, srcBefore := hashTree(t, meta), hashTree(t, src.Dir)
		for _, args := range [][]string{
			{"prepare", src.Dir, copyDir},
			{"finish", "--no-stop", src.Dir, copyDir},
		} {
			stdout, stderr, code := run(t, args...)
			checkBadInput(t, stdout, stderr, code, args)
			if after := hashTree(t, meta); after != before {
				t.Errorf("%v: a copy with a running server is left alone: its .pgtwopass changed", args)
			}
			if !cp.Running() {
				t.Errorf("%v: the copy's server keeps running", args)
			}
		}
		if hashTree(t, src.Dir) != srcBefore {
			t.Errorf("refusing a running DEST leaves the source untouched")
		}
	})

	t.Run("--no-stop while SRC runs", func(t *testing.T) {
		startCluster(t, src)
		defer stopCluster(t, src)
		copyMeta := filepath.Join(copyDir, ".pgtwopass")
		copyBefore := hashTree(t, copyMeta)
		for _, args := range [][]string{
			{"finish", "--no-stop", src.Dir, missing},
			{"sync", "--no-stop", src.Dir, missing},
			{"finish", "--no-stop", src.Dir, copyDir},
		} {
			stdout, stderr, code := run(t, args...)
			checkBadInput(t, stdout, stderr, code, args)
			if !src.Running() {
				t.Fatalf("%v: --no-stop never stops the server, but it is down", args)
			}
			if h := hashTree(t, missing); h != "absent" {
				t.Errorf("%v: bad input creates nothing, but DEST %s now exists", args, missing)
				os.RemoveAll(missing)
			}
			if after := hashTree(t, copyMeta); after != copyBefore {
				t.Errorf("%v: bad input leaves an existing copy's manifest alone: .pgtwopass changed", args)
			}
		}
		if s := query(t, src, "SELECT 1"); s != "1" {
			t.Errorf("the source server still answers: %q", s)
		}
	})
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
