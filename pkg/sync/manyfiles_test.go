package sync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/faults"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// manySmallFiles adds n small files to the cluster in src, more than a
// pass's window holds at once.
func manySmallFiles(t *testing.T, src string, n int) {
	t.Helper()
	dir := filepath.Join(src, "base", "5")
	must(t, os.MkdirAll(dir, 0o700))
	for i := range n {
		must(t, os.WriteFile(filepath.Join(dir, fmt.Sprint(16384+i)), []byte(fmt.Sprintf("relation %d", i)), 0o600))
	}
}

// testFailedFsyncFailsThePass: the copy's files are fsynced in the
// background while the sender reads on; one that fails fails the pass (it
// does not hang, with more files than the window holds), nothing is
// committed, and the next pass converges.
func testFailedFsyncFailsThePass(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	manySmallFiles(t, src, 2000)
	dst := filepath.Join(t.TempDir(), "copy")
	var syncs atomic.Int64
	var mu stdsync.Mutex
	var failed string
	faults.Hooks.BeforeSync = func(path string) error {
		if syncs.Add(1) == 100 {
			mu.Lock()
			failed = path
			mu.Unlock()
			return errors.New("injected EIO")
		}
		return nil
	}
	t.Cleanup(func() { faults.Hooks.BeforeSync = nil })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := runPass(t, dk, ctx, manifest.Cold, src, dst, Options{Jobs: 2})
	if err == nil || !strings.Contains(err.Error(), "injected EIO") || ctx.Err() != nil {
		t.Fatalf("a failed fsync must fail the pass with its error, promptly, got %v (context: %v)", err, ctx.Err())
	}
	mu.Lock()
	if failed == "" {
		t.Fatalf("the hook saw no fsync")
	}
	mu.Unlock()
	if sealed(dst) {
		t.Fatalf("a pass whose fsync failed must not seal the copy")
	}
	if h, err := manifest.ReadHeader(filepath.Join(dst, manifest.DirName, manifest.FileName)); err == nil && len(h.Passes) > 0 {
		t.Fatalf("a pass whose fsync failed must commit no manifest, the copy's records %d passes", len(h.Passes))
	}
	faults.Hooks.BeforeSync = nil
	mustPass(t, dk, manifest.Cold, src, dst)
	sameTree(t, src, dst)
	if !sealed(dst) {
		t.Fatalf("the next cold pass seals the copy")
	}
}

// testManyFilesUnchangedCostNothingOnTheCopy: a cold pass over files the
// copy already holds writes nothing, and every record still vouches for its
// file (the copy's stat taken ahead of the merge is the stat recorded).
func testManyFilesUnchangedCostNothingOnTheCopy(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	manySmallFiles(t, src, 1500)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	cold := mustPass(t, dk, manifest.Cold, src, dst)
	if cold.BytesWritten != 0 || cold.FilesChanged > 2 {
		t.Fatalf("a cold pass over an unchanged source writes nothing (pg_control and its directory aside): wrote %d bytes, %d files changed", cold.BytesWritten, cold.FilesChanged)
	}
	live := mustPass(t, dk, manifest.Live, src, dst)
	if live.FilesSkipped < 1500 {
		t.Fatalf("after a cold pass the records vouch for the copy's files: %d skipped by the next live pass", live.FilesSkipped)
	}
	checkRecords(t, dst, true)
	sameTree(t, src, dst)
}
