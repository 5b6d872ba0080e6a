package sync

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/faults"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

func quickPass(t *testing.T, dk destKind, src, dst string, margin time.Duration) PassStats {
	t.Helper()
	st, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2, ColdPass: ColdQuick, QuickMargin: margin})
	if err != nil {
		t.Fatalf("quick cold pass: %v", err)
	}
	return st
}

func testQuickColdPassSkipsFilesPastTheHorizon(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	time.Sleep(60 * time.Millisecond) // the files' ctimes are past the horizon when the copy reads them
	// A live pass then a cold one, as finish runs them: the live pass waits
	// out the granule of the files it wrote last, so that the records of
	// the cold pass (which writes nothing here) are trusted by their stat.
	mustPass(t, dk, manifest.Live, src, dst)
	mustPass(t, dk, manifest.Cold, src, dst)
	st := quickPass(t, dk, src, dst, 50*time.Millisecond)
	sameTree(t, src, dst)
	if st.FilesExamined != 1 || st.BytesWritten != 0 {
		t.Errorf("quick cold pass over an unchanged source must read only pg_control, examined %d files, wrote %d bytes", st.FilesExamined, st.BytesWritten)
	}
	if !sealed(dst) {
		t.Error("a quick cold pass seals like a checksum one")
	}
}

// copiedPastHorizon makes a fake cluster and its copy, read more than 50 ms
// after the files were written: a quick cold pass with a 50 ms margin may
// trust every file but pg_control by its stat.
func copiedPastHorizon(t *testing.T, dk destKind) (src, dst string) {
	t.Helper()
	src = fakeCluster(t)
	dst = filepath.Join(t.TempDir(), "copy")
	time.Sleep(60 * time.Millisecond)
	mustPass(t, dk, manifest.Live, src, dst)
	mustPass(t, dk, manifest.Cold, src, dst)
	if st := quickPass(t, dk, src, dst, 50*time.Millisecond); st.FilesExamined != 1 {
		t.Fatalf("the premise: a quick cold pass over an unchanged source reads only pg_control, it read %d files", st.FilesExamined)
	}
	return src, dst
}

func testQuickColdPassCatchesTheMtimeTrap(t *testing.T, dk destKind) {
	src, dst := copiedPastHorizon(t, dk)
	rewriteBlock(t, src, "base/1/16384", 77) // same size, mtime restored
	st := quickPass(t, dk, src, dst, 50*time.Millisecond)
	sameTree(t, src, dst)
	if st.BlocksWritten != 1 {
		t.Errorf("a same-size rewrite with its mtime restored moves ctime: the quick pass must read the file and write its block, wrote %d blocks", st.BlocksWritten)
	}
}

// The mtime trap as a DBA would set it: a byte changed, then `touch -r` puts
// the old mtime back (size and mtime say nothing changed; ctime moved).
func testQuickColdPassCatchesTheMtimeTrapSetWithTouchR(t *testing.T, dk destKind) {
	touch, err := exec.LookPath("touch")
	if err != nil {
		t.Skip("no touch(1):", err)
	}
	src, dst := copiedPastHorizon(t, dk)
	file := filepath.Join(src, "base/1/16384")
	ref := filepath.Join(t.TempDir(), "ref")
	if out, err := exec.Command(touch, "-r", file, ref).CombinedOutput(); err != nil {
		t.Fatalf("touch -r %s %s: %v\n%s", file, ref, err, out)
	}
	before, err := os.Stat(file)
	must(t, err)
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt([]byte{0xa5, 0x5a}, 2*8192+100)
	must(t, err)
	must(t, f.Close())
	if out, err := exec.Command(touch, "-r", ref, file).CombinedOutput(); err != nil {
		t.Fatalf("touch -r %s %s: %v\n%s", ref, file, err, out)
	}
	after, err := os.Stat(file)
	must(t, err)
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the premise: touch -r restores the mtime (%v, then %v) and the size stays (%d, then %d)", before.ModTime(), after.ModTime(), before.Size(), after.Size())
	}
	st := quickPass(t, dk, src, dst, 50*time.Millisecond)
	sameTree(t, src, dst)
	if st.BlocksWritten != 1 {
		t.Errorf("touch -r cannot put ctime back: the quick pass must read the file and write its changed block, wrote %d blocks", st.BlocksWritten)
	}
}

