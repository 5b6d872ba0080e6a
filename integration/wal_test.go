package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// walRun is a WAL-guided finish and what it read.
type walRun struct {
	sum  summaryJSON
	read map[string][][2]int64 // source path -> byte ranges the cold pass read
}

// walFinish runs finish --cold-pass=wal (the server runs; no --restart, so
// that the copy can be compared with the stopped source) with the read log
// armed and env added (e.g. PGTWOPASS_FAULT_BEFORE_STOP), and requires it
// to succeed.
func walFinish(t *testing.T, src *scratch.Cluster, dest string, env []string, args ...string) walRun {
	t.Helper()
	log := filepath.Join(t.TempDir(), "reads")
	argv := append(append([]string{"finish", "--json", "--cold-pass=wal"}, args...), src.Dir, dest)
	r := runWith(t, runOpts{env: append([]string{"PGTWOPASS_FAULT_READ_LOG=" + log}, env...)}, argv...)
	if r.code != 0 {
		t.Fatalf("pgtwopass %s: want exit 0, got %s", strings.Join(argv, " "), r)
	}
	var w walRun
	if err := json.Unmarshal([]byte(r.stdout), &w.sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	w.read = map[string][][2]int64{}
	if f, err := os.Open(log); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) != 3 {
				continue
			}
			off, _ := strconv.ParseInt(fs[1], 10, 64)
			n, _ := strconv.ParseInt(fs[2], 10, 64)
			w.read[fs[0]] = append(w.read[fs[0]], [2]int64{off, n})
		}
		f.Close()
	}
	if strings.Contains(r.stderr, "falls back") {
		t.Logf("%s", stderrLines(r.stderr, "")[0])
	}
	return w
}

// cold returns the cold pass of the run.
func (w walRun) cold(t *testing.T) passJSON {
	t.Helper()
	for _, p := range w.sum.Passes {
		if p.Kind == "cold" {
			return p
		}
	}
	t.Fatalf("the run has no cold pass: %+v", w.sum.Passes)
	return passJSON{}
}

// crossCheck compares every block of the stopped source with the copy's
// state before the WAL-guided cold pass (before, a snapshot): every block
// that differed must have been read by the cold pass; the ones that were
// not are listed. Then the sealed copy must equal the source.
func (w walRun) crossCheck(t *testing.T, src, before, dest string) {
	t.Helper()
	w.crossCheckDir(t, src, before, dest, src)
	// pg_wal, which may be a link to another directory in the source.
	if real, err := filepath.EvalSymlinks(filepath.Join(src, "pg_wal")); err == nil && real != filepath.Join(src, "pg_wal") {
		w.crossCheckDir(t, real, filepath.Join(before, "pg_wal"), filepath.Join(dest, "pg_wal"), filepath.Join(src, "pg_wal"))
	}
}

// crossCheckDir is crossCheck of one directory tree, not following links:
// the blocks that differed must have been read, and the copy must equal
// the source now. logAs is the path by which the pass read src (through
// SRC's links: SRC/pg_wal, SRC/pg_tblspc/OID).
func (w walRun) crossCheckDir(t *testing.T, src, before, dest, logAs string) {
	t.Helper()
	var missed, differ []string
	filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		if skipForCopy(rel) || strings.HasPrefix(filepath.Base(rel), ".pgtwopass") {
			return nil
		}
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(before, rel))
		if err != nil {
			b = nil
		}
		for off := 0; off < len(a); off += 8192 {
			end := min(off+8192, len(a))
			if off < len(b) && end <= len(b) && string(a[off:end]) == string(b[off:end]) {
				continue
			}
			if !w.wasRead(filepath.Join(logAs, rel), int64(off)) {
				missed = append(missed, fmt.Sprintf("%s block %d", rel, off/8192))
			}
		}
		if c, err := os.ReadFile(filepath.Join(dest, rel)); err != nil || string(c) != string(a) {
			differ = append(differ, rel)
		}
		return nil
	})
	if len(differ) > 0 {
		t.Errorf("the copy sealed by the WAL-guided cold pass differs from the source in %d files: %v", len(differ), differ)
	}
	if len(missed) > 0 {
		if len(missed) > 20 {
			missed = append(missed[:20], "...")
		}
		t.Errorf("blocks that differed between the source and the copy before the WAL-guided cold pass, and that it did not read:\n%s", strings.Join(missed, "\n"))
	}
}

