package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCopyIsReachableByTheServerUser: what pgtwopass creates can be
// reached by the data directory's owner, and a copy that owner cannot
// reach is not reported startable. DEST's parent must exist, as with
// rsync, unless --mkpath, which makes the missing directories 0755; a DEST
// or a tablespace's copy below a directory the owner cannot enter (0700,
// root's) fails the cold pass before the seal, naming that directory and
// its mode; the copy stays unsealed.
func TestCopyIsReachableByTheServerUser(t *testing.T) {
	needPG(t)
	if os.Geteuid() != 0 {
		t.Skip("SKIP LOUDLY: the server's user differs from pgtwopass's only as root; CI runs this as root")
	}
	t.Parallel()
	src := newCluster(t, 0)
	base := pgTempDir(t)
	ts := filepath.Join(base, "ts")
	if err := os.Mkdir(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(src.Dir)
	owner := st.Sys().(*syscall.Stat_t)
	if err := os.Chown(ts, int(owner.Uid), int(owner.Gid)); err != nil {
		t.Fatal(err)
	}
	startCluster(t, src)
	execSQL(t, src, "CREATE TABLESPACE ts1 LOCATION '"+ts+"'")
	execSQL(t, src, "CREATE TABLE t TABLESPACE ts1 AS SELECT g FROM generate_series(1, 1000) g")
	stopCluster(t, src)

	// A missing parent: refused, nothing created.
	dest := filepath.Join(base, "a", "b", "copy")
	newTS := filepath.Join(base, "a", "ts-copy")
	tsMap := "--tablespace-map=" + ts + "=" + newTS
	args := []string{"sync", "--no-stop", tsMap, src.Dir, dest}
	r := runWith(t, runOpts{}, args...)
	checkBadInput(t, r, args, "does not exist")
	if !strings.Contains(r.stderr, "--mkpath") {
		t.Errorf("the hint names --mkpath:\n%s", r.stderr)
	}
	if _, err := os.Lstat(filepath.Join(base, "a")); !os.IsNotExist(err) {
		t.Fatalf("a refused pass creates nothing (%v)", err)
	}
	// --mkpath: the missing directories are made 0755; the copy starts and
	// reads its tablespace as the server's user.
	mustRun(t, "sync", "--no-stop", "--mkpath", tsMap, src.Dir, dest)
	for _, p := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("--mkpath makes %s 0755: %v %v", p, fi.Mode(), err)
		}
	}
	cp := openCopy(t, dest)
	startCluster(t, cp)
	if got := query(t, cp, "SELECT count(*) FROM t"); got != "1000" {
		t.Errorf("the copy made with --mkpath reads its tablespace: %q", got)
	}
	stopCluster(t, cp)

	// Below a directory the server's user cannot enter: the cold pass
	// fails before the seal, naming it.
	closed := filepath.Join(base, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, dest, ts string }{
		{"DEST", filepath.Join(closed, "copy"), filepath.Join(base, "ts-copy2")},
		{"a tablespace's copy", filepath.Join(base, "copy3"), filepath.Join(closed, "ts-copy")},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runWith(t, runOpts{}, "finish", "--no-stop", "--tablespace-map="+ts+"="+c.ts, src.Dir, c.dest)
			if r.code != 1 || !strings.Contains(r.stderr, "cannot reach") || !strings.Contains(r.stderr, closed+" has mode 0700") {
				t.Errorf("a copy below a directory the server's user cannot enter fails (exit 1) naming it and its mode: %s", r)
			}
			if sealed(t, c.dest) {
				t.Errorf("a copy the server's user cannot reach is not sealed")
			}
		})
	}
}
