package sync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

func mustPassWith(t *testing.T, dk destKind, kind manifest.PassKind, src, dst string, o Options) PassStats {
	t.Helper()
	o.Jobs = 2
	st, err := runPass(t, dk, context.Background(), kind, src, dst, o)
	if err != nil {
		t.Fatalf("%s pass: %v", kind, err)
	}
	return st
}

// testWALDirHoldsTheCopysWAL: with --waldir the copy's pg_wal is a link to
// that directory, which holds the WAL; later passes keep it there without
// being told, and the copy equals the source through the link.
func testWALDirHoldsTheCopysWAL(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	must(t, os.WriteFile(filepath.Join(src, "pg_wal", "000000010000000000000001"), make([]byte, 65536), 0o600))
	dst := filepath.Join(t.TempDir(), "copy")
	wal := filepath.Join(t.TempDir(), "wal")
	mustPassWith(t, dk, manifest.Live, src, dst, Options{WALDir: wal})
	if target, err := os.Readlink(filepath.Join(dst, "pg_wal")); err != nil || target != wal {
		t.Fatalf("with --waldir the copy's pg_wal is a link to it: %q %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(wal, "000000010000000000000001")); err != nil {
		t.Fatalf("the WAL is written into --waldir: %v", err)
	}
	// Later passes keep it there without --waldir.
	mustPassWith(t, dk, manifest.Live, src, dst, Options{})
	mustPassWith(t, dk, manifest.Cold, src, dst, Options{})
	if target, err := os.Readlink(filepath.Join(dst, "pg_wal")); err != nil || target != wal {
		t.Fatalf("a later pass keeps the copy's WAL where the first put it: %q %v", target, err)
	}
	sameTree(t, src, dst)
	// Another --waldir than the copy's is refused.
	_, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{Jobs: 2, WALDir: filepath.Join(t.TempDir(), "other")})
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.What, "the copy's WAL is in") {
		t.Fatalf("a --waldir other than where the copy's WAL is must be refused, got %v", err)
	}
}

// testRelinkedWALIsKept: a DBA who moved the copy's WAL to another disk and
// linked pg_wal there does not lose the link: the next pass refuses it with
// the hint to name it, and --waldir naming it adopts it.
func testRelinkedWALIsKept(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	must(t, os.WriteFile(filepath.Join(src, "pg_wal", "000000010000000000000001"), make([]byte, 65536), 0o600))
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	disk := filepath.Join(t.TempDir(), "newdisk")
	must(t, os.Rename(filepath.Join(dst, "pg_wal"), disk))
	must(t, os.Symlink(disk, filepath.Join(dst, "pg_wal")))
	_, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{Jobs: 2})
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.Hint, "--waldir "+disk) {
		t.Fatalf("a pg_wal link pgtwopass did not make must be refused with the hint to name it, got %v", err)
	}
	if target, _ := os.Readlink(filepath.Join(dst, "pg_wal")); target != disk {
		t.Fatalf("the refused pass keeps the DBA's link")
	}
	mustPassWith(t, dk, manifest.Live, src, dst, Options{WALDir: disk})
	mustPassWith(t, dk, manifest.Cold, src, dst, Options{})
	if target, _ := os.Readlink(filepath.Join(dst, "pg_wal")); target != disk {
		t.Fatalf("--waldir adopts the DBA's WAL directory")
	}
	sameTree(t, src, dst)
}

// testMissingParentsNeedMkpath: as rsync, DEST's parent must exist; with
// --mkpath the missing directories are made, 0755 so that the server's
// user passes through them.
func testMissingParentsNeedMkpath(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	base := t.TempDir()
	dst := filepath.Join(base, "a", "b", "copy")
	_, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{Jobs: 2})
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.What, "does not exist") || !strings.Contains(ie.Hint, "--mkpath") {
		t.Fatalf("a DEST whose parent is missing must be refused with the hint --mkpath, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused pass creates nothing (%v)", err)
	}
	mustPassWith(t, dk, manifest.Live, src, dst, Options{MkPath: true})
	for _, p := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b")} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("--mkpath makes the missing parent %s with mode 0755, got %v %v", p, fi.Mode(), err)
		}
	}
}

// testWALDirInsideSourceIsRefused: the copy's WAL directory is a directory
// the pass writes: inside SRC it is refused like DEST.
func testWALDirInsideSourceIsRefused(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	_, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{Jobs: 2, WALDir: filepath.Join(src, "base", "wal")})
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.What, "is inside SRC") {
		t.Fatalf("--waldir inside SRC must be refused, got %v", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("nothing is created (%v)", err)
	}
	_ = pass.WALMarker
}

// testNothingIsDroppedSilently: a FIFO or socket is left out with a
// warning naming it, a hard-linked file is copied as a file of its own with
// a warning, and a symlink that leads outside the data directory is
// reported with what a started copy would share; the pass counts each.
func testNothingIsDroppedSilently(t *testing.T, dk destKind) {
	src := fakeCluster(t) // its "link" leads to /etc/hostname
	must(t, syscall.Mkfifo(filepath.Join(src, "base", "fifo"), 0o600))
	must(t, os.Link(filepath.Join(src, "pg_xact", "0000"), filepath.Join(src, "pg_xact", "0001")))
	dst := filepath.Join(t.TempDir(), "copy")
	var warns []string
	st, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2, Observer: warnRecorder{&warns}})
	must(t, err)
	all := strings.Join(warns, "\n")
	for _, want := range []string{"base/fifo", "pg_xact/0000", "link -> /etc/hostname"} {
		if !strings.Contains(all, want) {
			t.Errorf("the pass must warn of %s; warnings:\n%s", want, all)
		}
	}
	if st.Specials != 1 || st.HardLinked != 2 || st.OutsideLinks != 1 {
		t.Errorf("the pass counts 1 special file, 2 hard-linked files, 1 outside link; got %d, %d, %d", st.Specials, st.HardLinked, st.OutsideLinks)
	}
	if _, err := os.Lstat(filepath.Join(dst, "base", "fifo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a FIFO has no place in the copy (%v)", err)
	}
	a, _ := os.Stat(filepath.Join(dst, "pg_xact", "0000"))
	b, _ := os.Stat(filepath.Join(dst, "pg_xact", "0001"))
	if a == nil || b == nil || os.SameFile(a, b) {
		t.Errorf("hard-linked files of SRC are files of their own in the copy")
	}
}
