package integration

// Crash safety and faults: pgtwopass killed (SIGKILL) at many points of a
// live and of a cold pass, interrupted by SIGINT and SIGTERM, failing on a
// full disk, on write and read errors, and reading a damaged manifest. Each
// time the copy must be left unsealed (it cannot be started) and the next
// finish must converge to a byte-identical copy that passes pg_checksums.
// docs/faults.md describes what the user sees in each case.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	stdsync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// TestKilledPassesConverge kills prepare and finish with SIGKILL after K
// blocks written or K files completed, for many K, on a copy with real
// changes to copy (updates of every pgbench table since its last pass). A killed pass has no
// chance to clean up: the copy must be left unsealed, and the next finish
// must converge. Each kill point starts from the same snapshot of the copy:
// an ext4 image, loop-mounted, so that the copy keeps the inodes and ctimes
// its manifest records (cp -a would make every record untrusted and hide the
// resume path that trusts them).
func TestKilledPassesConverge(t *testing.T) {
	needPG(t)
	needRoot(t, "loop-mounts ext4 images to snapshot copies with their inodes and ctimes")
	t.Parallel()
	src := newCluster(t, 1)
	base := pgTempDir(t)
	snapImg := filepath.Join(base, "snap.img")
	newImage(t, snapImg, 384)
	snap := filepath.Join(base, "snap")
	unmount := mountImage(t, snapImg, snap)
	// Two copies of the same state of the source: one sealed by finish, one
	// left by prepare. Then changes since their last pass.
	mustRun(t, "finish", "--no-stop", src.Dir, filepath.Join(snap, "sealed"))
	mustRun(t, "prepare", src.Dir, filepath.Join(snap, "prepared"))
	// The same changes on every run, whatever the machine's speed (a timed
	// pgbench load on a busy machine left too little work for the kill
	// points): every page of pgbench_accounts, the other pgbench tables,
	// the commit log and the WAL.
	startCluster(t, src)
	for _, sql := range []string{
		"UPDATE pgbench_accounts SET abalance = abalance + 1",
		"UPDATE pgbench_branches SET bbalance = bbalance + 1",
		"UPDATE pgbench_tellers SET tbalance = tbalance + 1",
		"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1 + g % 10, 1, g, 1, now() FROM generate_series(1, 20000) g",
	} {
		execSQL(t, src, sql)
	}
	stopCluster(t, src)
	unmount()

	// totals[cmd] is what the pass does when nothing kills it.
	totals := map[string]passJSON{}
	total := func(t *testing.T, cmd string) passJSON {
		p, ok := totals[cmd]
		if !ok {
			t.Fatalf("test order: the %s pass beyond every kill point runs first", cmd)
		}
		return p
	}
	type killPoint struct {
		cmd  string // prepare or finish
		snap string // prepared or sealed
		what string // blocks, files, external
		at   string // where it kills, for the subtest's name
		k    func(t *testing.T) int64
	}
	fixed := func(n int64) func(*testing.T) int64 { return func(*testing.T) int64 { return n } }
	lastFile := func(cmd string) func(*testing.T) int64 {
		return func(t *testing.T) int64 { return total(t, cmd).FilesExamined }
	}
	lastRun := func(cmd string) func(*testing.T) int64 {
		return func(t *testing.T) int64 { return max(total(t, cmd).BlocksWritten-1, 0) }
	}
	const beyond = 1 << 40
	var points []killPoint
	for _, cmd := range []string{"finish", "prepare"} {
		points = append(points, killPoint{cmd, "prepared", "blocks", "never", fixed(beyond)})
	}
	for _, cmd := range []string{"prepare", "finish"} {
		for _, k := range []int64{0, 1, 10, 100, 1000, 5000} {
			points = append(points, killPoint{cmd, "prepared", "blocks", itoa(k), fixed(k)})
		}
		points = append(points, killPoint{cmd, "prepared", "blocks", "last run", lastRun(cmd)})
		for _, k := range []int64{1, 5, 50} {
			points = append(points, killPoint{cmd, "prepared", "files", itoa(k), fixed(k)})
		}
		points = append(points, killPoint{cmd, "prepared", "files", "last", lastFile(cmd)})
	}
	points = append(points,
		killPoint{"finish", "sealed", "blocks", "0", fixed(0)},
		killPoint{"finish", "sealed", "blocks", "100", fixed(100)},
		killPoint{"finish", "sealed", "files", "last", lastFile("finish")},
		killPoint{"prepare", "sealed", "blocks", "10", fixed(10)},
		killPoint{"prepare", "sealed", "files", "1", fixed(1)},
		killPoint{"finish", "prepared", "external", "300ms", fixed(300)},
		// A live pass over a sealed copy of a stopped source has little to
		// read and may end within 300 ms: it is killed from outside as
		// soon as it has unsealed the copy (its first write).
		killPoint{"prepare", "sealed", "external", "after unseal", fixed(0)},
	)

	var (
		mu     sync.Mutex // guards debris
		debris []string
	)
	runPoint := func(t *testing.T, p killPoint) {
		k := p.k(t)
		dest := filepath.Join(pointImage(t, base, snapImg), p.snap)
		// One live pass: the kill points count blocks and files of one pass.
		args := []string{p.cmd, "--max-passes", "1", "--json", "--log-format", "json", src.Dir, dest}
		if p.cmd == "finish" {
			args = []string{p.cmd, "--no-stop", "--json", "--log-format", "json", src.Dir, dest}
		}
		var r procResult
		var fault string
		switch p.what {
		case "external":
			// A real kill -9 from outside, wherever the pass happens to be.
			fault = fmt.Sprintf("kill -9 after %d ms", k)
			bg := startWith(t, runOpts{env: []string{"PGTWOPASS_FAULT_FILE_DELAY=20ms"}}, args...)
			if p.at == "after unseal" {
				fault = "kill -9 once it unsealed the copy"
				if !bg.waitFor("unsealed the copy", runTimeout) {
					t.Fatalf("test premise: %s unseals the copy it then writes, stderr:\n%s", p.cmd, bg.stderrSoFar())
				}
			} else {
				time.Sleep(time.Duration(k) * time.Millisecond)
			}
			bg.signal(syscall.SIGKILL)
			r = bg.wait()
		case "blocks":
			fault = "PGTWOPASS_FAULT_KILL_AFTER_BLOCKS=" + itoa(k)
			r = runWith(t, runOpts{env: []string{fault}}, args...)
		case "files":
			fault = "PGTWOPASS_FAULT_KILL_AFTER_FILES=" + itoa(k)
			r = runWith(t, runOpts{env: []string{fault}}, args...)
		}
		t.Logf("%s %s: %s", p.cmd, fault, strings.SplitN(r.String(), "\n", 2)[0])

		// Where the kill point lies within the pass's work: before its
		// last write or file it must kill; past it the pass completes.
		mustKill := true
		if p.snap == "prepared" && k >= beyond/2 {
			mustKill = false
		} else if p.snap == "prepared" && k != 0 {
			if tot, ok := totals[p.cmd]; ok {
				switch p.what {
				case "blocks":
					// The hook fires before a run of up to 512 blocks.
					mustKill = k < tot.BlocksWritten-512
				case "files":
					mustKill = k <= tot.FilesExamined
				}
			}
		} else if p.snap == "sealed" && p.what == "files" && k > 1 {
			mustKill = false // the sealed copy's pass may examine fewer files
		}

		switch {
		case r.killed():
			if sealed(t, dest) {
				t.Errorf("%s %s: a pass killed before its end leaves the copy unsealed (no global/pg_control, so PostgreSQL cannot start it), but global/pg_control is there", p.cmd, fault)
			}
			var st statusJSON
			runJSON(t, &st, "status", "--json", dest)
			if st.Sealed == nil || *st.Sealed {
				t.Errorf("%s %s: status of a copy left by a killed pass says sealed = %v, want false", p.cmd, fault, st.Sealed)
			}
		case r.code == 0 && !mustKill:
			// The kill point lies past the last write or file: the pass
			// completed, and its result must be what a pass leaves.
			var s summaryJSON
			if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.Passes) == 0 {
				t.Fatalf("%s --json prints its passes: %v\n%s", p.cmd, err, r.stdout)
			}
			pass := s.Passes[len(s.Passes)-1]
			if _, ok := totals[p.cmd]; !ok && p.snap == "prepared" {
				totals[p.cmd] = pass
				t.Logf("%s beyond every kill point: %d blocks written, %d files examined", p.cmd, pass.BlocksWritten, pass.FilesExamined)
				if pass.BlocksWritten < 2000 || pass.FilesExamined < 5 {
					t.Fatalf("test premise: the load since the last pass leaves work for every kill point (at least 2000 blocks and 5 files), got %d blocks, %d files", pass.BlocksWritten, pass.FilesExamined)
				}
			}
			if want := p.cmd == "finish"; sealed(t, dest) != want {
				t.Errorf("a completed %s leaves the copy sealed = %v, got %v", p.cmd, want, !want)
			}
		case r.code == 0:
			t.Fatalf("%s %s: the pass has more work than that and must die by SIGKILL, but it completed\n%s", p.cmd, fault, r)
		default:
			t.Fatalf("%s %s: the pass dies by SIGKILL (or completes, past its last write), got %s", p.cmd, fault, r)
		}

		converges(t, fmt.Sprintf("%s, %s", p.cmd, fault), src.Dir, dest)
		if left := metaDebris(t, dest); len(left) > 0 {
			mu.Lock()
			debris = append(debris, fmt.Sprintf("%s %s: %s", p.cmd, fault, strings.Join(left, ", ")))
			mu.Unlock()
		}
	}
	name := func(p killPoint) string { return fmt.Sprintf("%s %s copy %s %s", p.cmd, p.snap, p.what, p.at) }
	// The passes beyond every kill point first: the other points' bounds
	// come from them (totals); then the kill points, side by side, each on
	// its own image.
	for _, p := range points[:2] {
		t.Run(name(p), func(t *testing.T) { runPoint(t, p) })
	}
	t.Run("kill points", func(t *testing.T) {
		for _, p := range points[2:] {
			t.Run(name(p), func(t *testing.T) {
				t.Parallel()
				runPoint(t, p)
			})
		}
	})

	// The one point the hooks cannot reach: killed after the manifest was
	// committed, before the seal renamed pg_control into global/. Simulated
	// by undoing the seal's rename of a finished copy.
	t.Run("between the manifest commit and the seal", func(t *testing.T) {
		dest := filepath.Join(pointImage(t, base, snapImg), "prepared")
		mustRun(t, "finish", "--no-stop", src.Dir, dest)
		if err := os.Rename(filepath.Join(dest, "global", "pg_control"), filepath.Join(dest, ".pgtwopass", "pg_control")); err != nil {
			t.Fatal(err)
		}
		var st statusJSON
		runJSON(t, &st, "status", "--json", dest)
		if st.Sealed == nil || *st.Sealed {
			t.Errorf("a copy whose manifest says 'cold complete' but whose pg_control is still held is not sealed: status says sealed = %v", st.Sealed)
		}
		converges(t, "killed between the manifest commit and the seal", src.Dir, dest)
	})

	if len(debris) > 0 {
		t.Errorf("a killed pass leaves no debris in DEST/.pgtwopass that no later run removes (a temporary manifest is as large as the manifest, 2 GiB for 1 TB; it is owned by root; and pg_verifybackup -n rejects a copy holding files its backup_manifest does not list). After a kill and a completed finish, %d of %d copies still hold:\n%s",
			len(debris), len(points), strings.Join(debris, "\n"))
	}
}

