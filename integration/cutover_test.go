package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStrayPrepareDoesNotRollBackANewPrimary: after a cutover (the sealed
// copy started, a table created in it, stopped), a prepare left running
// from a timer must not touch it: prepare, finish and sync exit 2 and say
// why, the copy keeps its new table and still starts; status says the copy
// ran since its seal; verify --manifest-only says so too; detach turns it
// into an ordinary directory, which pgtwopass then refuses as any other.
func TestStrayPrepareDoesNotRollBackANewPrimary(t *testing.T) {
	needPG(t)
	t.Parallel()
	src := newCluster(t, 1)
	dest := filepath.Join(pgTempDir(t), "copy")
	mustRun(t, "sync", "--no-stop", src.Dir, dest)

	cp := openCopy(t, dest)
	startCluster(t, cp)
	execSQL(t, cp, "CREATE TABLE after_cutover AS SELECT g FROM generate_series(1, 100) g")
	newFile := relationFile(t, cp, "after_cutover")
	stopCluster(t, cp)
	before := hashTree(t, dest)

	for _, args := range [][]string{
		{"prepare", src.Dir, dest},
		{"finish", "--no-stop", src.Dir, dest},
		{"sync", "--no-stop", src.Dir, dest},
	} {
		r := runWith(t, runOpts{}, args...)
		checkBadInput(t, r, args, "has run as a PostgreSQL cluster since pgtwopass sealed it")
		if !strings.Contains(r.stderr, "pgtwopass detach") {
			t.Errorf("%s: the hint names pgtwopass detach:\n%s", args[0], r.stderr)
		}
	}
	if hashTree(t, dest) != before {
		t.Fatalf("a refused pass leaves the new primary as it was")
	}
	if _, err := os.Stat(filepath.Join(dest, newFile)); err != nil {
		t.Fatalf("the new primary keeps its new table's file: %v", err)
	}

	stdout, _ := mustRun(t, "status", dest)
	if !strings.Contains(stdout, "has run as a cluster since its seal") {
		t.Errorf("status says the copy ran since its seal:\n%s", stdout)
	}
	var st struct {
		RanSinceSeal bool `json:"ran_since_seal"`
	}
	runJSON(t, &st, "status", "--json", dest)
	if !st.RanSinceSeal {
		t.Errorf("status --json says ran_since_seal: true")
	}
	r := runWith(t, runOpts{}, "verify", "--manifest-only", dest)
	if r.code == 0 || r.code == 4 || !strings.Contains(r.stderr, "has run as a PostgreSQL cluster since pgtwopass sealed it") {
		t.Errorf("verify --manifest-only says the copy ran since its seal, not that it differs: %s", r)
	}

	// A running copy: refused too, and verify --manifest-only refuses it.
	startCluster(t, cp)
	r = runWith(t, runOpts{}, "verify", "--manifest-only", dest)
	if r.code != 2 || !strings.Contains(r.stderr, "runs on DEST") {
		t.Errorf("verify --manifest-only refuses a running copy: %s", r)
	}
	stopCluster(t, cp)

	mustRun(t, "detach", dest)
	if _, err := os.Stat(filepath.Join(dest, ".pgtwopass")); !os.IsNotExist(err) {
		t.Fatalf("detach removes .pgtwopass (%v)", err)
	}
	args := []string{"prepare", src.Dir, dest}
	checkBadInput(t, runWith(t, runOpts{}, args...), args, "is not empty and is not a pgtwopass copy")
	startCluster(t, cp)
	if got := query(t, cp, "SELECT count(*) FROM after_cutover"); got != "100" {
		t.Errorf("the detached new primary starts with its data: %q", got)
	}
	stopCluster(t, cp)
}

// TestUnreadablePostmasterPIDFailsClosed: a postmaster.pid in the copy that
// cannot be read or parsed may belong to a running server: the pass is
// refused (exit 2), and the file is left alone.
func TestUnreadablePostmasterPIDFailsClosed(t *testing.T) {
	needPG(t)
	t.Parallel()
	src := newCluster(t, 0)
	dest := filepath.Join(pgTempDir(t), "copy")
	mustRun(t, "prepare", src.Dir, dest)
	pid := filepath.Join(dest, "postmaster.pid")
	for name, make := range map[string]func() error{
		"half-written": func() error { return os.WriteFile(pid, []byte("12a"), 0o600) },
		"unreadable":   func() error { return os.Mkdir(pid, 0o700) }, // EISDIR
	} {
		t.Run(name, func(t *testing.T) {
			os.RemoveAll(pid)
			if err := make(); err != nil {
				t.Fatal(err)
			}
			before := hashTree(t, dest)
			args := []string{"prepare", src.Dir, dest}
			checkBadInput(t, runWith(t, runOpts{}, args...), args, "cannot tell whether a PostgreSQL server runs on DEST")
			if hashTree(t, dest) != before {
				t.Errorf("the refused pass leaves the copy (and its postmaster.pid) as they were")
			}
		})
	}
	os.RemoveAll(pid)
}
