package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// TestTablespaceSyncUnderLoad copies a cluster whose busiest table lives in
// a tablespace: the tablespace goes to its mapped directory with the same
// passes and seal, the copy's pg_tblspc link points there, and the started
// copy reads the same data. The same again to "another host": the receiver
// gets the tablespace's directory on its command line.
func TestTablespaceSyncUnderLoad(t *testing.T) {
	for _, remote := range []bool{false, true} {
		name := "on this host"
		if remote {
			name = "to another host"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tablespaceSync(t, remote)
		})
	}
}

func tablespaceSync(t *testing.T, remote bool) {
	// pg runs pgtwopass with DEST (the last argument) on this host, or on
	// "another" through the stand-in remote shell.
	pg := func(args ...string) procResult {
		t.Helper()
		if !remote {
			return runWith(t, runOpts{}, args...)
		}
		args = append(append([]string{}, args[:len(args)-1]...), "h:"+args[len(args)-1])
		return runWith(t, runOpts{env: fakeRshEnvFor()}, viaRsh(args[0], args[1:]...)...)
	}
	mustPG := func(args ...string) procResult {
		t.Helper()
		r := pg(args...)
		if r.code != 0 {
			t.Fatalf("pgtwopass %s: want exit 0, got %s", strings.Join(args, " "), r)
		}
		return r
	}
	src := newCluster(t, 2)
	base := t.TempDir()
	if err := scratch.MakeTraversable(base); err != nil {
		t.Fatal(err)
	}
	tsOld, tsNew := filepath.Join(base, "ts-old"), filepath.Join(base, "ts-new")
	st, err := os.Stat(src.Dir)
	if err != nil {
		t.Fatal(err)
	}
	owner := st.Sys().(*syscall.Stat_t)
	if err := os.Mkdir(tsOld, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tsOld, int(owner.Uid), int(owner.Gid)); err != nil {
		t.Fatal(err)
	}
	startCluster(t, src)
	execSQL(t, src, "CREATE TABLESPACE ts1 LOCATION '"+tsOld+"'")
	execSQL(t, src, "CREATE TABLE moved TABLESPACE ts1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g")
	execSQL(t, src, "ALTER TABLE pgbench_accounts SET TABLESPACE ts1") // the load writes into the tablespace
	oid := query(t, src, "SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
	dest := filepath.Join(base, "copy")

	if r := pg("prepare", src.Dir, dest); r.code != 2 || !strings.Contains(r.stderr, tsOld) || !strings.Contains(r.stderr, "hint:") {
		t.Errorf("a tablespace without --tablespace-map is refused with exit 2, naming it and with a hint: %s", r)
	}
	if _, err := os.Lstat(dest); !os.IsNotExist(err) {
		t.Errorf("the refusal must not create DEST (%v)", err)
	}

	load, err := src.Load(ctxFor(t, 3*time.Minute), 2, 0)
	if err != nil {
		t.Fatalf("start the pgbench load: %v", err)
	}
	t.Cleanup(func() { load.Stop() })
	tsmap := tsOld + "=" + tsNew
	mustPG("prepare", "--tablespace-map", tsmap, src.Dir, dest)
	time.Sleep(time.Second)
	var res summaryJSON
	if err := json.Unmarshal([]byte(mustPG("sync", "--json", "--restart", "--tablespace-map", tsmap, src.Dir, dest).stdout), &res); err != nil {
		t.Fatalf("sync --json: %v", err)
	}
	if n, err := load.Stop(); err != nil || n == 0 {
		t.Errorf("the load ran during the copy (%d transactions, %v)", n, err)
	}
	if res.Restarted == nil || !*res.Restarted {
		t.Errorf("sync --restart starts the source again: restarted = %v", res.Restarted)
	}
	link := filepath.Join(dest, "pg_tblspc", oid)
	if target, err := os.Readlink(link); err != nil || target != tsNew {
		t.Errorf("the copy's pg_tblspc/%s links to the mapped directory %s: got %q (%v)", oid, tsNew, target, err)
	}

	stopCluster(t, src)
	mustPG("finish", "--no-stop", "--backup-manifest", "--tablespace-map", tsmap, src.Dir, dest)
	notTablespaceLink := func(rel string) bool { return skipForCopy(rel) || rel == "pg_tblspc/"+oid || rel == "backup_manifest" }
	diffs, err := scratch.CompareTrees(src.Dir, dest, scratch.CompareOptions{Skip: notTablespaceLink, Owners: true, Mtimes: true})
	if err != nil || len(diffs) > 0 {
		t.Errorf("the data directory's copy equals the source (but for the tablespace link): %v %v", diffs, err)
	}
	diffs, err = scratch.CompareTrees(tsOld, tsNew, scratch.CompareOptions{Skip: func(rel string) bool { return rel == ".pgtwopass-tablespace" }, Owners: true, Mtimes: true})
	if err != nil || len(diffs) > 0 {
		t.Errorf("the tablespace's copy equals the tablespace byte for byte, owners and modes included: %v %v", diffs, err)
	}
	if out, err := scratch.Checksums(ctxFor(t, 2*time.Minute), dest, scratch.Options{BinDir: pgBinDir}); err != nil {
		t.Errorf("pg_checksums --check passes on the copy, tablespace included: %v\n%s", err, out)
	}
	if out, err := pgProgram(t, "pg_verifybackup", "-n", dest); err != nil {
		t.Errorf("pg_verifybackup -n accepts a copy with a tablespace made by finish --backup-manifest (pgtwopass's marker in the tablespace's copy is listed): %v\n%s", err, out)
	}
	if r := pg("verify", "--tablespace-map", tsmap, src.Dir, dest); r.code != 0 {
		t.Errorf("verify with the tablespace map finds the copy identical: %s", r)
	}

	// The copy's link points elsewhere (to an identical tree): verify
	// reports that one difference, once.
	tsElsewhere := filepath.Join(base, "ts-elsewhere")
	cpA(t, tsNew, tsElsewhere)
	relink := func(target string) {
		t.Helper()
		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	relink(tsElsewhere)
	r := pg("verify", "--tablespace-map", tsmap, src.Dir, dest)
	stdout, code := r.stdout, r.code
	if lines := strings.Split(strings.TrimSpace(stdout), "\n"); code != 4 || len(lines) != 1 || !strings.HasPrefix(lines[0], "pg_tblspc/"+oid+": ") || !strings.Contains(lines[0], tsElsewhere) {
		t.Errorf("verify reports a tablespace link of the copy that points to %s instead of %s once, as the one difference: exit %d\n%s", tsElsewhere, tsNew, code, stdout)
	}
	relink(tsNew)

	cp := openCopy(t, dest)
	if err := cp.Start(ctxFor(t, 3*time.Minute)); err != nil {
		t.Fatalf("the copy with its tablespace starts: %v", err)
	}
	startCluster(t, src)
	q := "SELECT count(*) || ' rows, md5 ' || md5(string_agg(id || v, ',' ORDER BY id)) FROM moved"
	if a, b := query(t, src, q), query(t, cp, q); a != b {
		t.Errorf("the table in the tablespace reads the same in the copy:\n  source: %s\n  copy:   %s", a, b)
	}
	sameData(t, src, cp)
	if loc := query(t, cp, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'"); loc != tsNew {
		t.Errorf("the copy's tablespace is at %s, want the mapped %s", loc, tsNew)
	}
}
