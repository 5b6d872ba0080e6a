package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// runTimeout bounds one run of the binary.
const runTimeout = 3 * time.Minute

// needPG skips the test when TestMain was told to skip PostgreSQL tests.
func needPG(t *testing.T) {
	t.Helper()
	if skipPG != "" {
		t.Skip("PGTWOPASS_SKIP_PG=1:", skipPG)
	}
}

// ctxFor returns a context that ends with the test, bounded by d.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// run runs the pgtwopass binary with args and returns its stdout, stderr and
// exit status. It fails the test when the binary cannot run or times out.
func run(t *testing.T, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("pgtwopass %s: %.1fs", strings.Join(args, " "), time.Since(start).Seconds())
	if ctx.Err() != nil {
		t.Fatalf("pgtwopass %s: timed out after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), runTimeout, o.String(), e.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return o.String(), e.String(), 0
	case errors.As(err, &ee) && ee.Exited():
		return o.String(), e.String(), ee.ExitCode()
	}
	t.Fatalf("pgtwopass %s: %v\nstderr:\n%s", strings.Join(args, " "), err, e.String())
	return "", "", -1
}

// mustRun runs the binary and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := run(t, args...)
	if code != 0 {
		t.Fatalf("pgtwopass %s: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout, stderr
}

// runJSON runs the binary, requires exit 0, and decodes its stdout into v.
func runJSON(t *testing.T, v any, args ...string) (stderr string) {
	t.Helper()
	stdout, stderr := mustRun(t, args...)
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		t.Fatalf("pgtwopass %s: stdout is not one JSON object (--json promises one): %v\nstdout:\n%s", strings.Join(args, " "), err, stdout)
	}
	return stderr
}

// passJSON and summaryJSON are the --json output of prepare, finish and sync.
type (
	passJSON    = pgsync.PassSummary
	summaryJSON = pgsync.Summary
)

type verifyJSON struct {
	Command     string `json:"command"`
	Identical   *bool  `json:"identical"`
	Differences []struct {
		Path string `json:"path"`
		What string `json:"what"`
	} `json:"differences"`
}

type statusJSON struct {
	SystemIdentifier string           `json:"system_identifier"`
	PGVersion        string           `json:"pg_version"`
	BlockSize        int              `json:"block_size"`
	Sealed           *bool            `json:"sealed"`
	Files            int64            `json:"files"`
	Bytes            int64            `json:"bytes"`
	Created          string           `json:"created"`
	Passes           []statusPassJSON `json:"passes"`
}

type statusPassJSON struct {
	Kind     string    `json:"kind"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// newCluster makes a stopped cluster (initdb -k) in a directory under
// t.TempDir(), with the pgbench tables at scale when scale > 0. The server
// is stopped with "immediate" when the test ends.
// testLoadRate caps the tests' pgbench loads (transactions per second in
// all): a write load, not a CPU load; the suite runs many at once on two
// cores.
const testLoadRate = 300

// clusterOptions are the scratch options of a test's source cluster of the
// PostgreSQL programs in bin.
func clusterOptions(bin string) scratch.Options {
	return scratch.Options{BinDir: bin, LoadRate: testLoadRate}
}

func newCluster(t *testing.T, scale int) *scratch.Cluster {
	t.Helper()
	needPG(t)
	ctx := ctxFor(t, 3*time.Minute)
	c, err := scratch.InitDB(ctx, filepath.Join(t.TempDir(), "src"), clusterOptions(pgBinDir))
	if err != nil {
		t.Fatalf("initdb: %v", err)
	}
	closeOnCleanup(t, c)
	if scale > 0 {
		startCluster(t, c)
		if err := c.PgbenchInit(ctx, scale); err != nil {
			t.Fatalf("pgbench -i -s %d: %v", scale, err)
		}
		stopCluster(t, c)
	}
	return c
}

// openCopy wraps a copy made by pgtwopass so that it can be started.
func openCopy(t *testing.T, dir string) *scratch.Cluster {
	t.Helper()
	c, err := scratch.Open(dir, scratch.Options{BinDir: pgBinDir})
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	closeOnCleanup(t, c)
	return c
}

func closeOnCleanup(t *testing.T, c *scratch.Cluster) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("stop the server on %s: %v", c.Dir, err)
		}
	})
}

func startCluster(t *testing.T, c *scratch.Cluster) {
	t.Helper()
	if err := c.Start(ctxFor(t, 3*time.Minute)); err != nil {
		t.Fatalf("start the server on %s: %v", c.Dir, err)
	}
}

func stopCluster(t *testing.T, c *scratch.Cluster) {
	t.Helper()
	if err := c.Stop(ctxFor(t, 3*time.Minute), "fast"); err != nil {
		t.Fatalf("stop the server on %s: %v", c.Dir, err)
	}
}

func execSQL(t *testing.T, c *scratch.Cluster, sql string) {
	t.Helper()
	if err := c.Exec(ctxFor(t, time.Minute), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func query(t *testing.T, c *scratch.Cluster, sql string) string {
	t.Helper()
	s, err := c.QueryString(ctxFor(t, time.Minute), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// skipForCopy says which paths of a data directory a copy does not carry:
// pgtwopass's own directory and the default excludes.
func skipForCopy(rel string) bool {
	if rel == "." {
		return false
	}
	base := path.Base(rel)
	switch {
	case rel == ".pgtwopass",
		base == "postmaster.pid", base == "postmaster.opts",
		base == "postgresql.auto.conf.tmp", base == "current_logfiles.tmp",
		rel == "pg_wal/summaries/temp.summary",
		strings.HasPrefix(rel, "pg_stat_tmp/"),
		strings.HasPrefix(base, "pgsql_tmp"):
		return true
	}
	return false
}

// sameTree fails the test unless the copy equals the source entry by entry:
// types, modes, owners, mtimes and contents.
func sameTree(t *testing.T, what, src, dst string) {
	t.Helper()
	diffs, err := scratch.CompareTrees(src, dst, scratch.CompareOptions{Skip: skipForCopy, Owners: true, Mtimes: true})
	if err != nil {
		t.Fatalf("compare trees: %v", err)
	}
	if len(diffs) > 0 {
		if len(diffs) > 40 {
			diffs = append(diffs[:40], "...")
		}
		t.Errorf("%s: the copy differs from the source in %d ways:\n%s", what, len(diffs), strings.Join(diffs, "\n"))
	}
}

// hashTree returns scratch.HashTree(dir) of the whole tree, or "absent".
func hashTree(t *testing.T, dir string) string {
	t.Helper()
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return "absent"
	}
	h, err := scratch.HashTree(dir, nil)
	if err != nil {
		t.Fatalf("hash %s: %v", dir, err)
	}
	return h
}

// dataQueries sum up the pgbench tables: a copy that differs in one row
// differs in one of them.
var dataQueries = []string{
	"SELECT count(*) || ' rows, balance ' || coalesce(sum(abalance), 0) FROM pgbench_accounts",
	"SELECT count(*) || ' rows, delta ' || coalesce(sum(delta), 0) FROM pgbench_history",
	"SELECT count(*) || ' rows, balance ' || coalesce(sum(bbalance), 0) FROM pgbench_branches",
	"SELECT count(*) || ' rows, balance ' || coalesce(sum(tbalance), 0) FROM pgbench_tellers",
	"SELECT md5(string_agg(aid || ':' || abalance, ',' ORDER BY aid)) FROM pgbench_accounts",
}

// sameData fails the test unless both running servers answer the data
// queries alike.
func sameData(t *testing.T, src, cp *scratch.Cluster) {
	t.Helper()
	for _, q := range dataQueries {
		a, b := query(t, src, q), query(t, cp, q)
		if a != b {
			t.Errorf("the started copy's data differs from the source's:\n  %s\n  source: %s\n  copy:   %s", q, a, b)
		} else {
			t.Logf("%s: %s", q, a)
		}
	}
}

// relationFile returns the path (relative to the data directory) of the
// first segment of a relation; the server must run.
func relationFile(t *testing.T, c *scratch.Cluster, rel string) string {
	t.Helper()
	return query(t, c, "SELECT pg_relation_filepath('"+rel+"')")
}

// flipByte changes one byte of file at off, keeping its size, atime and
// mtime (to the nanosecond).
func flipByte(t *testing.T, file string, off int64) {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if off >= st.Size() {
		t.Fatalf("%s: offset %d is beyond its %d bytes", file, off, st.Size())
	}
	atime := st.ModTime()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		atime = time.Unix(sys.Atim.Sec, sys.Atim.Nsec)
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(file, atime, st.ModTime()); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(st.ModTime()) || after.Size() != st.Size() {
		t.Fatalf("%s: could not keep size and mtime (%d %v -> %d %v)", file, st.Size(), st.ModTime(), after.Size(), after.ModTime())
	}
}

// stderrLines returns the lines of stderr that start with prefix.
func stderrLines(stderr, prefix string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// passKinds returns the kinds of the passes of a summary, in order.
func passKinds(s summaryJSON) []string {
	var k []string
	for _, p := range s.Passes {
		k = append(k, p.Kind)
	}
	return k
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