// readMatching is how many bytes the cold pass read of the files of the
// data directory src whose path relative to it matches re.
func (w walRun) readMatching(src string, re *regexp.Regexp) int64 {
	var n int64
	for p, rs := range w.read {
		if rel, err := filepath.Rel(src, p); err == nil && re.MatchString(filepath.ToSlash(rel)) {
			for _, r := range rs {
				n += r[1]
			}
		}
	}
	return n
}

// readUnder is how many bytes the cold pass read of the files below dir
// (as the read log names them).
func (w walRun) readUnder(dir string) int64 {
	var n int64
	for p, rs := range w.read {
		if strings.HasPrefix(p, dir+"/") {
			for _, r := range rs {
				n += r[1]
			}
		}
	}
	return n
}

func (w walRun) wasRead(path string, off int64) bool {
	for _, r := range w.read[path] {
		if off >= r[0] && off < r[0]+r[1] {
			return true
		}
	}
	return false
}

// snapshot copies dir (the copy, before the cold pass) for crossCheck.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	snap := filepath.Join(t.TempDir(), "snap")
	system(t, "cp", "-a", dir, snap)
	return snap
}

// TestWALGuidedColdPassUnderLoad: under a uniform pgbench load, finish
// --cold-pass=wal reads, of the relation files, only the blocks the WAL
// names: much less than the cluster, and every block that changed since the
// copy's last pass. The sealed copy equals the stopped source, passes
// pg_checksums, starts and answers as the source does.
func TestWALGuidedColdPassUnderLoad(t *testing.T) {
	needPG(t)
	t.Parallel()
	src := newCluster(t, 10)
	dest := filepath.Join(pgTempDir(t), "copy")
	startCluster(t, src)
	load, err := src.Load(ctxFor(t, 3*time.Minute), 4, 60)
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()
	mustRun(t, "prepare", src.Dir, dest)
	time.Sleep(2 * time.Second)
	before := filepath.Join(t.TempDir(), "before")
	// The copy as the catch-up pass leaves it: snapshot it right before
	// the stop.
	w := walFinish(t, src, dest, []string{"PGTWOPASS_FAULT_BEFORE_STOP=cp -a " + dest + " " + before})
	load.Stop()
	if w.sum.ColdPassMode != "wal" || w.sum.FallbackReason != "" {
		t.Fatalf("a cluster with data checksums under pgbench runs the WAL-guided cold pass: mode %q, fallback %q", w.sum.ColdPassMode, w.sum.FallbackReason)
	}
	cold := w.cold(t)
	total := dirBytes(t, src.Dir)
	t.Logf("the WAL-guided cold pass read %d of %d bytes (%.1f%%), wrote %d", cold.BytesRead, total, 100*float64(cold.BytesRead)/float64(total), cold.BytesWritten)
	w.logReads(t, src.Dir)
	// The relation files are what the WAL guides; pg_wal's segments are
	// read whole in every mode, as much as the load wrote or the
	// checkpoints recycled.
	base, readBase := dirBytes(t, filepath.Join(src.Dir, "base")), w.readUnder(filepath.Join(src.Dir, "base"))
	if readBase*4 > base {
		t.Errorf("the WAL-guided cold pass reads the blocks the WAL names, not the relation files: read %d of the %d bytes in base/", readBase, base)
	}
	// The prediction knows the mode: it counts what the WAL names, not the
	// cluster.
	if p := w.sum.PredictedReadBytes; p == nil || w.sum.PredictedWALBlocks == nil || *w.sum.PredictedWALBlocks == 0 {
		t.Errorf("a WAL-guided finish predicts from the blocks the WAL names: predicted_read_bytes %v, predicted_wal_blocks %v", p, w.sum.PredictedWALBlocks)
	} else if *p*2 > total {
		t.Errorf("a WAL-guided finish predicts reading what the WAL names, not the cluster: predicted %d of %d bytes (read %d)", *p, total, cold.BytesRead)
	} else {
		t.Logf("predicted read %d bytes (the WAL named %d blocks by then), read %d", *p, *w.sum.PredictedWALBlocks, cold.BytesRead)
	}
	w.crossCheck(t, src.Dir, before, dest)
	sameTree(t, "the copy sealed by the WAL-guided cold pass", src.Dir, dest)
	checksumsOK(t, "the WAL-guided copy", dest)
	// Its manifest I/O followed the changes: it left the manifest as the
	// catch-up pass wrote it, and committed a journal of what changed.
	mpath := filepath.Join(dest, ".pgtwopass", "manifest")
	mfi, jfi := statOrFail(t, mpath), statOrFail(t, mpath+".journal")
	t.Logf("manifest %d bytes, journal %d bytes (%d blocks written, %d files read)", mfi.Size(), jfi.Size(), cold.BlocksWritten, cold.FilesExamined)
	// The journal holds 16 bytes a block written (the files read whole
	// that changed are most of them here: the WAL), and a head a file read;
	// the manifest, 16 bytes a block of the cluster.
	if limit := 2196 + 32*cold.BlocksWritten + 512*cold.FilesExamined; jfi.Size()*3 > mfi.Size() || jfi.Size() > limit {
		t.Errorf("the WAL-guided cold pass commits a journal of the changes, much smaller than the manifest: %d bytes, manifest %d, at most %d for the blocks written",
			jfi.Size(), mfi.Size(), limit)
	}
	if before := statOrFail(t, filepath.Join(before, ".pgtwopass", "manifest")); !before.ModTime().Equal(mfi.ModTime()) || before.Size() != mfi.Size() {
		t.Errorf("the WAL-guided cold pass leaves the manifest as the catch-up pass wrote it")
	}
	// The sealed copy as it is, to see the next prepare compact it (the
	// copy itself is started below).
	sealedCopy := filepath.Join(pgTempDir(t), "sealed")
	system(t, "cp", "-a", dest, sealedCopy)
	cp := openCopy(t, dest)
	startCluster(t, cp)

	// After the cutover: the copy runs, the old source stays stopped;
	// verify --against-seal reads the source in full against the seal's
	// manifest, and finds a block changed since.
	if stdout, _, code := run(t, "verify", "--against-seal", src.Dir, dest); code != 0 {
		t.Errorf("verify --against-seal: the stopped source is what the copy was when sealed (exit 0), got %d:\n%s", code, stdout)
	}
	rel := "base/5/" + filepath.Base(firstFile(t, filepath.Join(src.Dir, "base", "5")))
	flipByte(t, filepath.Join(src.Dir, rel), 100)
	stdout, _, code := run(t, "verify", "--against-seal", src.Dir, dest)
	if code != 4 || !strings.Contains(stdout, rel) {
		t.Errorf("verify --against-seal finds a source block changed since the seal (exit 4, naming %s), got %d:\n%s", rel, code, stdout)
	}
	flipByte(t, filepath.Join(src.Dir, rel), 100)

	startCluster(t, src)
	sameData(t, src, cp)

	// The next prepare (a full commit) folds the journal into the
	// manifest and removes it; the copy still verifies against it.
	mustRun(t, "prepare", src.Dir, sealedCopy)
	if _, err := os.Stat(filepath.Join(sealedCopy, ".pgtwopass", "manifest.journal")); !os.IsNotExist(err) {
		t.Errorf("the prepare after a WAL-guided cold pass compacts its journal: none must be left (%v)", err)
	}
	if stdout, _, code := run(t, "verify", "--manifest-only", sealedCopy); code != 0 {
		t.Errorf("verify --manifest-only of the compacted copy: want exit 0, got %d:\n%s", code, stdout)
	}
}

