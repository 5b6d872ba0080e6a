package integration

// The core scenarios against every major version pgtwopass supports, 13 to
// 18 (scratch.SupportedMajors; scripts/install-pg-versions.sh installs them,
// and make test runs it): sync --restart under a pgbench load, a tablespace
// and an in-place tablespace, the quick cold pass, verify --manifest-only,
// and a kill -9 in the middle of a pass. The copies' page checksums are
// checked without pgtwopass: by the copy's own server, which reads every
// page of every relation of every database, and by pg_checksums where the
// version's own is installed (Debian's 15).
//
// One small cluster per version, and one copy of it, serve every scenario,
// in order; versions run in parallel (t.Parallel, so go test -parallel
// bounds them).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// requireVersionsEnv, set to 1 (as CI does), makes a major version that is
// not installed a failure rather than a skip.
const requireVersionsEnv = "PGTWOPASS_REQUIRE_PG_VERSIONS"

// TestMajorVersions runs the scenarios against each installed major
// version; a version that is not installed is skipped, on stderr too,
// naming the script that installs it.
func TestMajorVersions(t *testing.T) {
	needPG(t)
	for _, major := range scratch.SupportedMajors {
		t.Run("PostgreSQL "+major, func(t *testing.T) {
			bin, err := scratch.VersionBinDir(major)
			if err != nil && os.Getenv(requireVersionsEnv) == "1" {
				t.Fatalf("%v (%s=1 requires every version)", err, requireVersionsEnv)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "SKIP %s: %v\n", t.Name(), err)
				t.Skip(err)
			}
			t.Parallel()
			start := time.Now()
			v := newVersionCluster(t, major, bin)
			synced := t.Run("sync --restart under load", v.syncUnderLoad)
			for _, s := range []struct {
				name string
				f    func(*testing.T)
			}{
				{"verify --manifest-only", v.verifyManifestOnly},
				{"pg_checksums", v.pgChecksums},
				{"tablespaces", v.tablespaces},
				{"started copy: same data, every page good", v.startedCopy},
				{"kill -9 mid-pass converges", v.killedPassesConverge},
				{"quick cold pass", v.quickColdPass},
				{"WAL-guided cold pass, two rounds under load", v.walColdPass},
			} {
				t.Run(s.name, func(t *testing.T) {
					if !synced {
						t.Skip("needs the copy made by sync --restart, which failed")
					}
					s.f(t)
				})
			}
			t.Logf("PostgreSQL %s: %.1fs", major, time.Since(start).Seconds())
		})
	}
}

// versionCluster is the source cluster of one major version and what the
// scenarios leave for each other.
type versionCluster struct {
	t     *testing.T // the version's test, which outlives the scenarios
	major string
	bin   string // the version's initdb, pg_ctl, postgres
	src   *scratch.Cluster
	base  string // where copies and tablespaces go (reachable by postgres)

	tsOld      string // tablespace ts1, linked from pg_tblspc: pgbench_accounts
	tsOID      string
	inPlaceOID string // tablespace inplace, a directory in pg_tblspc: pgbench_history; "" when the version has none

	// synced is the copy: made by sync --restart, started, made the
	// source's twin again after kills, then by the quick cold pass.
	synced string
	// snapshot is the source as sync --restart left it stopped, just
	// before the restart; snapshotTS its tablespace ts1.
	snapshot, snapshotTS string
	// syncedServer runs on the copy sync made, once a scenario started it.
	syncedServer *scratch.Cluster
}

