package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckpointMustRun: finish connects for its CHECKPOINT before it
// touches anything. When the connection fails it stops there: exit 2, the
// error says what failed, the hint names --dsn and --no-checkpoint, DEST is
// not created and the server keeps running. --dry-run makes the connection
// and says whether it works; --no-checkpoint stops without one. As root the
// CHECKPOINT connects as the data directory's owner under peer
// authentication (pg_hba.conf "local all all peer").
func TestCheckpointMustRun(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 0)
	if os.Geteuid() == 0 {
		// Peer authentication only: root cannot connect as postgres.
		if err := os.WriteFile(filepath.Join(src.Dir, "pg_hba.conf"), []byte("local all all peer\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startCluster(t, src)
	dest := filepath.Join(pgTempDir(t), "copy")

	r := runWith(t, runOpts{}, "finish", "--restart", "--dsn", "host=/nonexistent port=5432 user=postgres dbname=postgres", src.Dir, dest)
	errs, hints := stderrLines(r.stderr, "pgtwopass: error:"), stderrLines(r.stderr, "pgtwopass: hint:")
	if r.code != 2 || len(errs) != 1 || !strings.Contains(errs[0], "the CHECKPOINT before the stop cannot run, so the server was not stopped") ||
		!strings.Contains(errs[0], "/nonexistent") {
		t.Errorf("a CHECKPOINT that cannot connect: exit 2 and an error saying so, naming what failed; got %s", r)
	}
	if len(hints) != 1 || !strings.Contains(hints[0], "--dsn") || !strings.Contains(hints[0], "--no-checkpoint") {
		t.Errorf("the hint names --dsn and --no-checkpoint: %q", hints)
	}
	if !src.Running() {
		t.Errorf("a CHECKPOINT that cannot run leaves the server running")
	}
	if _, err := os.Lstat(dest); err == nil {
		t.Errorf("a CHECKPOINT that cannot run is found before DEST is created")
	}

	r = runWith(t, runOpts{}, "finish", "--dry-run", "--log-format", "json", src.Dir, dest)
	want := `"msg":"the CHECKPOINT before the stop would run: connected as`
	if os.Geteuid() == 0 {
		want += ` OS user postgres as role postgres (a superuser)"`
	}
	if r.code != 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("finish --dry-run connects for the CHECKPOINT and says it works (%s), got %s", want, r)
	}

	r = runWith(t, runOpts{}, "finish", "--restart", "--log-format", "json", src.Dir, dest)
	if r.code != 0 || !strings.Contains(r.stderr, `"msg":"CHECKPOINT, so that the pages`) || len(warnings(t, r.stderr)) > 0 {
		t.Errorf("finish --restart with default flags runs the CHECKPOINT (as the data directory's owner, under peer authentication) without a warning: %s", r)
	}
	r = runWith(t, runOpts{}, "finish", "--restart", "--no-checkpoint", "--log-format", "json", src.Dir, dest)
	if r.code != 0 || !strings.Contains(r.stderr, `"msg":"no CHECKPOINT (--no-checkpoint)`) || strings.Contains(r.stderr, `"msg":"CHECKPOINT, so that`) {
		t.Errorf("finish --no-checkpoint stops the server without a CHECKPOINT, and says so: %s", r)
	}
	if !src.Running() {
		t.Errorf("finish --restart leaves the server running")
	}
}

// TestPostmasterPidFailsClosed: a postmaster.pid that is there but cannot
// be read as PostgreSQL writes it (half-written, damaged) counts as "a
// server may be running": finish and verify refuse SRC with it, prepare
// refuses a DEST with it, with exit 2, a message that says so and a hint;
// nothing is created or changed.
func TestPostmasterPidFailsClosed(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 0)
	dest := filepath.Join(pgTempDir(t), "copy")
	pid := filepath.Join(src.Dir, "postmaster.pid")
	for _, bad := range []string{"12", "", "not a pid\n"} {
		if err := os.WriteFile(pid, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		before := hashTree(t, src.Dir)
		for _, args := range [][]string{{"finish", "--restart", src.Dir, dest}, {"verify", src.Dir, dest}} {
			r := runWith(t, runOpts{}, args...)
			errs, hints := stderrLines(r.stderr, "pgtwopass: error:"), stderrLines(r.stderr, "pgtwopass: hint:")
			if r.code != 2 || len(errs) != 1 || !strings.Contains(errs[0], "cannot tell whether a server runs on "+src.Dir) ||
				len(hints) != 1 || !strings.Contains(hints[0], "pg_ctl status") {
				t.Errorf("%s with postmaster.pid %q: exit 2, 'cannot tell whether a server runs', a hint; got %s", args[0], bad, r)
			}
			if _, err := os.Lstat(dest); err == nil {
				t.Fatalf("%s with postmaster.pid %q creates no DEST", args[0], bad)
			}
		}
		if hashTree(t, src.Dir) != before {
			t.Errorf("a refusal touches nothing in SRC")
		}
	}
	os.Remove(pid)

	mustRun(t, "prepare", src.Dir, dest)
	if err := os.WriteFile(filepath.Join(dest, "postmaster.pid"), []byte("4"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := hashTree(t, dest)
	r := runWith(t, runOpts{}, "prepare", src.Dir, dest)
	if errs := stderrLines(r.stderr, "pgtwopass: error:"); r.code != 2 || len(errs) != 1 || !strings.Contains(errs[0], "cannot tell whether") || !strings.Contains(errs[0], "runs on DEST") {
		t.Errorf("prepare into a DEST with a half-written postmaster.pid: exit 2, 'cannot tell whether a ... server runs on DEST'; got %s", r)
	}
	if hashTree(t, dest) != before {
		t.Errorf("a refused DEST is left as it was (its postmaster.pid is not deleted as an excluded file)")
	}
}
