package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// TestPrepareUnderLoadThenFinish is the main job: live passes while pgbench
// writes, then finish stops the server under load, runs the cold pass and
// seals. The copy must be the source byte for byte, pass pg_checksums, start,
// and hold the same data.
func TestPrepareUnderLoadThenFinish(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 3)
	startCluster(t, src)
	dest := filepath.Join(t.TempDir(), "copy")

	load, err := src.Load(ctxFor(t, 3*time.Minute), 2, 0)
	if err != nil {
		t.Fatalf("start the pgbench load: %v", err)
	}
	t.Cleanup(func() { load.Stop() })

	mustRun(t, "prepare", src.Dir, dest)
	time.Sleep(time.Second)
	mustRun(t, "prepare", src.Dir, dest)
	time.Sleep(time.Second)

	var res summaryJSON
	runJSON(t, &res, "finish", "--json", src.Dir, dest)
	n, err := load.Stop()
	if err != nil {
		t.Errorf("pgbench load did not end by the server going away: %v", err)
	}
	t.Logf("pgbench: %d transactions during prepare and finish", n)
	if n == 0 {
		t.Errorf("the load ran no transactions: the test did not copy under load")
	}

	if res.Command != "finish" {
		t.Errorf("finish --json: command = %q, want finish", res.Command)
	}
	if res.DowntimeSeconds == nil || *res.DowntimeSeconds <= 0 {
		t.Errorf("finish --json reports the downtime: downtime_seconds = %v, want > 0", res.DowntimeSeconds)
	}
	if res.Stopped == nil || !*res.Stopped {
		t.Errorf("finish stops a running server: stopped = %v, want true", res.Stopped)
	}
	if k := passKinds(res); len(k) == 0 || k[len(k)-1] != "cold" {
		t.Errorf("finish ends with a cold pass: passes = %v", k)
	}
	if src.Running() {
		t.Fatalf("finish without --restart leaves the source server stopped, but it runs")
	}

	for _, name := range []string{"postmaster.pid", "postmaster.opts"} {
		if _, err := os.Lstat(filepath.Join(dest, name)); !os.IsNotExist(err) {
			t.Errorf("default excludes are not copied: %s in the copy (%v)", name, err)
		}
	}
	sameTree(t, "after prepare under load and finish", src.Dir, dest)
	if out, err := scratch.Checksums(ctxFor(t, 2*time.Minute), dest, scratch.Options{BinDir: pgBinDir}); err != nil {
		t.Errorf("the copy passes pg_checksums --check: %v\n%s", err, out)
	}

	cp := openCopy(t, dest)
	if err := cp.Start(ctxFor(t, 3*time.Minute)); err != nil {
		t.Fatalf("a finished copy starts: %v", err)
	}
	startCluster(t, src)
	sameData(t, src, cp)
}

// TestMtimeTrap changes files in the source behind a stat check's back
// (same size, same mtime): the cold pass reads every block and must still
// bring the copy up to date.
func TestMtimeTrap(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 2)
	startCluster(t, src)
	relFile := relationFile(t, src, "pgbench_accounts")
	stopCluster(t, src)

	base := t.TempDir()
	liveOnly := filepath.Join(base, "live-only")
	finished := filepath.Join(base, "finished")
	mustRun(t, "prepare", src.Dir, liveOnly)
	mustRun(t, "prepare", src.Dir, finished)

	// One byte in the middle of a block in the middle of a relation file.
	rel := filepath.Join(src.Dir, relFile)
	st, err := os.Stat(rel)
	if err != nil {
		t.Fatal(err)
	}
	blocks := st.Size() / scratch.BlockSize
	if blocks < 8 {
		t.Fatalf("%s has %d blocks; the test needs a relation of several blocks", relFile, blocks)
	}
	blk := blocks / 2
	flipByte(t, rel, blk*scratch.BlockSize+5000)

	// One byte inside a comment of postgresql.conf.
	conf := filepath.Join(src.Dir, "postgresql.conf")
	text, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(text, []byte("# - Connection Settings -"))
	if i < 0 {
		t.Fatal("postgresql.conf has no '# - Connection Settings -' comment")
	}
	flipByte(t, conf, int64(i+2))

	diffs, err := scratch.CompareTrees(src.Dir, finished, scratch.CompareOptions{Skip: skipForCopy})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) < 2 {
		t.Fatalf("test premise: after the edits the prepared copy should differ in 2 files, got %v", diffs)
	}

	// What a second live pass makes of it (informative: pgtwopass also
	// compares ctime, which cannot be forged from user space, so a live pass
	// may well catch this; the cold pass must, whatever the stats say).
	mustRun(t, "prepare", src.Dir, liveOnly)
	d, err := scratch.CompareTrees(src.Dir, liveOnly, scratch.CompareOptions{Skip: skipForCopy})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a live pass after the same-size, same-mtime edits leaves %d differences (global/pg_control is held until finish): %v", len(d), d)

	var res summaryJSON
	runJSON(t, &res, "finish", "--no-stop", "--json", src.Dir, finished)
	if k := passKinds(res); len(k) != 1 || k[0] != "cold" {
		t.Errorf("finish --no-stop runs one cold pass: passes = %v", k)
	} else if res.Passes[0].BlocksWritten < 2 {
		t.Errorf("the cold pass writes the changed blocks of both files: blocks_written = %d, want >= 2", res.Passes[0].BlocksWritten)
	}
	if res.Stopped == nil || *res.Stopped {
		t.Errorf("finish --no-stop stops nothing: stopped = %v, want false", res.Stopped)
	}
	sameTree(t, "cold pass after same-size, same-mtime edits", src.Dir, finished)
}