// newVersionCluster makes a cluster of major with the pgbench tables
// (scale 1), pgbench_accounts in a tablespace and, where the version has
// allow_in_place_tablespaces (13.23 and 14.x too, backpatched),
// pgbench_history in an in-place tablespace; 17 and 18 run the WAL
// summarizer.
func newVersionCluster(t *testing.T, major, bin string) *versionCluster {
	t.Helper()
	ctx := ctxFor(t, 3*time.Minute)
	base := pgTempDir(t)
	c, err := scratch.InitDB(ctx, filepath.Join(base, "src"), clusterOptions(bin))
	if err != nil {
		t.Fatalf("initdb of PostgreSQL %s: %v", major, err)
	}
	closeOnCleanup(t, c)
	v := &versionCluster{t: t, major: major, bin: bin, src: c, base: base,
		tsOld:  filepath.Join(base, "ts"),
		synced: filepath.Join(base, "synced"),
	}
	space := snapshotSpace(t)
	v.snapshot, v.snapshotTS = filepath.Join(space, "snapshot"), filepath.Join(space, "snapshot-ts")
	mkdirOwnedLike(t, v.tsOld, c.Dir)

	// Old WAL segments removed rather than kept for reuse (up to
	// min_wal_size, 80 MB): a small cluster's copies would be mostly WAL.
	extra := []string{"wal_recycle=off"}
	if n, _ := strconv.Atoi(major); n >= 17 {
		// pg_wal/summaries fills while the server runs, through temp.summary.
		extra = append(extra, "summarize_wal=on")
	}
	if err := c.Start(ctx, extra...); err != nil {
		t.Fatalf("start PostgreSQL %s: %v", major, err)
	}
	if err := c.PgbenchInit(ctx, 1); err != nil {
		t.Fatalf("pgbench -i -s 1: %v", err)
	}
	execSQL(t, c, "CREATE TABLESPACE ts1 LOCATION '"+v.tsOld+"'")
	execSQL(t, c, "ALTER TABLE pgbench_accounts SET TABLESPACE ts1")
	v.tsOID = query(t, c, "SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
	if query(t, c, "SELECT count(*) FROM pg_settings WHERE name = 'allow_in_place_tablespaces'") == "1" {
		conn, err := c.Connect(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		// CREATE TABLESPACE refuses to run in a transaction block: the SET
		// and the CREATE are two statements of one session.
		for _, sql := range []string{"SET allow_in_place_tablespaces = on", "CREATE TABLESPACE inplace LOCATION ''"} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		conn.Close(ctx)
		execSQL(t, c, "ALTER TABLE pgbench_history SET TABLESPACE inplace")
		v.inPlaceOID = query(t, c, "SELECT oid FROM pg_tablespace WHERE spcname = 'inplace'")
		if fi, err := os.Lstat(filepath.Join(c.Dir, "pg_tblspc", v.inPlaceOID)); err != nil || !fi.IsDir() {
			t.Fatalf("the premise: an in-place tablespace is a directory in pg_tblspc (%v, %v)", fi, err)
		}
	} else {
		t.Logf("PostgreSQL %s has no allow_in_place_tablespaces: no in-place tablespace", major)
	}
	return v
}

// tsmap is the --tablespace-map that puts ts1's copy beside the copy dest.
func (v *versionCluster) tsmap(dest string) string { return v.tsOld + "=" + dest + "-ts" }

// syncUnderLoad: sync --restart while pgbench writes. The copy must equal,
// byte for byte, the source as the cold pass left it, which the restart
// then changes: a hook of the test build snapshots the stopped source with
// cp -a just before pgtwopass starts it again.
func (v *versionCluster) syncUnderLoad(t *testing.T) {
	src := v.src
	load, err := src.Load(ctxFor(t, 3*time.Minute), 2, 0)
	if err != nil {
		t.Fatalf("start the pgbench load: %v", err)
	}
	t.Cleanup(func() { load.Stop() })
	done := filepath.Join(v.base, "snapshot-taken")
	snap := fmt.Sprintf("cp -a %s %s && cp -a %s %s && touch %s",
		shq(src.Dir), shq(v.snapshot), shq(v.tsOld), shq(v.snapshotTS), shq(done))
	r := runWith(t, runOpts{env: []string{"PGTWOPASS_FAULT_BEFORE_RESTART=" + snap}},
		"sync", "--json", "--restart", "--start-log", serverLogFile(t),
		"--tablespace-map", v.tsmap(v.synced), src.Dir, v.synced)
	n, lerr := load.Stop()
	if r.code != 0 {
		t.Fatalf("sync --restart under load: want exit 0, got %s", r)
	}
	if lerr != nil || n == 0 {
		t.Errorf("the load ran during the copy and ended by the server's stop: %d transactions, %v", n, lerr)
	}
	var res summaryJSON
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("sync --json: %v\n%s", err, r.stdout)
	}
	if k := passKinds(res); len(k) < 2 || k[0] != "live" || k[len(k)-1] != "cold" {
		t.Errorf("sync runs live passes, then the cold pass: passes = %v", k)
	}
	if res.Stopped == nil || !*res.Stopped || res.Restarted == nil || !*res.Restarted {
		t.Errorf("sync --restart stops the server with PostgreSQL %s's pg_ctl and starts it again: stopped = %v, restarted = %v", v.major, res.Stopped, res.Restarted)
	}
	if !src.Running() {
		t.Fatalf("after sync --restart the source server runs")
	}
	if s := query(t, src, "SELECT current_setting('server_version_num')::int / 10000"); s != v.major {
		t.Errorf("the restarted server is PostgreSQL %s, got %s", v.major, s)
	}
	if _, err := os.Stat(done); err != nil {
		t.Fatalf("the test build's hook snapshots the stopped source before the restart: %v\nstderr:\n%s", err, r.stderr)
	}
	v.sameCopy(t, "sync --restart under load", v.snapshot, v.snapshotTS, v.synced)
	if sums, _ := filepath.Glob(filepath.Join(v.synced, "pg_wal", "summaries", "*.summary")); len(sums) > 0 {
		t.Logf("the copy has %d WAL summaries", len(sums))
	}
}

// verifyManifestOnly: the copy sync made matches its manifest, tablespace
// included.
func (v *versionCluster) verifyManifestOnly(t *testing.T) {
	manifestOnly(t, v.synced)
}

func manifestOnly(t *testing.T, dest string) {
	t.Helper()
	stdout, stderr, code := run(t, "verify", "--manifest-only", dest)
	if code != 0 || !strings.Contains(stdout, "the copy matches its manifest") {
		t.Errorf("verify --manifest-only of %s exits 0 and says the copy matches its manifest: exit %d\nstdout:\n%s\nstderr:\n%s", dest, code, stdout, stderr)
	}
}

// pgChecksums: the version's own pg_checksums, where it is installed
// (Debian's 15), finds every page of sync's copy good; pg_checksums refuses
// or misreads other versions' data directories, whose pages the copy's
// server checks instead (startedCopy).
func (v *versionCluster) pgChecksums(t *testing.T) {
	if !isExecutable(filepath.Join(v.bin, "pg_checksums")) {
		t.Skipf("no pg_checksums of PostgreSQL %s in %s: the copy's server reads every page instead", v.major, v.bin)
	}
	out, err := scratch.Checksums(ctxFor(t, 2*time.Minute), v.synced, scratch.Options{BinDir: v.bin})
	if err != nil {
		t.Fatalf("PostgreSQL %s's pg_checksums --check passes on the copy: %v\n%s", v.major, err, out)
	}
	t.Logf("pg_checksums: %s, %s", lineWith(out, "Blocks scanned"), lineWith(out, "Bad checksums"))
}

// tablespaces: an unmapped tablespace is refused; the copy's pg_tblspc link
// leads to the mapped directory, which is the tablespace byte for byte
// (sameCopy); an in-place tablespace is a directory of the copy; the
// started copy finds its tables there.
func (v *versionCluster) tablespaces(t *testing.T) {
	r := runWith(t, runOpts{}, "prepare", v.src.Dir, filepath.Join(v.base, "unmapped"))
	if r.code != 2 || !strings.Contains(r.stderr, v.tsOld) {
		t.Errorf("a tablespace without --tablespace-map is refused with exit 2, naming its directory %s: %s", v.tsOld, r)
	}
	if v.inPlaceOID != "" {
		rel := "pg_tblspc/" + v.inPlaceOID
		if fi, err := os.Lstat(filepath.Join(v.synced, rel)); err != nil || !fi.IsDir() {
			t.Errorf("the in-place tablespace %s is a directory of the copy, as in the source: %v %v", rel, fi, err)
		}
	}
	cp := v.syncedCopyServer(t)
	if loc := query(t, cp, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'"); loc != v.synced+"-ts" {
		t.Errorf("the started copy's tablespace ts1 is at the mapped %s, got %s", v.synced+"-ts", loc)
	}
	for table, ts := range map[string]string{"pgbench_accounts": v.tsOID, "pgbench_history": v.inPlaceOID} {
		if ts == "" {
			continue
		}
		if got := relationFile(t, cp, table); !strings.HasPrefix(got, "pg_tblspc/"+ts+"/") {
			t.Errorf("the copy's %s lives in tablespace %s: %s", table, ts, got)
		}
	}
}

// startedCopy: sync's copy starts and answers the data queries as the
// restarted source does (the load died with the stop), and its server
// reads every page of it without a checksum failure, a check shown to
// catch a bad page.
func (v *versionCluster) startedCopy(t *testing.T) {
	cp := v.syncedCopyServer(t)
	sameData(t, v.src, cp)
	allPagesGood(t, cp)

	// The premise of allPagesGood: a page whose checksum is wrong fails it.
	rel := relationFile(t, cp, "pgbench_branches")
	stopCluster(t, cp)
	flipByte(t, filepath.Join(cp.Dir, rel), 4000)
	startCluster(t, cp)
	if _, _, err := readEveryPage(ctxFor(t, 2*time.Minute), cp, "postgres"); err == nil || !strings.Contains(err.Error(), "invalid page") {
		t.Errorf("the premise: reading every page fails on a page whose checksum is wrong (one byte of %s changed), got %v", rel, err)
	}
	if n := waitChecksumFailures(t, cp); n < 1 {
		t.Errorf("the premise: pg_stat_database counts the checksum failure, got %d", n)
	}
}

// syncedCopyServer returns a server of the version running on sync's
// copy, started by the first scenario that needs it; it runs until the
// version's test ends or killedPassesConverge stops it.
func (v *versionCluster) syncedCopyServer(t *testing.T) *scratch.Cluster {
	t.Helper()
	if v.syncedServer == nil {
		cp, err := scratch.Open(v.synced, scratch.Options{BinDir: v.bin})
		if err != nil {
			t.Fatalf("open the copy: %v", err)
		}
		closeOnCleanup(v.t, cp)
		v.syncedServer = cp
	}
	if !v.syncedServer.Running() {
		if err := v.syncedServer.Start(ctxFor(t, 3*time.Minute)); err != nil {
			t.Fatalf("the copy starts with PostgreSQL %s: %v", v.major, err)
		}
	}
	return v.syncedServer
}

// quickColdPass: after changes to every pgbench table, finish
// --cold-pass=quick on the copy, which the last finish left the source's
// twin, trusts the files whose stat vouches for them, copies the rest, and
// leaves the stopped source's twin again.
func (v *versionCluster) quickColdPass(t *testing.T) {
	src := v.src
	v.change(t)
	// A margin of 100 ms instead of 2 s: the files these changes left
	// alone changed longer ago than that when the last finish read them.
	s := finishJSON(t, []string{"PGTWOPASS_FAULT_QUICK_MARGIN=100ms"}, "--cold-pass=quick",
		"--start-log", serverLogFile(t), "--tablespace-map", v.tsmap(v.synced), src.Dir, v.synced)
	cold := coldPass(t, s)
	if cold.FilesSkipped == 0 {
		t.Errorf("the quick cold pass trusts the files unchanged since the last finish by their stat: it skipped none")
	}
	if cold.BlocksWritten == 0 {
		t.Errorf("the quick cold pass copies what changed since the last finish: it wrote no block")
	}
	t.Logf("quick cold pass: %d files read, %d trusted by their stat, %d blocks written", cold.FilesExamined, cold.FilesSkipped, cold.BlocksWritten)
	if src.Running() {
		t.Fatalf("finish without --restart leaves the source stopped")
	}
	v.sameCopy(t, "finish --cold-pass=quick", src.Dir, v.tsOld, v.synced)
	manifestOnly(t, v.synced)
}

// walColdPass: two rounds of changes under a pgbench load, each finished
// by a WAL-guided cold pass, the second on the records the first left: the
// WAL of this version is followed and read, every block that differed
// before the cold pass was read (crossCheck, the tablespace included), and
// the copy is the stopped source's twin.
func (v *versionCluster) walColdPass(t *testing.T) {
	src := v.src
	for round := 1; round <= 2; round++ {
		v.change(t)
		load, err := src.Load(ctxFor(t, 3*time.Minute), 2, 0)
		if err != nil {
			t.Fatalf("start the pgbench load: %v", err)
		}
		before := filepath.Join(v.base, fmt.Sprintf("before-wal-%d", round))
		snap := fmt.Sprintf("cp -a %s %s && cp -a %s %s", shq(v.synced), shq(before), shq(v.synced+"-ts"), shq(before+"-ts"))
		w := walFinish(t, src, v.synced, []string{"PGTWOPASS_FAULT_BEFORE_STOP=" + snap}, "--tablespace-map", v.tsmap(v.synced))
		load.Stop()
		if w.sum.ColdPassMode != "wal" || w.sum.FallbackReason != "" {
			t.Errorf("round %d: the WAL of PostgreSQL %s guides the cold pass: mode %q, fallback %q", round, v.major, w.sum.ColdPassMode, w.sum.FallbackReason)
		}
		cold := w.cold(t)
		t.Logf("round %d: the WAL-guided cold pass read %d bytes, wrote %d", round, cold.BytesRead, cold.BytesWritten)
		w.crossCheck(t, src.Dir, before, v.synced)
		w.crossCheckDir(t, v.tsOld, before+"-ts", v.synced+"-ts", filepath.Join(src.Dir, "pg_tblspc", v.tsOID))
		v.sameCopy(t, fmt.Sprintf("finish --cold-pass=wal, round %d", round), src.Dir, v.tsOld, v.synced)
	}
}

// killedPassesConverge: after changes to every pgbench table, prepare
// killed (SIGKILL) after a few files, then finish killed after some
// blocks, on sync's copy, which its own server has changed too (and a page
// of it broken); each kill leaves the copy unsealed, and the next finish
// makes it the stopped source's twin.
func (v *versionCluster) killedPassesConverge(t *testing.T) {
	src := v.src
	v.change(t)
	stopCluster(t, src)
	if cp := v.syncedServer; cp != nil && cp.Running() {
		stopCluster(t, cp)
	}
	dest, tsmap := v.synced, v.tsmap(v.synced)
	// What a WAL summarizer (17 and later) killed while writing a summary
	// leaves behind: pg_wal/summaries/temp.summary, which is not copied.
	tempSummary := filepath.Join("pg_wal", "summaries", "temp.summary")
	if _, err := os.Stat(filepath.Dir(filepath.Join(src.Dir, tempSummary))); err == nil {
		writeOwnedLike(t, filepath.Join(src.Dir, tempSummary), src.Dir, "half a WAL summary")
	} else {
		tempSummary = ""
	}
	for _, k := range []struct{ fault, cmd string }{
		{"PGTWOPASS_FAULT_KILL_AFTER_FILES=3", "prepare"},
		{"PGTWOPASS_FAULT_KILL_AFTER_BLOCKS=100", "finish"},
	} {
		args := []string{k.cmd, "--max-passes", "1", "--tablespace-map", tsmap, src.Dir, dest}
		if k.cmd == "finish" {
			args = []string{k.cmd, "--no-stop", "--tablespace-map", tsmap, src.Dir, dest}
		}
		if k.cmd == "prepare" && v.syncedServer != nil {
			// The copy ran (startedCopy): it may be a new primary, so it is
			// refused, unless told to refresh it anyway.
			checkBadInput(t, runWith(t, runOpts{}, args...), args, "has run as a PostgreSQL cluster since pgtwopass sealed it")
			args = append([]string{args[0], "--allow-started-copy"}, args[1:]...)
		}
		r := runWith(t, runOpts{env: []string{k.fault}}, args...)
		if !r.killed() {
			t.Fatalf("%s with %s: the source changed since the copy's last pass, so the pass must die by SIGKILL, got %s", k.cmd, k.fault, r)
		}
		if sealed(t, dest) {
			t.Errorf("%s killed by %s leaves the copy unsealed, but global/pg_control is there", k.cmd, k.fault)
		}
	}
	mustRun(t, "finish", "--no-stop", "--tablespace-map", tsmap, src.Dir, dest)
	if !sealed(t, dest) {
		t.Errorf("finish after the kills seals the copy (global/pg_control installed)")
	}
	v.sameCopy(t, "finish after kill -9 of prepare and finish", src.Dir, v.tsOld, dest)
	manifestOnly(t, dest)
	if tempSummary != "" {
		if _, err := os.Lstat(filepath.Join(dest, tempSummary)); !os.IsNotExist(err) {
			t.Errorf("%s, a half-written WAL summary, is left out of the copy: Lstat = %v", tempSummary, err)
		}
	}
}

// change makes the same changes, whatever the machine's speed, to the
// pages of every pgbench table, starting the source if it is stopped: the
// work of the passes after it.
func (v *versionCluster) change(t *testing.T) {
	t.Helper()
	if !v.src.Running() {
		startCluster(t, v.src)
	}
	for _, sql := range []string{
		"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 50 = 0", // every page
		"UPDATE pgbench_branches SET bbalance = bbalance + 1",
		"UPDATE pgbench_tellers SET tbalance = tbalance + 1",
		"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1, 1, g, 1, now() FROM generate_series(1, 5000) g",
	} {
		execSQL(t, v.src, sql)
	}
}

// sameCopy fails the test unless dest is srcDir byte for byte (owners,
// modes, mtimes), but for the link of tablespace ts1, which must lead to
// dest-ts, a copy of tsDir.
func (v *versionCluster) sameCopy(t *testing.T, what, srcDir, tsDir, dest string) {
	t.Helper()
	link := "pg_tblspc/" + v.tsOID
	diffs, err := scratch.CompareTrees(srcDir, dest, scratch.CompareOptions{
		Skip: func(rel string) bool { return skipForCopy(rel) || rel == link }, Owners: true, Mtimes: true})
	if err != nil {
		t.Fatalf("compare trees: %v", err)
	}
	reportDiffs(t, what+": the data directory", diffs)
	if target, err := os.Readlink(filepath.Join(dest, link)); err != nil || target != dest+"-ts" {
		t.Errorf("%s: the copy's %s links to the mapped directory %s: got %q (%v)", what, link, dest+"-ts", target, err)
	}
	diffs, err = scratch.CompareTrees(tsDir, dest+"-ts", scratch.CompareOptions{
		Skip: func(rel string) bool { return rel == ".pgtwopass-tablespace" }, Owners: true, Mtimes: true})
	if err != nil {
		t.Fatalf("compare trees: %v", err)
	}
	reportDiffs(t, what+": tablespace ts1", diffs)
}

func reportDiffs(t *testing.T, what string, diffs []string) {
	t.Helper()
	if len(diffs) > 40 {
		diffs = append(diffs[:40], "...")
	}
	if len(diffs) > 0 {
		t.Errorf("%s: the copy differs from the source in %d ways:\n%s", what, len(diffs), strings.Join(diffs, "\n"))
	}
}

// allPagesGood fails the test unless the server on c reads every page of
// every relation of every database without a checksum failure: with data
// checksums on, a page whose checksum is wrong raises an error when it is
// read into shared buffers (pg_prewarm's "buffer" mode reads each block
// so), and pg_stat_database counts it. A page already in shared buffers
// was checked when it was read from the copy.
func allPagesGood(t *testing.T, c *scratch.Cluster) {
	t.Helper()
	ctx := ctxFor(t, 3*time.Minute)
	if s := query(t, c, "SHOW data_checksums"); s != "on" {
		t.Fatalf("the premise: the copy has data checksums (initdb -k), SHOW data_checksums = %q", s)
	}
	// template0 takes no connections: the copy is a scratch cluster.
	execSQL(t, c, "ALTER DATABASE template0 ALLOW_CONNECTIONS true")
	dbs := strings.Split(query(t, c, "SELECT datname FROM pg_database ORDER BY datname"), "\n")
	var rels, blocks int64
	for _, db := range dbs {
		r, b, err := readEveryPage(ctx, c, db)
		if err != nil {
			t.Errorf("database %s of the copy: every page reads without a checksum failure: %v", db, err)
		}
		rels, blocks = rels+r, blocks+b
	}
	if n := query(t, c, "SELECT coalesce(sum(checksum_failures), 0) FROM pg_stat_database"); n != "0" {
		t.Errorf("pg_stat_database counts no checksum failure on the copy, got %s", n)
	}
	if blocks < 1000 {
		t.Errorf("the premise: reading every page reads the pgbench tables too: only %d blocks read", blocks)
	}
	t.Logf("the copy's server read %d blocks of %d relation forks in %d databases: no checksum failure", blocks, rels, len(dbs))
}

// readEveryPage reads every block of every fork of every relation of
// database db through shared buffers, and returns how many forks and
// blocks it read.
func readEveryPage(ctx context.Context, c *scratch.Cluster, db string) (forks, blocks int64, err error) {
	conn, err := c.Connect(ctx, db)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_prewarm"); err != nil {
		return 0, 0, fmt.Errorf("CREATE EXTENSION pg_prewarm: %w", err)
	}
	err = conn.QueryRow(ctx, `
		SELECT count(*), coalesce(sum(pg_prewarm(c.oid, 'buffer', f.fork)), 0)::bigint
		FROM pg_class c, (VALUES ('main'), ('fsm'), ('vm'), ('init')) AS f(fork)
		WHERE c.relkind IN ('r', 'i', 't', 'm', 'S') AND pg_relation_size(c.oid, f.fork) > 0`).Scan(&forks, &blocks)
	return forks, blocks, err
}