// A write that the file system's coarse clock hides: the record's stat
// equals the file's, yet the file changed after the read began, in the same
// clock tick as the stat. Only the margin catches it: the file's ctime is
// not older than the read's start by more than the margin, so the quick
// pass reads it. The test forges such a record (its source stat is the
// file's current one, its read start 1 ms after the file's ctime).
func testQuickColdPassRereadsAFileWrittenWithinTheMargin(t *testing.T, dk destKind) {
	src, dst := copiedPastHorizon(t, dk)
	rewriteBlock(t, src, "base/1/16384", 3)
	forgeRecord(t, src, dst, "base/1/16384", time.Millisecond)

	// Without a margin the forged record is trusted and the change is
	// missed: that is what the margin is for. (The pass keeps the record
	// as it is.)
	if st := quickPass(t, dk, src, dst, time.Nanosecond); st.BlocksWritten != 0 {
		t.Fatalf("the premise: with a 1 ns margin the forged record is trusted, but the quick pass wrote %d blocks", st.BlocksWritten)
	}

	st := quickPass(t, dk, src, dst, 50*time.Millisecond)
	sameTree(t, src, dst)
	if st.BlocksWritten != 1 {
		t.Errorf("a file whose ctime is within the margin of its last read must be read again: wrote %d blocks, want 1", st.BlocksWritten)
	}
}

// forgeRecord rewrites dst's manifest record of rel as if the read of the
// source had begun after after the file's last change (ctime), with the
// file's current stat: what a write hidden by a coarse clock leaves.
func forgeRecord(t *testing.T, src, dst, rel string, after time.Duration) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(src, rel))
	must(t, err)
	cur := pass.StatOf(fi)
	rewriteManifest(t, dst, func(f *manifest.File) {
		if f.Path == rel {
			f.Source = cur
			f.ReadStart = cur.Ctime + after.Nanoseconds()
		}
	})
}

// rewriteManifest applies edit to every record of dst's manifest.
func rewriteManifest(t *testing.T, dst string, edit func(*manifest.File)) {
	t.Helper()
	mpath := filepath.Join(dst, manifest.DirName, manifest.FileName)
	r, err := manifest.Open(mpath)
	must(t, err)
	defer r.Close()
	w, err := manifest.Create(mpath, int(r.Header.BlockSize))
	must(t, err)
	for {
		f, err := r.Next()
		if err != nil {
			break
		}
		edit(f)
		must(t, w.Add(f))
	}
	must(t, w.Commit(r.Header))
}

func testQuickColdPassRereadsFilesChangedWithinTheMargin(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	// The copy is made right after the files were written: their ctimes
	// are within a 10 s margin of the read, so no stat can vouch for them.
	mustPass(t, dk, manifest.Cold, src, dst)
	time.Sleep(60 * time.Millisecond)
	st := quickPass(t, dk, src, dst, 10*time.Second)
	if want := int64(len(regularFiles(t, src))); st.FilesExamined != want {
		t.Errorf("files changed within the safe margin of their last read must be read again: examined %d of %d", st.FilesExamined, want)
	}
	// That re-read began more than 50 ms after the files' last change.
	if st := quickPass(t, dk, src, dst, 50*time.Millisecond); st.FilesExamined != 1 {
		t.Errorf("after a read safely after the last change, only pg_control is read; examined %d", st.FilesExamined)
	}
}

func regularFiles(t *testing.T, dir string) []string {
	var out []string
	for _, e := range mustWalk(t, dir) {
		if e.IsRegular() {
			out = append(out, e.Rel)
		}
	}
	return out
}