// TestPreparedCopyCannotStart: a copy left by prepare holds its pg_control
// in .pgtwopass, so PostgreSQL refuses to start it.
func TestPreparedCopyCannotStart(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 0)
	startCluster(t, src)
	dest := filepath.Join(t.TempDir(), "copy")
	mustRun(t, "prepare", src.Dir, dest)

	if _, err := os.Lstat(filepath.Join(dest, "global", "pg_control")); !os.IsNotExist(err) {
		t.Errorf("a prepared copy has no global/pg_control (it is installed last, by finish): Lstat = %v", err)
	}
	if st, err := os.Stat(filepath.Join(dest, ".pgtwopass", "pg_control")); err != nil || st.Size() == 0 {
		t.Errorf("a prepared copy holds its pg_control in .pgtwopass/pg_control: %v", err)
	}
	assertOwnedLike(t, src.Dir, dest)

	cp := openCopy(t, dest)
	err := cp.Start(ctxFor(t, 3*time.Minute))
	if err == nil {
		t.Fatalf("pg_ctl start on a prepared (unsealed) copy must fail, but the server started")
	}
	t.Logf("starting the unsealed copy failed as it should: %v", firstLines(err.Error(), 4))
	if _, err := os.Lstat(filepath.Join(dest, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("a failed start of an unsealed copy leaves no postmaster.pid: Lstat = %v", err)
	}
	if cp.Running() {
		t.Errorf("no server runs on an unsealed copy")
	}
}

// TestDeletesAndFinishIntoEmptyDest: finish into a missing DEST is a full
// cold copy; a relation dropped in the source is deleted from the copy by
// the next finish.
func TestDeletesAndFinishIntoEmptyDest(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	startCluster(t, src)
	execSQL(t, src, "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1, 1, g, g, now() FROM generate_series(1, 20000) g")
	hist := relationFile(t, src, "pgbench_history")
	stopCluster(t, src)

	dest := filepath.Join(t.TempDir(), "copy")
	var res summaryJSON
	runJSON(t, &res, "finish", "--no-stop", "--json", src.Dir, dest)
	if k := passKinds(res); len(k) != 1 || k[0] != "cold" {
		t.Errorf("finish into a missing DEST is one cold pass: passes = %v", k)
	}
	if res.BytesWritten == 0 {
		t.Errorf("a full cold copy writes data: bytes_written = 0")
	}
	sameTree(t, "finish into a missing DEST", src.Dir, dest)
	if _, err := os.Stat(filepath.Join(dest, hist)); err != nil {
		t.Fatalf("the copy has pgbench_history's file %s: %v", hist, err)
	}

	startCluster(t, src)
	execSQL(t, src, "DROP TABLE pgbench_history")
	stopCluster(t, src)
	if _, err := os.Lstat(filepath.Join(src.Dir, hist)); !os.IsNotExist(err) {
		t.Fatalf("test premise: DROP TABLE and a clean stop remove %s from the source: %v", hist, err)
	}

	res = summaryJSON{}
	runJSON(t, &res, "finish", "--no-stop", "--json", src.Dir, dest)
	if res.FilesDeleted <= 0 {
		t.Errorf("finish deletes the files of a dropped table from the copy: files_deleted = %d, want > 0", res.FilesDeleted)
	}
	for _, suffix := range []string{"", "_fsm", "_vm"} {
		if _, err := os.Lstat(filepath.Join(dest, hist+suffix)); !os.IsNotExist(err) {
			t.Errorf("the dropped table's file %s is gone from the copy: Lstat = %v", hist+suffix, err)
		}
	}
	sameTree(t, "finish after DROP TABLE", src.Dir, dest)

	cp := openCopy(t, dest)
	if err := cp.Start(ctxFor(t, 3*time.Minute)); err != nil {
		t.Fatalf("the copy starts after a finish with deletes: %v", err)
	}
	if s := query(t, cp, "SELECT coalesce(to_regclass('pgbench_history')::text, 'none')"); s != "none" {
		t.Errorf("the copy no longer has the dropped table: to_regclass = %q", s)
	}
	startCluster(t, src)
	q := dataQueries[len(dataQueries)-1]
	if a, b := query(t, src, q), query(t, cp, q); a != b {
		t.Errorf("the copy's pgbench_accounts equals the source's: %s vs %s", a, b)
	}
}

// assertOwnedLike fails the test unless the copy's root has the source
// root's owner, group and mode (a copy PostgreSQL can start as the owner).
func assertOwnedLike(t *testing.T, src, dest string) {
	t.Helper()
	a, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := a.Sys().(*syscall.Stat_t), b.Sys().(*syscall.Stat_t)
	if sa.Uid != sb.Uid || sa.Gid != sb.Gid {
		t.Errorf("the copy's root has the source's owner: source %d:%d, copy %d:%d", sa.Uid, sa.Gid, sb.Uid, sb.Gid)
	}
	if a.Mode().Perm() != b.Mode().Perm() {
		t.Errorf("the copy's root has the source's mode: source %v, copy %v", a.Mode().Perm(), b.Mode().Perm())
	}
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}