// statOrFail stats path, failing the test if it cannot.
func statOrFail(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// firstFile returns a regular file of dir with a name of digits (a
// relation file), failing the test if there is none.
func firstFile(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil && fi.Size() > 8192 {
				return filepath.Join(dir, e.Name())
			}
		}
	}
	t.Fatalf("no relation file in %s", dir)
	return ""
}

// dirBytes is the size of the regular files below dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// logReads logs what the cold pass read, by directory.
func (w walRun) logReads(t *testing.T, src string) {
	t.Helper()
	by := map[string]int64{}
	for p, rs := range w.read {
		rel, _ := filepath.Rel(src, p)
		d := filepath.Dir(rel)
		for _, r := range rs {
			by[d] += r[1]
		}
	}
	t.Logf("bytes read by directory: %v", by)
}

// psqlCmd is a shell command that runs sql on c's server, for
// PGTWOPASS_FAULT_BEFORE_STOP.
func psqlCmd(c *scratch.Cluster, sql string) string {
	return fmt.Sprintf("%s -X -q -v ON_ERROR_STOP=1 %s -c %s >/dev/null", filepath.Join(pgBinDir, "psql"),
		shellQuoteArg(c.DSN("")), shellQuoteArg(sql))
}

func shellQuoteArg(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// walScenario is one workload of TestWALGuidedColdPassWorkloads.
type walScenario struct {
	name string
	// initdb are initdb's extra options; settings the server's (-c).
	initdb      []string
	noChecksums bool
	settings    []string
	// setup runs on the running source before the first prepare.
	setup []string
	// between runs after prepare, while the server runs (during the live
	// passes, before finish).
	between []string
	// beforeStop runs after finish's catch-up live pass, right before the
	// stop: after the last live pass, in the WAL the cold pass reads.
	beforeStop []string
	// wantReason is the fallback expected ("" for the WAL-guided pass).
	wantReason string
	// args are more options of finish.
	args func(t *testing.T, base string) []string
	// check, if set, checks the run further.
	check func(t *testing.T, w walRun, src string)
}

// TestWALGuidedColdPassWorkloads runs the WAL-guided cold pass after each
// kind of change the WAL covers, or covers only in part, and each premise
// that makes it fall back: every block that differed before the cold pass
// must be read (crossCheck), the copy must equal the stopped source, pass
// pg_checksums where it has checksums, start, and hold the same data.
func TestWALGuidedColdPassWorkloads(t *testing.T) {
	needPG(t)
	acct := "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 97 = 0"
	for _, sc := range []walScenario{
		{name: "hint bits, data checksums",
			setup:      []string{"CREATE TABLE h AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g WHERE false"},
			between:    []string{"INSERT INTO h SELECT g, md5(g::text) FROM generate_series(1, 100000) g"},
			beforeStop: []string{"SELECT count(*) FROM h", "SELECT count(*) FROM h WHERE v > 'f'"}},
		{name: "hint bits, wal_log_hints only", noChecksums: true, settings: []string{"wal_log_hints=on"},
			setup:      []string{"CREATE TABLE h (id int, v text)"},
			between:    []string{"INSERT INTO h SELECT g, md5(g::text) FROM generate_series(1, 100000) g"},
			beforeStop: []string{"SELECT count(*) FROM h"}},
		{name: "VACUUM that truncates, TRUNCATE", setup: []string{"CREATE TABLE v AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 50000) g", "CREATE TABLE tr AS SELECT g FROM generate_series(1, 10000) g"},
			between:    []string{"DELETE FROM v WHERE id > 10000", acct},
			beforeStop: []string{"VACUUM v", "TRUNCATE tr", "INSERT INTO tr VALUES (1)", acct}},
		{name: "CREATE DATABASE both strategies, DROP DATABASE", setup: []string{"CREATE DATABASE gone"},
			between:    []string{"CREATE DATABASE fc STRATEGY FILE_COPY", acct},
			beforeStop: []string{"CREATE DATABASE wl STRATEGY WAL_LOG", "DROP DATABASE gone", "CREATE DATABASE fc2 TEMPLATE template0 STRATEGY FILE_COPY"}},
		{name: "unlogged table, extension by COPY", setup: []string{"CREATE UNLOGGED TABLE u (id int, v text)", "CREATE TABLE ext (id int, v text)"},
			between:    []string{"INSERT INTO u SELECT g, md5(g::text) FROM generate_series(1, 20000) g"},
			beforeStop: []string{"INSERT INTO u SELECT g, 'later' FROM generate_series(1, 5000) g", "COPY ext (id) FROM PROGRAM 'seq 1 50000'", acct}},
		// One tuple of 700 bytes per page (fillfactor 10): 135000 pages,
		// 1 GiB in big's first file and 3928 pages in big.1. The updates
		// are HOT, in place, on pages of big.1; the INSERT extends big.1.
		{name: "a table over 1 GiB, updates in segment .1",
			// Vacuumed, on disk, and left alone by autovacuum: the live
			// passes copy it with its hint bits set, and only the updates
			// change it. The pause puts its last write more than the quick
			// cold pass's safe horizon (2 s) before prepare reads it, so
			// that its record stands for the blocks the WAL does not name
			// (a record read right after a write does not: the file is
			// read whole).
			setup: []string{"CREATE TABLE big (id int, pad text) WITH (fillfactor = 10, autovacuum_enabled = off)",
				"INSERT INTO big SELECT g, repeat('x', 700) FROM generate_series(1, 135000) g", "VACUUM big", "CHECKPOINT", "SELECT pg_sleep(2.5)"},
			between: []string{"UPDATE big SET id = id WHERE ctid >= '(131100,0)'::tid AND id % 3 = 0"},
			beforeStop: []string{"UPDATE big SET id = id WHERE ctid >= '(132000,0)'::tid AND id % 5 = 0",
				"INSERT INTO big SELECT g, repeat('y', 700) FROM generate_series(1, 50) g", acct},
			check: func(t *testing.T, w walRun, src string) {
				seg1 := w.readMatching(src, regexp.MustCompile(`^base/\d+/\d+\.1$`))
				if seg1 == 0 {
					t.Errorf("the WAL names blocks of a relation's segment .1, and the pass reads them there: read nothing of any *.1 file")
				}
				if base, read := dirBytes(t, filepath.Join(src, "base")), w.readUnder(filepath.Join(src, "base")); read*4 > base {
					t.Errorf("the WAL-guided cold pass reads the blocks the WAL names of a table over 1 GiB, not the table: read %d of the %d bytes in base/", read, base)
				}
			}},
		{name: "a checkpoint between the last live pass and the stop", beforeStop: []string{acct, "CHECKPOINT", acct}},
		{name: "more WAL than max_wal_size", settings: []string{"max_wal_size=32MB", "min_wal_size=32MB"},
			beforeStop: []string{"UPDATE pgbench_accounts SET abalance = abalance + 1", "UPDATE pgbench_accounts SET abalance = abalance + 1", "UPDATE pgbench_accounts SET abalance = abalance + 1", "CHECKPOINT", "UPDATE pgbench_accounts SET abalance = abalance + 1"}},
		{name: "a symlinked pg_wal and a tablespace", initdb: []string{"--waldir"}, setup: []string{"CREATE TABLESPACE ts LOCATION '@TS@'", "CREATE TABLE tst TABLESPACE ts AS SELECT g FROM generate_series(1, 20000) g"},
			between: []string{"UPDATE tst SET g = g + 1 WHERE g % 7 = 0"}, beforeStop: []string{"UPDATE tst SET g = g + 1 WHERE g % 5 = 0", acct},
			args: func(t *testing.T, base string) []string {
				return []string{"--tablespace-map", filepath.Join(base, "ts") + "=" + filepath.Join(base, "ts-copy")}
			}},
		{name: "no data checksums, no wal_log_hints: falls back", noChecksums: true, beforeStop: []string{acct}, wantReason: "wal_log_hints_off"},
		{name: "wal_level minimal: falls back", settings: []string{"wal_level=minimal", "max_wal_senders=0"}, beforeStop: []string{acct}, wantReason: "wal_level_minimal"},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			base := pgTempDir(t)
			o := clusterOptions(pgBinDir)
			initdb := sc.initdb
			if len(initdb) > 0 && initdb[0] == "--waldir" {
				wal := filepath.Join(base, "wal")
				system(t, "mkdir", wal)
				if err := scratch.Chown(wal, o); err != nil {
					t.Fatal(err)
				}
				initdb = []string{"--waldir", wal}
			}
			ts := filepath.Join(base, "ts")
			system(t, "mkdir", ts)
			if err := scratch.Chown(ts, o); err != nil {
				t.Fatal(err)
			}
			o.InitDBArgs, o.NoChecksums = initdb, sc.noChecksums
			src, err := scratch.InitDB(ctxFor(t, 3*time.Minute), filepath.Join(base, "src"), o)
			if err != nil {
				t.Fatalf("initdb %v: %v", initdb, err)
			}
			closeOnCleanup(t, src)
			if err := src.Start(ctxFor(t, 3*time.Minute), sc.settings...); err != nil {
				t.Fatal(err)
			}
			if err := src.PgbenchInit(ctxFor(t, 3*time.Minute), 1); err != nil {
				t.Fatal(err)
			}
			for _, sql := range sc.setup {
				execSQL(t, src, strings.ReplaceAll(sql, "@TS@", ts))
			}
			var args []string
			if sc.args != nil {
				args = sc.args(t, base)
			}
			dest := filepath.Join(base, "copy")
			mustRun(t, append(append([]string{"prepare"}, args...), src.Dir, dest)...)
			for _, sql := range sc.between {
				execSQL(t, src, sql)
			}
			before := filepath.Join(base, "before")
			var stop []string
			for _, sql := range sc.beforeStop {
				stop = append(stop, psqlCmd(src, sql))
			}
			stop = append(stop, "cp -a "+dest+" "+before)
			if sc.args != nil {
				stop = append(stop, "cp -a "+filepath.Join(base, "ts-copy")+" "+before+"-ts")
			}
			w := walFinish(t, src, dest, []string{"PGTWOPASS_FAULT_BEFORE_STOP=" + strings.Join(stop, " && ")}, args...)
			switch {
			case sc.wantReason == "" && (w.sum.ColdPassMode != "wal" || w.sum.FallbackReason != ""):
				t.Errorf("the WAL-guided cold pass runs: mode %q, fallback %q", w.sum.ColdPassMode, w.sum.FallbackReason)
			case sc.wantReason != "" && (w.sum.ColdPassMode != "checksum" || w.sum.FallbackReason != sc.wantReason):
				t.Errorf("the cold pass falls back to checksum, saying %q: mode %q, fallback %q", sc.wantReason, w.sum.ColdPassMode, w.sum.FallbackReason)
			}
			cold := w.cold(t)
			t.Logf("cold pass: read %d bytes, wrote %d", cold.BytesRead, cold.BytesWritten)
			if _, err := os.Stat(before); err != nil {
				t.Fatalf("test premise: the commands before the stop ran (the copy's snapshot is missing): %v", err)
			}
			if sc.check != nil {
				sc.check(t, w, src.Dir)
			}
			w.crossCheck(t, src.Dir, before, dest)
			if sc.args != nil {
				links, _ := os.ReadDir(filepath.Join(src.Dir, "pg_tblspc"))
				if len(links) != 1 {
					t.Fatalf("test premise: one tablespace, got %d", len(links))
				}
				oid := links[0].Name()
				w.crossCheckDir(t, filepath.Join(base, "ts"), before+"-ts", filepath.Join(base, "ts-copy"), filepath.Join(src.Dir, "pg_tblspc", oid))
			}
			if !sc.noChecksums {
				checksumsOK(t, "the WAL-guided copy", dest)
			}
			cp := openCopy(t, dest)
			if err := cp.Start(ctxFor(t, 3*time.Minute), sc.settings...); err != nil {
				t.Fatalf("the copy starts: %v", err)
			}
			startCluster(t, src)
			sameData(t, src, cp)
		})
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestWALGuidedColdPassKilledAndRemote: a WAL-guided finish killed (kill
// -9) in its cold pass leaves the copy unsealed and the source stopped; the
// next finish has no CHECKPOINT of its own to read the WAL from, falls back
// to the checksum cold pass and converges. To another host, the WAL-guided
// cold pass runs the same way through a receiver.
func TestWALGuidedColdPassKilledAndRemote(t *testing.T) {
	needPG(t)
	t.Parallel()
	src := newCluster(t, 2)
	base := pgTempDir(t)
	startCluster(t, src)
	acct := "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 31 = 0"

	// Killed after 20 blocks of the cold pass (written after the stop).
	dest := filepath.Join(base, "copy")
	mustRun(t, "prepare", src.Dir, dest)
	execSQL(t, src, acct)
	r := runWith(t, runOpts{env: []string{"PGTWOPASS_FAULT_BEFORE_STOP=" + psqlCmd(src, acct), "PGTWOPASS_FAULT_KILL_AFTER_STOP_BLOCKS=20"}},
		"finish", "--cold-pass=wal", src.Dir, dest)
	if !r.killed() {
		t.Fatalf("test premise: the WAL-guided finish is killed in its cold pass, got %s", r)
	}
	if sealed(t, dest) {
		t.Errorf("a killed WAL-guided cold pass leaves the copy unsealed")
	}
	var again summaryJSON
	runJSON(t, &again, "finish", "--json", "--cold-pass=wal", src.Dir, dest)
	if again.ColdPassMode != "checksum" || again.FallbackReason != "not_running" {
		t.Errorf("after the kill the source is stopped: the cold pass falls back (not_running), got mode %q, reason %q", again.ColdPassMode, again.FallbackReason)
	}
	sameTree(t, "a WAL-guided finish killed, then finished again", src.Dir, dest)
	checksumsOK(t, "a WAL-guided finish killed, then finished again", dest)

	// To another host.
	startCluster(t, src)
	remote := filepath.Join(base, "remote")
	mustRemote(t, nil, "prepare", src.Dir, "otherhost:"+remote)
	execSQL(t, src, acct)
	res := mustRemote(t, []string{"PGTWOPASS_FAULT_BEFORE_STOP=" + psqlCmd(src, acct)}, "finish", "--json", "--cold-pass=wal", src.Dir, "otherhost:"+remote)
	if res.ColdPassMode != "wal" || res.FallbackReason != "" {
		t.Errorf("the WAL-guided cold pass runs to another host: mode %q, reason %q", res.ColdPassMode, res.FallbackReason)
	}
	sameTree(t, "a WAL-guided finish to another host", src.Dir, remote)
	checksumsOK(t, "a WAL-guided finish to another host", remote)
}
