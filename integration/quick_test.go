package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// finishJSON runs finish with extra environment and decodes its --json.
func finishJSON(t *testing.T, env []string, args ...string) summaryJSON {
	t.Helper()
	r := runWith(t, runOpts{env: env}, append([]string{"finish", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("pgtwopass finish %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	var s summaryJSON
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("finish --json: %v\n%s", err, r.stdout)
	}
	return s
}

func coldPass(t *testing.T, s summaryJSON) passJSON {
	t.Helper()
	for _, p := range s.Passes {
		if p.Kind == "cold" {
			return p
		}
	}
	t.Fatalf("finish reports no cold pass: %+v", s.Passes)
	return passJSON{}
}

// The quick cold pass on a real cluster: a relation file changed with its
// mtime put back by touch -r (the mtime trap) is read and copied; files
// whose stat proves them unchanged since a read safely after their last
// change are trusted; with the margin widened past every file's age, every
// file is read.
func TestQuickColdPassCatchesTheMtimeTrapOnARealCluster(t *testing.T) {
	t.Parallel()
	touch, err := exec.LookPath("touch")
	if err != nil {
		t.Skip("no touch(1):", err)
	}
	src := newCluster(t, 1)
	startCluster(t, src)
	rel := relationFile(t, src, "pgbench_accounts")
	stopCluster(t, src)
	dest := filepath.Join(t.TempDir(), "copy")
	// The files' last change is older than a 100 ms margin when prepare
	// reads them.
	time.Sleep(300 * time.Millisecond)
	mustRun(t, "prepare", src.Dir, dest)
	margin := []string{"PGTWOPASS_FAULT_QUICK_MARGIN=100ms"}

	file := filepath.Join(src.Dir, rel)
	ref := filepath.Join(t.TempDir(), "ref")
	if out, err := exec.Command(touch, "-r", file, ref).CombinedOutput(); err != nil {
		t.Fatalf("touch -r: %v\n%s", err, out)
	}
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("mtime trap"), 3*8192+4000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command(touch, "-r", ref, file).CombinedOutput(); err != nil {
		t.Fatalf("touch -r: %v\n%s", err, out)
	}
	after, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the premise: touch -r keeps size and mtime (%d %v, then %d %v)", before.Size(), before.ModTime(), after.Size(), after.ModTime())
	}

	cold := coldPass(t, finishJSON(t, margin, "--cold-pass=quick", src.Dir, dest))
	if cold.FilesSkipped == 0 {
		t.Errorf("the premise: the quick cold pass trusts the unchanged files by their stat, it skipped none")
	}
	if cold.BlocksWritten != 1 {
		t.Errorf("the file changed behind touch -r must be read and its block written: %d blocks written, want 1", cold.BlocksWritten)
	}
	sameTree(t, "after the mtime trap and a quick cold pass", src.Dir, dest)

	// A margin wider than any file's age: no stat can vouch for a file,
	// and the quick cold pass reads every one.
	cold = coldPass(t, finishJSON(t, []string{"PGTWOPASS_FAULT_QUICK_MARGIN=1h"}, "--cold-pass=quick", src.Dir, dest))
	if cold.FilesSkipped != 0 || cold.FilesExamined == 0 {
		t.Errorf("files changed within the safe margin of their last read must be read again: skipped %d, read %d", cold.FilesSkipped, cold.FilesExamined)
	}
	sameTree(t, "after a quick cold pass with a wide margin", src.Dir, dest)
}

// finish --backup-manifest writes a backup_manifest that pg_verifybackup
// accepts, also when the CRC-32C of files a quick cold pass trusted by their
// stat comes from the copy (an earlier cold pass without --backup-manifest
// left it out of their records).
func TestBackupManifestPassesPgVerifybackup(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	dest := filepath.Join(pgTempDir(t), "copy")
	time.Sleep(300 * time.Millisecond)
	verify := func(what string) {
		t.Helper()
		if out, err := pgProgram(t, "pg_verifybackup", "-n", dest); err != nil {
			t.Errorf("%s: pg_verifybackup -n must accept the copy: %v\n%s", what, err, out)
		}
	}
	finishJSON(t, nil, "--backup-manifest", src.Dir, dest)
	verify("after finish --backup-manifest into a new copy")

	// A cold pass without --backup-manifest (its records get no CRC-32C),
	// then a quick one with it, which trusts most files by their stat.
	finishJSON(t, nil, src.Dir, dest)
	if _, err := os.Stat(filepath.Join(dest, "backup_manifest")); !os.IsNotExist(err) {
		t.Errorf("a cold pass without --backup-manifest leaves no backup_manifest behind (it would no longer match): %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	cold := coldPass(t, finishJSON(t, []string{"PGTWOPASS_FAULT_QUICK_MARGIN=100ms"}, "--cold-pass=quick", "--backup-manifest", src.Dir, dest))
	if cold.FilesSkipped == 0 {
		t.Fatalf("the premise: the quick cold pass trusts files by their stat, it skipped none")
	}
	verify("after a quick cold pass with --backup-manifest over records without CRC-32C")
}
