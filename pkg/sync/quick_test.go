package sync

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

func quickPass(t *testing.T, src, dst string, margin time.Duration) PassStats {
	t.Helper()
	st, err := runPass(t, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2, ColdPass: ColdQuick, QuickMargin: margin})
	if err != nil {
		t.Fatalf("quick cold pass: %v", err)
	}
	return st
}

func TestQuickColdPassSkipsFilesPastTheHorizon(t *testing.T) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	time.Sleep(60 * time.Millisecond) // the files' ctimes are past the horizon when the copy reads them
	mustPass(t, manifest.Cold, src, dst)
	st := quickPass(t, src, dst, 50*time.Millisecond)
	sameTree(t, src, dst)
	if st.FilesExamined != 1 || st.BytesWritten != 0 {
		t.Errorf("quick cold pass over an unchanged source must read only pg_control, examined %d files, wrote %d bytes", st.FilesExamined, st.BytesWritten)
	}
	if !sealed(dst) {
		t.Error("a quick cold pass seals like a checksum one")
	}
}

func TestQuickColdPassCatchesTheMtimeTrap(t *testing.T) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, manifest.Cold, src, dst)
	time.Sleep(60 * time.Millisecond)
	rewriteBlock(t, src, "base/1/16384", 77) // same size, mtime restored
	st := quickPass(t, src, dst, 50*time.Millisecond)
	sameTree(t, src, dst)
	if st.BlocksWritten != 1 {
		t.Errorf("a same-size rewrite with its mtime restored moves ctime: the quick pass must read the file and write its block, wrote %d blocks", st.BlocksWritten)
	}
}

func TestQuickColdPassRereadsFilesChangedWithinTheMargin(t *testing.T) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	// The copy is made right after the files were written: their ctimes
	// are within a 10 s margin of the read, so no stat can vouch for them.
	mustPass(t, manifest.Cold, src, dst)
	time.Sleep(60 * time.Millisecond)
	st := quickPass(t, src, dst, 10*time.Second)
	if want := int64(len(regularFiles(t, src))); st.FilesExamined != want {
		t.Errorf("files changed within the safe margin of their last read must be read again: examined %d of %d", st.FilesExamined, want)
	}
	// That re-read began more than 50 ms after the files' last change.
	if st := quickPass(t, src, dst, 50*time.Millisecond); st.FilesExamined != 1 {
		t.Errorf("after a read safely after the last change, only pg_control is read; examined %d", st.FilesExamined)
	}
}

func regularFiles(t *testing.T, dir string) []string {
	var out []string
	for _, e := range mustWalk(t, dir) {
		if e.isRegular() {
			out = append(out, e.rel)
		}
	}
	return out
}

func TestQuickColdPassRefusesNetworkFileSystems(t *testing.T) {
	// The table is what the check consults; the local file systems of the
	// test machine are not network ones.
	if err := checkQuickFS(t.TempDir()); err != nil {
		t.Fatalf("a local file system must be accepted: %v", err)
	}
	if name := networkFS[0x6969]; name != "NFS" {
		t.Fatalf("NFS's magic must be known, got %q", name)
	}
}

// A file shrinking under the live pass is not an error: it gets no record
// and the next pass copies it.
func TestLivePassToleratesAFileShrinkingUnderIt(t *testing.T) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	target := filepath.Join(src, "base/1/16384")
	Faults.AfterOpen = func(path string) {
		if path == target {
			must(t, os.Truncate(target, 8192))
		}
	}
	t.Cleanup(func() { Faults.AfterOpen = nil })
	if _, err := runPass(t, context.Background(), manifest.Live, src, dst, Options{Jobs: 2}); err != nil {
		t.Fatalf("a file shrinking under the live pass must not fail it: %v", err)
	}
	Faults.AfterOpen = nil
	mustPass(t, manifest.Cold, src, dst)
	sameTree(t, src, dst)
}

// A file that grows while the live pass reads it is marked, and the next
// live pass reads it again whatever its stat says.
func TestLivePassMarksAFileChangedWhileRead(t *testing.T) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	target := filepath.Join(src, "pg_xact/0000")
	Faults.AfterOpen = func(path string) {
		if path == target {
			f, err := os.OpenFile(target, os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			f.Write(make([]byte, 8192))
			f.Close()
		}
	}
	t.Cleanup(func() { Faults.AfterOpen = nil })
	mustPass(t, manifest.Live, src, dst)
	Faults.AfterOpen = nil
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
	st := mustPass(t, manifest.Live, src, dst)
	if st.FilesExamined != 2 { // pg_xact/0000 and pg_control
		t.Errorf("the next live pass must read the marked file again: examined %d files", st.FilesExamined)
	}
	sameTree(t, src, dst)
}

// In the cold pass a source file that changes while read means the server
// is not really stopped: the pass fails and the copy stays unsealed.
func TestColdPassFailsWhenTheSourceChanges(t *testing.T) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	target := filepath.Join(src, "global/1262")
	Faults.AfterOpen = func(path string) {
		if path == target {
			f, _ := os.OpenFile(target, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("x"))
			f.Close()
		}
	}
	t.Cleanup(func() { Faults.AfterOpen = nil })
	_, err := runPass(t, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2})
	if err == nil || !strings.Contains(err.Error(), "changed while the cold pass read it") {
		t.Fatalf("a source changing during the cold pass must fail it, got %v", err)
	}
	if sealed(dst) {
		t.Fatal("a failed cold pass must leave the copy unsealed")
	}
}
