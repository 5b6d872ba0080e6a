package integration

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
)

// TestOwnersAsRoot: run as root on a postgres-owned, running cluster, sync
// stops the server as its owner (pg_ctl refuses root), gives every copied
// entry the source's owner and mode, and --restart brings the server back.
func TestOwnersAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks that pgtwopass preserves owners and runs pg_ctl as the owner")
	}
	t.Parallel()
	src := newCluster(t, 1)
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	pgUID, _ := strconv.Atoi(pg.Uid)
	if st, err := os.Stat(src.Dir); err != nil || int(st.Sys().(*syscall.Stat_t).Uid) != pgUID {
		t.Fatalf("test premise: the cluster belongs to postgres (%v)", err)
	}
	startCluster(t, src)
	dest := filepath.Join(t.TempDir(), "copy")

	// The server log of the restart goes where postgres may write it.
	logDir := filepath.Join(t.TempDir(), "log")
	if err := os.Mkdir(logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := scratch.Chown(logDir, scratch.Options{BinDir: pgBinDir}); err != nil {
		t.Fatal(err)
	}
	if err := scratch.MakeTraversable(filepath.Dir(logDir)); err != nil {
		t.Fatal(err)
	}
	var res summaryJSON
	runJSON(t, &res, "sync", "--restart", "--json", "--start-log", filepath.Join(logDir, "restart.log"), src.Dir, dest)
	if res.Stopped == nil || !*res.Stopped {
		t.Errorf("sync stopped the server as its owner (pg_ctl refuses root): stopped = %v, want true", res.Stopped)
	}
	if res.Restarted == nil || !*res.Restarted {
		t.Errorf("sync --restart started the server again: restarted = %v, want true", res.Restarted)
	}
	if k := passKinds(res); len(k) < 2 || k[0] != "live" || k[len(k)-1] != "cold" || strings.Count(strings.Join(k, ","), "cold") != 1 {
		t.Errorf("sync runs live passes then one cold pass: passes = %v", k)
	}
	if !src.Running() {
		t.Errorf("after sync --restart the source server runs")
	} else if s := query(t, src, "SELECT count(*) FROM pgbench_branches"); s != "1" {
		t.Errorf("the restarted source answers queries: %q", s)
	}

	st, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if uid := int(st.Sys().(*syscall.Stat_t).Uid); uid != pgUID {
		t.Errorf("the copy's root belongs to postgres (uid %d), not uid %d", pgUID, uid)
	}

	// Every entry of the copy has its source entry's owner and mode. The
	// source runs again, so contents and new WAL may differ; only entries
	// both sides have are compared.
	checked := 0
	err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		rel = filepath.ToSlash(rel)
		if skipForCopy(rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		cs, err := os.Lstat(p)
		if err != nil {
			return err
		}
		ss, err := os.Lstat(filepath.Join(src.Dir, filepath.FromSlash(rel)))
		if os.IsNotExist(err) {
			return nil // gone from the running source since the copy
		} else if err != nil {
			return err
		}
		c, s := cs.Sys().(*syscall.Stat_t), ss.Sys().(*syscall.Stat_t)
		if c.Uid != s.Uid || c.Gid != s.Gid {
			t.Errorf("%s: the copy has the source's owner: source %d:%d, copy %d:%d", rel, s.Uid, s.Gid, c.Uid, c.Gid)
		}
		if cs.Mode() != ss.Mode() {
			t.Errorf("%s: the copy has the source's mode: source %v, copy %v", rel, ss.Mode(), cs.Mode())
		}
		checked++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Errorf("owner check saw only %d entries", checked)
	}

	// With the source stopped, one more finish makes the copy equal in
	// everything, owners included.
	stopCluster(t, src)
	mustRun(t, "finish", "--no-stop", src.Dir, dest)
	sameTree(t, "finish after sync --restart, as root", src.Dir, dest)
}