func testQuickColdPassRefusesNetworkFileSystems(t *testing.T, dk destKind) {
	// The local file systems of the test machine are not network ones.
	if err := pass.CheckQuickFS(t.TempDir()); err != nil {
		t.Fatalf("a local file system must be accepted: %v", err)
	}
	for _, c := range []struct {
		magic int64
		name  string
	}{{0x6969, "NFS"}, {0xff534d42, "CIFS"}, {0xfe534d42, "SMB2"}, {0x517b, "SMB"}} {
		t.Run(c.name, func(t *testing.T) {
			orig := pass.FSType
			t.Cleanup(func() { pass.FSType = orig })
			src := fakeCluster(t)
			dst := filepath.Join(t.TempDir(), "copy")
			// statfs(2) of a path below on reports the network file system.
			networkAt := func(on string) {
				pass.FSType = func(path string) (int64, error) {
					if path == on || strings.HasPrefix(path, on+"/") {
						return c.magic, nil
					}
					return 0xef53, nil // ext4
				}
			}
			refused := func(err error, on string) {
				t.Helper()
				var ie *InputError
				if !errors.As(err, &ie) || !strings.Contains(ie.What, c.name) || !strings.Contains(ie.What, on) || !strings.Contains(ie.Hint, "--cold-pass=checksum") {
					t.Errorf("quick mode with %s on %s must be refused as bad input naming the file system and the path, with the hint to use checksum mode; got %v", on, c.name, err)
				}
			}
			// SRC on it: the job checks SRC before it opens DEST.
			networkAt(src)
			refused(pass.CheckQuickFS(src), src)
			// DEST on it: the destination refuses before it writes anything.
			networkAt(filepath.Dir(dst))
			_, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2, ColdPass: ColdQuick})
			refused(err, filepath.Dir(dst))
			if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused quick cold pass must not create DEST (%v)", err)
			}
			// The checksum cold pass trusts no stat: it runs there.
			if _, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2}); err != nil {
				t.Errorf("the default checksum cold pass runs on any file system: %v", err)
			}
			sameTree(t, src, dst)
		})
	}
}

// A file shrinking under the live pass is not an error: it gets no record
// and the next pass copies it.
func testLivePassToleratesAFileShrinkingUnderIt(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	target := filepath.Join(src, "base/1/16384")
	faults.Hooks.AfterOpen = func(path string) {
		if path == target {
			must(t, os.Truncate(target, 8192))
		}
	}
	t.Cleanup(func() { faults.Hooks.AfterOpen = nil })
	if _, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{Jobs: 2}); err != nil {
		t.Fatalf("a file shrinking under the live pass must not fail it: %v", err)
	}
	faults.Hooks.AfterOpen = nil
	mustPass(t, dk, manifest.Cold, src, dst)
	sameTree(t, src, dst)
}

// A file that grows while the live pass reads it is marked, and the next
// live pass reads it again whatever its stat says.
func testLivePassMarksAFileChangedWhileRead(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	target := filepath.Join(src, "pg_xact/0000")
	faults.Hooks.AfterOpen = func(path string) {
		if path == target {
			f, err := os.OpenFile(target, os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			f.Write(make([]byte, 8192))
			f.Close()
		}
	}
	t.Cleanup(func() { faults.Hooks.AfterOpen = nil })
	mustPass(t, dk, manifest.Live, src, dst)
	faults.Hooks.AfterOpen = nil
	r, err := manifest.Open(filepath.Join(dst, manifest.DirName, manifest.FileName))
	must(t, err)
	defer r.Close()
	for {
		f, err := r.Next()
		if err != nil {
			t.Fatal("pg_xact/0000 has no record")
		}
		if f.Path == "pg_xact/0000" {
			if f.Flags&manifest.FlagChangedWhileCopied == 0 {
				t.Fatal("a file whose stat moved during the read must be marked changed-while-copied")
			}
			break
		}
	}
	st := mustPass(t, dk, manifest.Live, src, dst)
	if st.FilesExamined != 2 { // pg_xact/0000 and pg_control
		t.Errorf("the next live pass must read the marked file again: examined %d files", st.FilesExamined)
	}
	sameTree(t, src, dst)
}

// In the cold pass a source file that changes while read means the server
// is not really stopped: the pass fails and the copy stays unsealed.
func testColdPassFailsWhenTheSourceChanges(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	target := filepath.Join(src, "global/1262")
	faults.Hooks.AfterOpen = func(path string) {
		if path == target {
			f, _ := os.OpenFile(target, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("x"))
			f.Close()
		}
	}
	t.Cleanup(func() { faults.Hooks.AfterOpen = nil })
	_, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2})
	if err == nil || !strings.Contains(err.Error(), "changed while the cold pass read it") {
		t.Fatalf("a source changing during the cold pass must fail it, got %v", err)
	}
	if sealed(dst) {
		t.Fatal("a failed cold pass must leave the copy unsealed")
	}
}