// TestSignalsDuringColdPass: SIGINT or SIGTERM while the cold pass runs
// stops it at a clean point: exit 1, "interrupted" with a hint, the copy
// unsealed, the server started again with --restart and left stopped (and
// said so) without it. A second pgtwopass on the same copy meanwhile is
// refused by the lock. The next finish converges.
func TestSignalsDuringColdPass(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	startCluster(t, src)
	dest := filepath.Join(pgTempDir(t), "copy")
	mustRun(t, "prepare", src.Dir, dest)
	startLog := serverLogFile(t)
	slow := runOpts{env: []string{"PGTWOPASS_FAULT_FILE_DELAY=20ms"}}

	for _, tc := range []struct {
		name    string
		sig     syscall.Signal
		restart bool
	}{
		{"SIGINT with --restart", syscall.SIGINT, true},
		{"SIGTERM with --restart", syscall.SIGTERM, true},
		{"SIGTERM without --restart", syscall.SIGTERM, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !src.Running() {
				t.Fatalf("test premise: the source server runs before finish")
			}
			args := []string{"finish", "--json", "--log-format", "json", "--start-log", startLog, src.Dir, dest}
			if tc.restart {
				args = append(args[:1], append([]string{"--restart"}, args[1:]...)...)
			}
			bg := startWith(t, slow, args...)
			if !bg.waitFor(`"msg":"cold pass started"`, time.Minute) {
				t.Fatalf("finish logs 'cold pass started' (--log-format json):\n%s", bg.stderrSoFar())
			}
			time.Sleep(100 * time.Millisecond)
			if !tc.restart {
				// Meanwhile, a second pgtwopass on the same copy.
				r := runWith(t, runOpts{}, "prepare", "--log-format", "json", src.Dir, dest)
				if r.code != 1 || !strings.Contains(r.stderr, "another pgtwopass is working on DEST") {
					t.Errorf("a second pgtwopass on a copy that one is working on is refused by the lock: exit 1 and 'another pgtwopass is working on DEST', got %s", r)
				}
			}
			bg.signal(tc.sig)
			r := bg.wait()
			if r.code != 1 {
				t.Errorf("finish interrupted by %v exits 1, got %s", tc.sig, r)
			}
			errLines := stderrLines(r.stderr, "pgtwopass: error:")
			if len(errLines) != 1 || !strings.Contains(errLines[0], "interrupted") {
				t.Errorf("finish interrupted by %v says so on one 'pgtwopass: error:' line containing 'interrupted', got %q\n%s", tc.sig, errLines, r.stderr)
			}
			if h := stderrLines(r.stderr, "pgtwopass: hint:"); len(h) != 1 || !strings.Contains(h[0], "run the same command again") {
				t.Errorf("an interrupted finish tells how to recover on a 'pgtwopass: hint:' line (run the same command again), got %q", h)
			}
			if strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("an interrupted finish exits cleanly, without a goroutine dump:\n%s", r.stderr)
			}
			if sealed(t, dest) {
				t.Errorf("a cold pass interrupted by %v leaves the copy unsealed, but global/pg_control is installed", tc.sig)
			}
			var s struct {
				OK        bool  `json:"ok"`
				Stopped   *bool `json:"stopped"`
				Restarted *bool `json:"restarted"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
				t.Errorf("an interrupted finish --json still prints one JSON object: %v\n%s", err, r.stdout)
			} else if s.OK || s.Stopped == nil || !*s.Stopped || s.Restarted == nil || *s.Restarted != tc.restart {
				t.Errorf("interrupted finish --json: ok=%v stopped=%v restarted=%v, want false, true, %v", s.OK, s.Stopped, s.Restarted, tc.restart)
			}
			if tc.restart {
				if !src.Running() {
					t.Fatalf("finish --restart starts the server again after an interrupted cold pass, but it is down")
				}
				if got := query(t, src, "SELECT count(*) FROM pgbench_branches"); got != "1" {
					t.Errorf("the restarted source answers queries: %q", got)
				}
			} else {
				if src.Running() {
					t.Errorf("finish without --restart leaves the server stopped after an interrupted cold pass, but it runs")
				}
				if !strings.Contains(r.stderr, "the source server is stopped") {
					t.Errorf("an interrupted finish without --restart says the source server is stopped:\n%s", r.stderr)
				}
			}
		})
	}
	if src.Running() {
		stopCluster(t, src)
	}
	converges(t, "interrupted cold passes", src.Dir, dest)
}

// TestColdPassFailures: a full disk, a write error and a read error end
// finish with exit 1 and a message naming the file and the error; the copy
// stays unsealed, the source is never written, with --restart the server
// runs again afterwards, and a rerun without the fault converges.
//
// finish on a running server runs a live pass after its CHECKPOINT, before
// the stop: a full disk or a write error then fails that live pass and the
// server is never stopped. A read error on a file that the live pass trusts
// by its stat (PG_VERSION) fails the cold pass itself, after the stop.
func TestColdPassFailures(t *testing.T) {
	needRoot(t, "mounts a small tmpfs to fill the disk")
	t.Parallel()
	src := newCluster(t, 1)
	startLog := serverLogFile(t)
	probe := dataQueries[len(dataQueries)-1]

	// failWithRestart runs finish --restart on the running source with a
	// fault, and checks the failure and that the server runs afterwards with
	// its data unchanged. It returns the log.
	failWithRestart := func(t *testing.T, fault, dest, where, what string, env ...string) string {
		t.Helper()
		startCluster(t, src)
		want := query(t, src, probe)
		r := runWith(t, runOpts{env: env}, "finish", "--restart", "--start-log", startLog, "--log-format", "json", src.Dir, dest)
		checkFailure(t, r, fault+", finish --restart", dest, where, what)
		if !src.Running() {
			t.Fatalf("%s: after finish --restart fails, the source server runs (started again, or never stopped), but it is down\n%s", fault, r.stderr)
		}
		stopped := strings.Contains(r.stderr, `"msg":"server stopped"`)
		if started := strings.Contains(r.stderr, `"msg":"server started"`); stopped && !started {
			t.Errorf("%s: finish --restart that stopped the server logs 'server started' after the failure:\n%s", fault, r.stderr)
		}
		t.Logf("%s: the server was stopped and restarted: %v", fault, stopped)
		if got := query(t, src, probe); got != want {
			t.Errorf("%s: a failed finish --restart leaves the source's data as it was: %s before, %s after", fault, want, got)
		}
		stopCluster(t, src)
		return r.stderr
	}

	t.Run("ENOSPC", func(t *testing.T) {
		srcSize := treeSize(t, src.Dir)
		mnt := filepath.Join(pgTempDir(t), "small")
		mountTmpfs(t, mnt, srcSize*6/10)
		dest := filepath.Join(mnt, "copy")

		// The source stopped: it must come out of the failure bit for bit.
		before := hashTree(t, src.Dir)
		r := runWith(t, runOpts{}, "finish", "--no-stop", "--log-format", "json", src.Dir, dest)
		checkFailure(t, r, "a full disk during the cold pass", dest, dest+"/", "no space left on device")
		if after := hashTree(t, src.Dir); after != before {
			t.Errorf("a cold pass that fails on a full disk writes nothing in SRC, but its tree hash changed")
		}
		failWithRestart(t, "a full disk", dest, dest+"/", "no space left on device")

		remountTmpfs(t, mnt, srcSize*3)
		converges(t, "a full disk, then room again", src.Dir, dest)
	})

	t.Run("EIO writing", func(t *testing.T) {
		dest := filepath.Join(pgTempDir(t), "copy")
		before := hashTree(t, src.Dir)
		r := runWith(t, runOpts{env: []string{"PGTWOPASS_FAULT_EIO_AFTER_BLOCKS=50"}}, "finish", "--no-stop", "--log-format", "json", src.Dir, dest)
		checkFailure(t, r, "a write error during the cold pass", dest, dest+"/", "input/output error")
		if hashTree(t, src.Dir) != before {
			t.Errorf("a cold pass that fails to write writes nothing in SRC, but its tree hash changed")
		}
		failWithRestart(t, "a write error", dest, dest+"/", "input/output error", "PGTWOPASS_FAULT_EIO_AFTER_BLOCKS=50")
		converges(t, "a write error", src.Dir, dest)
	})

	t.Run("EIO reading the source", func(t *testing.T) {
		dest := filepath.Join(pgTempDir(t), "copy")
		mustRun(t, "prepare", src.Dir, dest)
		before := hashTree(t, src.Dir)
		r := runWith(t, runOpts{env: []string{"PGTWOPASS_FAULT_EIO_READ=/1259"}}, "finish", "--no-stop", "--log-format", "json", src.Dir, dest)
		checkFailure(t, r, "a read error on a source file", dest, src.Dir+"/base/", "/1259: input/output error")
		if hashTree(t, src.Dir) != before {
			t.Errorf("a cold pass that fails to read the source writes nothing in SRC, but its tree hash changed")
		}
		// PG_VERSION never changes: the live pass trusts it by its stat, the
		// cold pass reads it, so the failure comes after the stop.
		log := failWithRestart(t, "a read error in the cold pass", dest, src.Dir+"/", "PG_VERSION: input/output error", "PGTWOPASS_FAULT_EIO_READ=/PG_VERSION")
		if !strings.Contains(log, `"msg":"server stopped"`) || !strings.Contains(log, `"msg":"server started"`) {
			t.Errorf("a read error only the cold pass meets comes after the stop, and --restart starts the server again: the log shows both\n%s", log)
		}
		converges(t, "a read error", src.Dir, dest)
	})

	t.Run("unreadable source file", func(t *testing.T) {
		// A root-owned file in the postgres-owned cluster, and pgtwopass run
		// as postgres: a real permission error, no injected fault.
		asPostgres := runOpts{cred: postgresCred(t)}
		odd := filepath.Join(src.Dir, "root-only.conf")
		if err := os.WriteFile(odd, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(odd)
		destBase := pgTempDir(t)
		if err := scratch.Chown(destBase, scratch.Options{BinDir: pgBinDir}); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(destBase, "copy")

		before := hashTree(t, src.Dir)
		r := runWith(t, asPostgres, "finish", "--no-stop", "--log-format", "json", src.Dir, dest)
		checkFailure(t, r, "an unreadable source file in the cold pass", dest, odd, "permission denied")
		if hashTree(t, src.Dir) != before {
			t.Errorf("a cold pass that cannot read a source file writes nothing in SRC, but its tree hash changed")
		}

		// The server running: the live pass before the stop meets the file,
		// and the server is never stopped.
		startCluster(t, src)
		r = runWith(t, asPostgres, "finish", "--restart", "--start-log", startLog, "--log-format", "json", src.Dir, dest)
		checkFailure(t, r, "an unreadable source file, finish --restart", dest, odd, "permission denied")
		if !src.Running() {
			t.Fatalf("after finish --restart fails on an unreadable source file, the source server runs, but it is down\n%s", r.stderr)
		}
		stopCluster(t, src)
		removeFile(t, odd)
		converges(t, "an unreadable source file, then removed", src.Dir, dest)
	})
}

// TestCrashStoppedSource: a source whose server died without a clean
// shutdown (pg_ctl stop -m immediate here, as after a kill -9 of the
// postmaster or a power loss) is refused by finish without --allow-crashed
// (TestBadInput). With --allow-crashed, finish copies it with a warning; the
// copy, like the source, runs crash recovery when it starts, replays the
// changes that only the WAL holds, and holds the same data.
func TestCrashStoppedSource(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 0)
	startCluster(t, src)
	execSQL(t, src, "CREATE TABLE t AS SELECT g AS id, 0 AS v FROM generate_series(1, 50000) g")
	execSQL(t, src, "CHECKPOINT")
	execSQL(t, src, "UPDATE t SET v = v + 7 WHERE id % 11 = 0")
	if err := src.Stop(ctxFor(t, time.Minute), "immediate"); err != nil {
		t.Fatalf("stop the source with -m immediate: %v", err)
	}
	dest := filepath.Join(pgTempDir(t), "copy")
	r := runWith(t, runOpts{}, "finish", "--no-stop", "--allow-crashed", "--log-format", "json", src.Dir, dest)
	if r.code != 0 {
		t.Fatalf("finish --allow-crashed copies a crash-stopped source: %s", r)
	}
	if w := strings.Join(warnings(t, r.stderr), "\n"); !strings.Contains(w, "not shut down cleanly") {
		t.Errorf("finish --allow-crashed warns that the source was not shut down cleanly; warnings: %q", w)
	}
	if !sealed(t, dest) {
		t.Errorf("finish --allow-crashed seals the copy")
	}
	sameTree(t, "finish --allow-crashed of a crash-stopped source", src.Dir, dest)

	cp := openCopy(t, dest)
	if err := cp.Start(ctxFor(t, 3*time.Minute)); err != nil {
		t.Fatalf("the copy of a crash-stopped source starts (crash recovery): %v", err)
	}
	startCluster(t, src)
	const q = "SELECT count(*) || ' rows, sum ' || sum(v) || ', md5 ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t"
	want := query(t, src, q)
	if !strings.Contains(want, "50000 rows, sum 31815,") {
		t.Fatalf("test premise: the source's recovery replays the update that only the WAL held (4545 rows + 7), got %s", want)
	}
	if got := query(t, cp, q); got != want {
		t.Errorf("the copy of a crash-stopped source recovers to the source's data:\n  source: %s\n  copy:   %s", want, got)
	}
	if err := cp.Stop(ctxFor(t, time.Minute), "fast"); err != nil {
		t.Fatal(err)
	}
	checksumsOK(t, "the copy of a crash-stopped source, after its recovery", dest)
}

// TestDamagedManifest: a manifest truncated, with a bit flipped in a
// record, or with a bit flipped in its header is never trusted: finish
// warns about it, compares the copy's own bytes and converges; verify
// --manifest-only refuses it. Without the manifest's header and without the
// copy's pg_control nothing says which cluster the copy belongs to, and
// finish refuses it.
func TestDamagedManifest(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	base := pgTempDir(t)
	cases := []struct {
		name   string
		damage func(t *testing.T, manifest string, size int64)
		refuse bool
	}{
		{"truncated to half", func(t *testing.T, m string, size int64) { truncateFile(t, m, size/2) }, false},
		{"a bit flipped in a record", func(t *testing.T, m string, size int64) { flipBit(t, m, size/2) }, false},
		{"a bit flipped in the header", func(t *testing.T, m string, size int64) { flipBit(t, m, 1000) }, false},
		{"truncated to 10 bytes", func(t *testing.T, m string, size int64) { truncateFile(t, m, 10) }, false},
		{"missing", func(t *testing.T, m string, size int64) { removeFile(t, m) }, false},
		{"header damaged and no pg_control", func(t *testing.T, m string, size int64) {
			flipBit(t, m, 20)
			removeFile(t, filepath.Join(filepath.Dir(m), "pg_control"))
		}, true},
	}
	// One prepared copy per case, each trusted by its manifest (same inodes
	// and ctimes), then changes since the prepare: a damaged record that were
	// trusted could leave a wrong copy.
	for i := range cases {
		mustRun(t, "prepare", src.Dir, filepath.Join(base, "copy"+strconv.Itoa(i)))
	}
	startCluster(t, src)
	execSQL(t, src, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 7 = 0")
	stopCluster(t, src)

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(base, "copy"+strconv.Itoa(i))
			m := filepath.Join(dest, ".pgtwopass", "manifest")
			tc.damage(t, m, fileSize(t, m))

			if tc.name != "missing" {
				r := runWith(t, runOpts{}, "verify", "--manifest-only", "--log-format", "json", dest)
				if r.code != 1 || strings.Contains(r.stdout, "matches") {
					t.Errorf("verify --manifest-only never vouches for a copy with a damaged manifest (%s): exit 1, got %s", tc.name, r)
				}
				if h := stderrLines(r.stderr, "pgtwopass: hint:"); len(h) != 1 {
					t.Errorf("verify --manifest-only of a copy with a damaged manifest (%s) says what to do on a 'pgtwopass: hint:' line, got %q", tc.name, h)
				}
			}

			before := hashTree(t, dest)
			r := runWith(t, runOpts{}, "finish", "--no-stop", "--log-format", "json", src.Dir, dest)
			if tc.refuse {
				checkBadInput(t, r, []string{"finish", "--no-stop", src.Dir, dest}, "damaged manifest")
				if hashTree(t, dest) != before {
					t.Errorf("a refused copy is left untouched, but its tree hash changed")
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("finish on a copy whose manifest is %s rebuilds it from the copy's contents and completes, got %s", tc.name, r)
			}
			if w := warnings(t, r.stderr); !strings.Contains(strings.Join(w, "\n"), "manifest") {
				t.Errorf("finish on a copy whose manifest is %s warns about the manifest; warnings: %q", tc.name, w)
			}
			sameTree(t, "finish after the manifest was "+tc.name, src.Dir, dest)
			checksumsOK(t, "finish after the manifest was "+tc.name, dest)
			if out, _ := mustRun(t, "verify", "--manifest-only", dest); !strings.Contains(out, "matches") {
				t.Errorf("after finish rebuilt a damaged manifest, the copy matches it: %s", out)
			}
		})
	}
}

// TestDestinationDrift: a file of a finished copy changed behind
// pgtwopass's back with its size and mtime kept (a disk error, a restore
// from elsewhere, an editor that keeps times) no longer matches the stat its
// manifest record holds (ctime, inode), so the record is never trusted: the
// next finish compares the file with the copy's own bytes and repairs it, in
// the default cold pass (which would otherwise trust the record's hashes)
// and in the quick one (which would otherwise skip the file). Changes of
// mode or owner alone, a removed file and a stray file are repaired too.
// The repaired copy equals the source in every byte, mode, owner and mtime,
// passes pg_checksums, starts, and answers queries as the source does.
func TestDestinationDrift(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	startCluster(t, src)
	accounts := relationFile(t, src, "pgbench_accounts")
	branches := relationFile(t, src, "pgbench_branches")
	tellers := relationFile(t, src, "pgbench_tellers")
	stopCluster(t, src)
	dest := filepath.Join(pgTempDir(t), "copy")
	mustRun(t, "finish", "--no-stop", src.Dir, dest)
	in := func(rel string) string { return filepath.Join(dest, filepath.FromSlash(rel)) }
	quick := []string{"PGTWOPASS_FAULT_QUICK_MARGIN=1ms"}

	type drift struct {
		name  string
		quick bool // finish with --cold-pass=quick
		file  string
		make  func(t *testing.T)
		root  bool // needs root
	}
	drifts := []drift{
		{name: "a block zeroed, size and times kept", file: accounts, make: func(t *testing.T) { zeroBlock(t, in(accounts), 3) }},
		{name: "a block zeroed, size and times kept, quick cold pass", quick: true, file: accounts, make: func(t *testing.T) { zeroBlock(t, in(accounts), 11) }},
		{name: "the file replaced by another of the same size and times", file: branches, make: func(t *testing.T) { replaceKeepingStat(t, in(branches), 100) }},
		{name: "the file replaced by another of the same size and times, quick cold pass", quick: true, file: tellers, make: func(t *testing.T) { replaceKeepingStat(t, in(tellers), 200) }},
		{name: "the mode changed", file: accounts, make: func(t *testing.T) { chmod(t, in(accounts), 0o644) }},
		{name: "the mode changed, quick cold pass", quick: true, file: "PG_VERSION", make: func(t *testing.T) { chmod(t, in("PG_VERSION"), 0o666) }},
		{name: "a directory's mode changed", file: "base", make: func(t *testing.T) { chmod(t, in("base"), 0o755) }},
		{name: "the owner changed", root: true, file: branches, make: func(t *testing.T) { chownKeepingTimes(t, in(branches), 0, 0) }},
		{name: "the owner changed, quick cold pass", root: true, quick: true, file: "postgresql.conf", make: func(t *testing.T) { chownKeepingTimes(t, in("postgresql.conf"), 0, 0) }},
		{name: "a file removed", file: tellers, make: func(t *testing.T) { removeFile(t, in(tellers)) }},
		{name: "a stray file added", file: "base/1/99999", make: func(t *testing.T) {
			if err := os.WriteFile(in("base/1/99999"), make([]byte, 8192), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, d := range drifts {
		t.Run(d.name, func(t *testing.T) {
			if d.root && os.Geteuid() != 0 {
				t.Skip("needs root to change an owner")
			}
			d.make(t)
			// The premise, on the drifted entry alone.
			onlyFile := func(rel string) bool {
				return skipForCopy(rel) || rel != "." && rel != d.file && !strings.HasPrefix(d.file, rel+"/")
			}
			diffs, err := scratch.CompareTrees(src.Dir, dest, scratch.CompareOptions{Skip: onlyFile, Owners: true, Mtimes: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) == 0 || !strings.HasPrefix(diffs[0], d.file+": ") {
				t.Fatalf("test premise: the drift makes the copy differ from the source in %s, CompareTrees says %q", d.file, diffs)
			}
			for _, l := range diffs {
				if strings.Contains(l, "mtime") || strings.Contains(l, "size") {
					t.Fatalf("test premise: the drift keeps size and mtime, CompareTrees says %q", l)
				}
			}
			args := []string{"finish", "--no-stop", "--json", "--log-format", "json"}
			var env []string
			if d.quick {
				args, env = append(args, "--cold-pass=quick"), quick
			}
			r := runWith(t, runOpts{env: env}, append(args, src.Dir, dest)...)
			if r.code != 0 {
				t.Fatalf("finish after the copy drifted (%s) completes, got %s", d.name, r)
			}
			var s summaryJSON
			if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.Passes) != 1 {
				t.Fatalf("finish --no-stop --json prints one cold pass: %v\n%s", err, r.stdout)
			}
			if p := s.Passes[0]; d.quick && p.FilesSkipped < 100 {
				t.Fatalf("test premise: the quick cold pass skips the files whose stat it trusts (past a 1 ms horizon), but it skipped %d", p.FilesSkipped)
			}
			diffs, err = scratch.CompareTrees(src.Dir, dest, scratch.CompareOptions{Skip: skipForCopy, Owners: true, Mtimes: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Errorf("a copy that drifted (%s) is never trusted by its manifest record: the next finish repairs it, but the copy still differs from the source:\n%s", d.name, strings.Join(diffs, "\n"))
			}
		})
	}

	if out, _, code := run(t, "verify", "--manifest-only", dest); code != 0 {
		t.Errorf("after the repairs the copy matches its manifest: verify --manifest-only exits %d\n%s", code, out)
	}
	checksumsOK(t, "the copy repaired after drifts", dest)
	cp := openCopy(t, dest)
	if err := cp.Start(ctxFor(t, 3*time.Minute)); err != nil {
		t.Fatalf("the copy repaired after drifts starts: %v", err)
	}
	startCluster(t, src)
	sameData(t, src, cp)
}

// replaceKeepingStat replaces file with a new file (another inode) whose
// byte at off differs, with the same size, mode, owner, atime and mtime: a
// restore of the file from elsewhere.
func replaceKeepingStat(t *testing.T, file string, off int64) {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x5a
	tmp := file + ".restored"
	if err := os.WriteFile(tmp, b, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if os.Geteuid() == 0 {
		if err := os.Chown(tmp, int(sys.Uid), int(sys.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(tmp, time.Unix(sys.Atim.Sec, sys.Atim.Nsec), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// chmod changes path's mode; the mtime stays (only the ctime moves).
func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// chownKeepingTimes changes path's owner; the mtime stays.
func chownKeepingTimes(t *testing.T, path string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// ---- helpers of the fault tests ----

// needRoot skips a test that must run as root.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

// system runs a system program and fails the test if it fails.
func system(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// newImage makes a sparse file of sizeMiB holding an empty ext4 file system.
func newImage(t *testing.T, img string, sizeMiB int64) {
	t.Helper()
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(sizeMiB << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	system(t, "mkfs.ext4", "-q", "-F", img)
}

// mountImage loop-mounts img on dir (made if missing), lets the postgres
// user reach it, and unmounts it when the test ends or when the returned
// function is called.
func mountImage(t *testing.T, img, dir string) (unmount func()) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	system(t, "mount", "-o", "loop", img, dir)
	return unmountOnCleanup(t, dir)
}

// pointImage copies the snapshot image to a fresh image, mounts it, and
// returns the mount point; both go when the (sub)test ends.
func pointImage(t *testing.T, base, snapImg string) string {
	t.Helper()
	dir, err := os.MkdirTemp(base, "point-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "point.img")
	mnt := filepath.Join(dir, "point")
	t.Cleanup(func() { os.RemoveAll(dir) })
	system(t, "cp", "--sparse=always", snapImg, img)
	mountImage(t, img, mnt)
	return mnt
}

// mountTmpfs mounts a tmpfs of about size bytes on dir, unmounted when the
// test ends.
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	system(t, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dk,mode=0755", size>>10), "tmpfs", dir)
	unmountOnCleanup(t, dir)
}

func remountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	system(t, "mount", "-o", fmt.Sprintf("remount,size=%dk", size>>10), dir)
}

func unmountOnCleanup(t *testing.T, dir string) func() {
	t.Helper()
	if err := scratch.MakeTraversable(dir); err != nil {
		t.Fatal(err)
	}
	var once stdsync.Once
	unmount := func() {
		once.Do(func() {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", dir, err, out)
				exec.Command("umount", "-l", dir).Run()
			}
		})
	}
	t.Cleanup(unmount)
	return unmount
}

// pgTempDir returns a new temporary directory that the postgres user can
// reach (pg_checksums and pg_verifybackup run as postgres on copies in it).
func pgTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := scratch.MakeTraversable(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serverLogFile returns a server log path for --start-log that the postgres
// user can write, outside any data directory.
func serverLogFile(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := scratch.Chown(dir, scratch.Options{BinDir: pgBinDir}); err != nil {
		t.Fatal(err)
	}
	if err := scratch.MakeTraversable(dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "server.log")
}

// checkFailure fails the test unless a run failed as a fault during a pass
// should: exit 1, one error line naming a path under where and containing
// what, no panic, and the copy left unsealed.
func checkFailure(t *testing.T, r procResult, fault, dest, where, what string) {
	t.Helper()
	t.Logf("%s: exit %d: %s", fault, r.code, strings.Join(append(stderrLines(r.stderr, "pgtwopass: error:"), stderrLines(r.stderr, "pgtwopass: hint:")...), " | "))
	if r.code != 1 {
		t.Errorf("%s: exit 1 (failure), got %s", fault, r)
	}
	lines := stderrLines(r.stderr, "pgtwopass: error:")
	if len(lines) != 1 {
		t.Errorf("%s: one 'pgtwopass: error:' line, got %d:\n%s", fault, len(lines), r.stderr)
	} else if !strings.Contains(lines[0], where) || !strings.Contains(lines[0], what) {
		t.Errorf("%s: the error names the file (under %s) and the error (%q), got %q", fault, where, what, lines[0])
	}
	if h := stderrLines(r.stderr, "pgtwopass: hint:"); len(h) != 1 || !strings.Contains(h[0], "run the same command again") {
		t.Errorf("%s: a failed pass says how to recover on one 'pgtwopass: hint:' line (run the same command again), got %q", fault, h)
	}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("%s: a failed pass reports an error, not a panic:\n%s", fault, r.stderr)
	}
	if sealed(t, dest) {
		t.Errorf("%s: a failed cold pass leaves the copy unsealed, but global/pg_control is installed", fault)
	}
}

// metaDebris lists what DEST/.pgtwopass holds besides pgtwopass's own
// files: temporary files (named with a leading dot) left by a killed pass.
func metaDebris(t *testing.T, dest string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dest, ".pgtwopass"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, ".pgtwopass/"+e.Name())
		}
	}
	return out
}

// warnings returns the messages of the warn-level lines of a JSON log.
func warnings(t *testing.T, stderr string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var e struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Errorf("--log-format json writes one JSON object per line: %v: %q", err, l)
			continue
		}
		if e.Level == "warn" {
			out = append(out, e.Msg)
		}
	}
	return out
}

// treeSize adds up the sizes of the regular files under dir.
func treeSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func fileSize(t *testing.T, file string) int64 {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func truncateFile(t *testing.T, file string, size int64) {
	t.Helper()
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
}

func removeFile(t *testing.T, file string) {
	t.Helper()
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
}

// flipBit flips the lowest bit of the byte at off.
func flipBit(t *testing.T, file string, off int64) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if off >= int64(len(b)) {
		t.Fatalf("%s: offset %d is beyond its %d bytes", file, off, len(b))
	}
	b[off] ^= 1
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// cpA copies a tree with cp -a (owners, modes and times kept).
func cpA(t *testing.T, from, to string) {
	t.Helper()
	system(t, "cp", "-a", from, to)
}

// runOpts says how runWith and startWith run the binary.
type runOpts struct {
	env  []string            // extra environment, e.g. PGTWOPASS_FAULT_KILL_AFTER_BLOCKS=10
	dir  string              // working directory; "" keeps the test's
	cred *syscall.Credential // run as another OS user (as root)
	// ownGroup runs the binary in a process group of its own, as a shell
	// runs a foreground job: a signal to the group reaches its children too.
	ownGroup bool
}

// procResult is how one run of the binary ended.
type procResult struct {
	stdout, stderr string
	code           int            // exit status; -1 when a signal ended it
	signal         syscall.Signal // the signal that ended it; 0 when it exited
}

// killed reports whether the run died by SIGKILL.
func (r procResult) killed() bool { return r.signal == syscall.SIGKILL }

func (r procResult) String() string {
	how := "exit " + strconv.Itoa(r.code)
	if r.signal != 0 {
		how = "killed by " + r.signal.String()
	}
	return how + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// bgRun is a run of the binary in the background (startWith).
type bgRun struct {
	t     *testing.T
	args  []string
	cmd   *exec.Cmd
	out   bytes.Buffer
	mu    stdsync.Mutex
	errb  bytes.Buffer // stderr so far, under mu
	done  chan struct{}
	err   error // cmd.Wait's result, once done is closed
	start time.Time
}

// lockedWriter appends to a bgRun's stderr under its mutex.
type lockedWriter struct{ r *bgRun }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.errb.Write(p)
}

// startWith starts the binary in the background; wait collects it. The
// process is killed if the test ends first.
func startWith(t *testing.T, o runOpts, args ...string) *bgRun {
	t.Helper()
	r := &bgRun{t: t, args: args, done: make(chan struct{}), start: time.Now()}
	r.cmd = exec.Command(binary, args...)
	r.cmd.Env = append(append(os.Environ(), "LC_ALL=C", "LANG=C"), o.env...)
	r.cmd.Dir = o.dir
	if o.cred != nil || o.ownGroup {
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred, Setpgid: o.ownGroup}
	}
	r.cmd.Stdout, r.cmd.Stderr = &r.out, lockedWriter{r}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start pgtwopass %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// stderrSoFar returns what the run has written to stderr until now.
func (r *bgRun) stderrSoFar() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errb.String()
}

// waitFor waits until stderr contains s; false if the process exits or d
// passes first.
func (r *bgRun) waitFor(s string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(r.stderrSoFar(), s) {
		select {
		case <-r.done:
			return strings.Contains(r.stderrSoFar(), s)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// signalGroup sends sig to the process group of a run started with
// ownGroup: what a terminal's Ctrl-C does to its foreground job.
func (r *bgRun) signalGroup(sig syscall.Signal) {
	r.t.Helper()
	if err := syscall.Kill(-r.cmd.Process.Pid, sig); err != nil {
		r.t.Errorf("send %v to the process group of pgtwopass %s: %v\nstderr so far:\n%s", sig, strings.Join(r.args, " "), err, r.stderrSoFar())
	}
}

// signal sends sig to the process.
func (r *bgRun) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("send %v to pgtwopass %s: %v", sig, strings.Join(r.args, " "), err)
	}
}

// wait waits for the process (at most runTimeout) and says how it ended.
func (r *bgRun) wait() procResult {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(runTimeout):
		r.cmd.Process.Kill()
		<-r.done
		r.t.Fatalf("pgtwopass %s: timed out after %v\nstderr:\n%s", strings.Join(r.args, " "), runTimeout, r.stderrSoFar())
	}
	r.t.Logf("pgtwopass %s: %.1fs", strings.Join(r.args, " "), time.Since(r.start).Seconds())
	res := procResult{stdout: r.out.String(), stderr: r.stderrSoFar()}
	var ee *exec.ExitError
	switch {
	case r.err == nil:
	case errors.As(r.err, &ee):
		res.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.signal = ws.Signal()
		}
	default:
		r.t.Fatalf("pgtwopass %s: %v\nstderr:\n%s", strings.Join(r.args, " "), r.err, res.stderr)
	}
	return res
}

// runWith runs the binary to its end as o says and returns how it ended;
// unlike run it accepts any ending, a signal included.
func runWith(t *testing.T, o runOpts, args ...string) procResult {
	t.Helper()
	return startWith(t, o, args...).wait()
}

// sealed reports whether the copy in dest can be started: it has
// global/pg_control (PostgreSQL refuses to start without it).
func sealed(t *testing.T, dest string) bool {
	t.Helper()
	_, err := os.Lstat(filepath.Join(dest, "global", "pg_control"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// checksumsOK fails the test unless pg_checksums --check passes on dir.
func checksumsOK(t *testing.T, what, dir string) {
	t.Helper()
	if out, err := scratch.Checksums(ctxFor(t, 2*time.Minute), dir, scratch.Options{BinDir: pgBinDir}); err != nil {
		t.Errorf("%s: the copy passes pg_checksums --check: %v\n%s", what, err, out)
	}
}

// converges runs finish --no-stop without faults and fails the test unless
// the copy ends sealed, byte-identical to the stopped source, and passes
// pg_checksums.
func converges(t *testing.T, what, src, dest string) {
	t.Helper()
	r := runWith(t, runOpts{}, "finish", "--no-stop", "--log-format", "json", src, dest)
	if r.code != 0 {
		t.Fatalf("%s: rerunning finish --no-stop without faults completes the copy, got %s", what, r)
	}
	if !sealed(t, dest) {
		t.Errorf("%s: a completed finish seals the copy (global/pg_control installed)", what)
	}
	sameTree(t, what+", then finish again", src, dest)
	checksumsOK(t, what+", then finish again", dest)
}

// zeroBlock overwrites block blk (8 KiB) of file with zeros, keeping its
// size, atime and mtime: drift that only the ctime and the contents show.
func zeroBlock(t *testing.T, file string, blk int64) {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if (blk+1)*scratch.BlockSize > st.Size() {
		t.Fatalf("%s: block %d is beyond its %d bytes", file, blk, st.Size())
	}
	sys := st.Sys().(*syscall.Stat_t)
	atime := time.Unix(sys.Atim.Sec, sys.Atim.Nsec)
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, scratch.BlockSize), blk*scratch.BlockSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(file, atime, st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// postgresCred is the identity PostgreSQL's programs run with as root (the
// postgres OS user); nil when not root.
func postgresCred(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// pgProgram runs one of PostgreSQL's programs (e.g. pg_verifybackup) as the
// postgres OS user when root, and returns its combined output.
func pgProgram(t *testing.T, prog string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctxFor(t, 2*time.Minute), filepath.Join(pgBinDir, prog), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if cred := postgresCred(t); cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