// TestVerify: verify finds no difference in a finished copy, and names the
// file and block of a one-byte change in the copy.
func TestVerify(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	startCluster(t, src)
	relFile := relationFile(t, src, "pgbench_accounts")
	stopCluster(t, src)
	dest := filepath.Join(t.TempDir(), "copy")
	mustRun(t, "finish", "--no-stop", src.Dir, dest)

	stdout, stderr, code := run(t, "verify", src.Dir, dest)
	if code != 0 {
		t.Fatalf("verify of a finished copy exits 0, got %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.Contains(l, ": ") {
			t.Errorf("verify of a finished copy prints no difference, got %q", l)
		}
	}

	const blk = 3
	flipByte(t, filepath.Join(dest, relFile), blk*scratch.BlockSize+4000)
	if d, _ := scratch.CompareTrees(src.Dir, dest, scratch.CompareOptions{Skip: skipForCopy}); len(d) != 1 {
		t.Fatalf("test premise: the copy differs in one block, CompareTrees says %v", d)
	}

	stdout, stderr, code = run(t, "verify", src.Dir, dest)
	if code != 4 {
		t.Errorf("verify exits 4 when the copy differs by one byte, got %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var line string
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, relFile+": ") {
			line = l
		}
	}
	if line == "" {
		t.Errorf("verify names the changed file %s on stdout, got:\n%s", relFile, stdout)
	} else if want := "at byte " + itoa(blk*scratch.BlockSize); !strings.Contains(line, want) && !strings.Contains(line, "block "+itoa(blk)) {
		t.Errorf("verify names the changed block %d (%q or %q), got %q", blk, want, "block "+itoa(blk), line)
	}
	if n := len(strings.Split(strings.TrimSpace(stdout), "\n")); n != 1 {
		t.Errorf("verify reports exactly the one difference, got %d lines:\n%s", n, stdout)
	}

	stdout, stderr, code = run(t, "verify", "--json", src.Dir, dest)
	if code != 4 {
		t.Errorf("verify --json exits 4 on differences, got %d\nstderr:\n%s", code, stderr)
	}
	var v verifyJSON
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("verify --json prints one JSON object: %v\n%s", err, stdout)
	}
	if v.Identical == nil || *v.Identical {
		t.Errorf("verify --json: identical = %v, want false", v.Identical)
	}
	if len(v.Differences) != 1 || v.Differences[0].Path != relFile {
		t.Errorf("verify --json lists the one difference in %s, got %+v", relFile, v.Differences)
	}
}

// TestSourceNeverWritten: no command writes to the source, with its server
// stopped: not a byte, not a mode, not an owner, not an mtime (of a file or
// of a directory), not a directory entry. Every command runs, in each of
// its modes: dry runs, live passes, cold passes (checksum and quick), with
// --backup-manifest, verify in full and against the manifest, status.
func TestSourceNeverWritten(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	dest := filepath.Join(t.TempDir(), "copy")
	quick := []string{"PGTWOPASS_FAULT_QUICK_MARGIN=1ms"}
	want := hashTree(t, src.Dir)
	for _, c := range []struct {
		args []string
		env  []string
	}{
		{args: []string{"prepare", "--dry-run", src.Dir, dest}},
		{args: []string{"prepare", src.Dir, dest}},
		{args: []string{"prepare", "--dry-run", src.Dir, dest}},
		{args: []string{"prepare", "--jobs", "1", "--block-size", "8192", src.Dir, dest}},
		{args: []string{"finish", "--no-stop", "--dry-run", src.Dir, dest}},
		{args: []string{"finish", "--no-stop", "--dry-run", "--cold-pass=quick", src.Dir, dest}, env: quick},
		{args: []string{"finish", "--no-stop", src.Dir, dest}},
		{args: []string{"finish", "--no-stop", "--backup-manifest", src.Dir, dest}},
		{args: []string{"finish", "--no-stop", "--cold-pass=quick", src.Dir, dest}, env: quick},
		{args: []string{"finish", "--no-stop", "--cold-pass=quick", "--backup-manifest", src.Dir, dest}, env: quick},
		{args: []string{"verify", src.Dir, dest}},
		{args: []string{"verify", "--json", src.Dir, dest}},
		{args: []string{"verify", "--manifest-only", dest}},
		{args: []string{"status", dest}},
		{args: []string{"status", "--json", dest}},
		{args: []string{"sync", "--no-stop", src.Dir, dest}},
		{args: []string{"sync", "--no-stop", "--dry-run", src.Dir, dest}},
		{args: []string{"sync", "--no-stop", "--cold-pass=quick", "--backup-manifest", src.Dir, dest}, env: quick},
	} {
		if r := runWith(t, runOpts{env: c.env}, c.args...); r.code != 0 {
			t.Fatalf("pgtwopass %s: %s", strings.Join(c.args, " "), r)
		}
		if got := hashTree(t, src.Dir); got != want {
			t.Errorf("pgtwopass %s writes nothing in SRC (contents, modes, owners, mtimes), but its tree hash changed", strings.Join(c.args, " "))
			want = got
		}
	}
}