// waitChecksumFailures returns the checksum failures pg_stat_database
// counts, waiting (up to a minute) for one: 13 and 14 report them through
// the statistics collector, a moment later.
func waitChecksumFailures(t *testing.T, c *scratch.Cluster) int64 {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s := query(t, c, "SELECT coalesce(sum(checksum_failures), 0) FROM pg_stat_database")
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("checksum_failures: %q", s)
		}
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// snapshotSpace returns a new directory for snapshots of a source: on
// tmpfs (/dev/shm) where there is one, so that cp -a writes nothing to the
// disk the copies under test are written to; else in the test's temporary
// directory.
func snapshotSpace(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "pgtwopass-it-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(d); err != nil {
			t.Errorf("remove the snapshots: %v", err)
		}
	})
	return d
}

// mkdirOwnedLike makes dir with mode 0700 and the owner of like.
func mkdirOwnedLike(t *testing.T, dir, like string) {
	t.Helper()
	st, err := os.Stat(like)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	o := st.Sys().(*syscall.Stat_t)
	if err := os.Chown(dir, int(o.Uid), int(o.Gid)); err != nil {
		t.Fatal(err)
	}
}

// writeOwnedLike writes a file with mode 0600 and the owner of like.
func writeOwnedLike(t *testing.T, file, like, text string) {
	t.Helper()
	st, err := os.Stat(like)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	o := st.Sys().(*syscall.Stat_t)
	if err := os.Chown(file, int(o.Uid), int(o.Gid)); err != nil {
		t.Fatal(err)
	}
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// shq quotes s for /bin/sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