// TestStatus: status reports an unsealed copy after prepare and a sealed
// one, of the source's cluster, after finish, with the passes in order.
func TestStatus(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	startCluster(t, src)
	dest := filepath.Join(t.TempDir(), "copy")
	mustRun(t, "prepare", src.Dir, dest)

	var st statusJSON
	runJSON(t, &st, "status", "--json", dest)
	if st.Sealed == nil || *st.Sealed {
		t.Errorf("status of a prepared copy: sealed = %v, want false", st.Sealed)
	}
	if len(st.Passes) == 0 || !onlyLive(st.Passes) {
		t.Errorf("status of a prepared copy lists its live passes and nothing else, got %+v", st.Passes)
	}
	stdout, _ := mustRun(t, "status", dest)
	if l := lineWith(stdout, "sealed:"); !strings.Contains(l, "no") {
		t.Errorf("status (text) of a prepared copy says it is not sealed:\n%s", stdout)
	}

	mustRun(t, "finish", src.Dir, dest)
	if src.Running() {
		t.Fatalf("finish stopped the source")
	}
	cd, err := pgctl.ReadControlData(ctxFor(t, time.Minute), pgBinDir, src.Dir)
	if err != nil {
		t.Fatal(err)
	}
	st = statusJSON{}
	runJSON(t, &st, "status", "--json", dest)
	if st.Sealed == nil || !*st.Sealed {
		t.Errorf("status of a finished copy: sealed = %v, want true", st.Sealed)
	}
	if want := strconv.FormatUint(cd.SystemIdentifier, 10); st.SystemIdentifier != want {
		t.Errorf("status reports the source's database system identifier: got %q, pg_controldata says %s", st.SystemIdentifier, want)
	}
	if v, err := pgctl.ReadPGVersion(src.Dir); err != nil || st.PGVersion != v {
		t.Errorf("status reports PG_VERSION %q, got %q (%v)", v, st.PGVersion, err)
	}
	if st.BlockSize != 8192 {
		t.Errorf("status reports the default block size 8192, got %d", st.BlockSize)
	}
	if st.Files <= 0 || st.Bytes <= 0 {
		t.Errorf("status counts files and bytes: files=%d bytes=%d", st.Files, st.Bytes)
	}
	var kinds []string
	for i, p := range st.Passes {
		kinds = append(kinds, p.Kind)
		if p.Finished.Before(p.Started) {
			t.Errorf("pass %d finished (%v) before it started (%v)", i, p.Finished, p.Started)
		}
		if i > 0 && p.Started.Before(st.Passes[i-1].Finished) {
			t.Errorf("passes are listed in order: pass %d started %v before pass %d finished %v", i, p.Started, i-1, st.Passes[i-1].Finished)
		}
	}
	if k := strings.Join(kinds, ","); !strings.HasPrefix(k, "live,") || !strings.HasSuffix(k, ",cold") || strings.Count(k, "cold") != 1 {
		t.Errorf("status of a prepared then finished copy lists live passes then one cold pass; got %v", kinds)
	}
	stdout, _ = mustRun(t, "status", dest)
	if !strings.Contains(stdout, strconv.FormatUint(cd.SystemIdentifier, 10)) {
		t.Errorf("status (text) shows the system identifier:\n%s", stdout)
	}
	if l := lineWith(stdout, "sealed:"); !strings.Contains(l, "yes") {
		t.Errorf("status (text) of a finished copy says it is sealed:\n%s", stdout)
	}
}

// lineWith returns the first line of s that contains sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

func onlyLive(passes []statusPassJSON) bool {
	for _, p := range passes {
		if p.Kind != "live" {
			return false
		}
	}
	return true
}

// TestVerifyManifestOnly: verify --manifest-only needs no source: with SRC
// gone it exits 0 on a good copy (sealed or not) and 4 when one block of
// the copy changed (size and mtime kept), a file is missing or a stray file
// appears, naming each on stdout.
func TestVerifyManifestOnly(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 0)
	// pg_attribute of template1: a mapped catalog, whose file keeps its name.
	catalog := "base/1/1249"
	base := t.TempDir()
	dest := filepath.Join(base, "copy")
	prepared := filepath.Join(base, "prepared")
	mustRun(t, "finish", "--no-stop", src.Dir, dest)
	mustRun(t, "prepare", src.Dir, prepared)

	// No source needed: it is moved out of reach.
	away := src.Dir + ".away"
	if err := os.Rename(src.Dir, away); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(away, src.Dir)

	for _, c := range []struct{ what, dir string }{{"a finished copy", dest}, {"a prepared (unsealed) copy", prepared}} {
		stdout, stderr, code := run(t, "verify", "--manifest-only", c.dir)
		if code != 0 || !strings.Contains(stdout, "the copy matches its manifest") {
			t.Errorf("verify --manifest-only of %s, without the source, exits 0 and says the copy matches its manifest: exit %d\nstdout:\n%s\nstderr:\n%s", c.what, code, stdout, stderr)
		}
	}

	const blk = 5
	zeroBlock(t, filepath.Join(dest, filepath.FromSlash(catalog)), blk)
	stdout, stderr, code := run(t, "verify", "--manifest-only", dest)
	if code != 4 {
		t.Errorf("verify --manifest-only exits 4 when one block of the copy changed (size and mtime kept), got %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], catalog+": ") || !strings.Contains(lines[0], "at byte "+itoa(blk*scratch.BlockSize)) {
		t.Errorf("verify --manifest-only names the one changed file %s and its block at byte %d, got:\n%s", catalog, blk*scratch.BlockSize, stdout)
	}

	stray := "base/1/99999"
	if err := os.WriteFile(filepath.Join(dest, filepath.FromSlash(stray)), []byte("stray\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	removeFile(t, filepath.Join(dest, "PG_VERSION"))
	var v verifyJSON
	stdout, _, code = run(t, "verify", "--manifest-only", "--json", dest)
	if code != 4 {
		t.Errorf("verify --manifest-only --json exits 4 on differences, got %d", code)
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("verify --manifest-only --json prints one JSON object: %v\n%s", err, stdout)
	}
	got := map[string]string{}
	for _, d := range v.Differences {
		got[d.Path] = d.What
	}
	for path, what := range map[string]string{catalog: "differ", stray: "not in the manifest", "PG_VERSION": "missing from the copy"} {
		if !strings.Contains(got[path], what) {
			t.Errorf("verify --manifest-only --json lists %s as %q, got %q (all: %+v)", path, what, got[path], v.Differences)
		}
	}
	if v.Identical == nil || *v.Identical || len(v.Differences) != 3 {
		t.Errorf("verify --manifest-only --json: identical = %v with exactly the 3 differences, got %+v", v.Identical, v.Differences)
	}
}

// TestBackupManifestPgVerifybackup: finish --backup-manifest, run as a DBA
// runs it (the server running, stopped and started again by finish), writes
// a backup_manifest with which PostgreSQL's own pg_verifybackup -n accepts
// the copy: an independent verifier. It is one: after one byte of the copy
// changes, pg_verifybackup fails and names the file. A quick cold pass,
// which does not read the files whose stat it trusts and takes their
// CRC-32C from the manifest, writes a backup_manifest that pg_verifybackup
// accepts too, and repairs the changed byte.
func TestBackupManifestPgVerifybackup(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	startCluster(t, src)
	accounts := relationFile(t, src, "pgbench_accounts")
	dest := filepath.Join(pgTempDir(t), "copy")
	startLog := serverLogFile(t)
	mustRun(t, "prepare", src.Dir, dest)
	execSQL(t, src, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 97 = 0")
	mustRun(t, "finish", "--restart", "--backup-manifest", "--start-log", startLog, src.Dir, dest)
	if !src.Running() {
		t.Fatalf("finish --restart starts the source again")
	}
	if out, err := pgProgram(t, "pg_verifybackup", "-n", dest); err != nil {
		t.Errorf("pg_verifybackup -n accepts a copy made by finish --restart --backup-manifest: %v\n%s", err, out)
	}

	flipByte(t, filepath.Join(dest, accounts), 7*scratch.BlockSize+123)
	out, err := pgProgram(t, "pg_verifybackup", "-n", dest)
	if err == nil || !strings.Contains(out, accounts) {
		t.Errorf("pg_verifybackup -n rejects a copy changed by one byte and names the file %s (it verifies the copy independently of pgtwopass): %v\n%s", accounts, err, out)
	}

	execSQL(t, src, "UPDATE pgbench_branches SET bbalance = bbalance + 1")
	stopCluster(t, src)
	r := runWith(t, runOpts{env: []string{"PGTWOPASS_FAULT_QUICK_MARGIN=1ms"}},
		"finish", "--no-stop", "--cold-pass=quick", "--backup-manifest", "--json", "--log-format", "json", src.Dir, dest)
	if r.code != 0 {
		t.Fatalf("finish --cold-pass=quick --backup-manifest completes: %s", r)
	}
	var s summaryJSON
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.Passes) != 1 {
		t.Fatalf("finish --no-stop --json prints one cold pass: %v\n%s", err, r.stdout)
	}
	if p := s.Passes[0]; p.FilesSkipped < 100 || p.FilesExamined == 0 {
		t.Fatalf("test premise: the quick cold pass skips most files (their CRC-32C comes from the manifest) and reads the changed ones: %d skipped, %d read", p.FilesSkipped, p.FilesExamined)
	}
	if out, err := pgProgram(t, "pg_verifybackup", "-n", dest); err != nil {
		t.Errorf("pg_verifybackup -n accepts a copy finished by a quick cold pass with --backup-manifest (the CRC-32C of the files it did not read come from the manifest): %v\n%s", err, out)
	}
	notBackupManifest := func(rel string) bool { return skipForCopy(rel) || rel == "backup_manifest" }
	diffs, err := scratch.CompareTrees(src.Dir, dest, scratch.CompareOptions{Skip: notBackupManifest, Owners: true, Mtimes: true})
	if err != nil || len(diffs) > 0 {
		t.Errorf("finish --cold-pass=quick --backup-manifest repairs the one-byte drift: the copy equals the source but for its backup_manifest, got %q %v", diffs, err)
	}
}
