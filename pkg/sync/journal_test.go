package sync

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/sync/sender"
)

// fakePlan is a WAL-guided cold pass's read plan: the blocks the WAL names
// of the files in blocks; the files in none are named by no record; every
// other file is read whole.
type fakePlan struct {
	blocks map[string][]uint32
	none   map[string]bool
}

func (p fakePlan) For(rel string) (bool, []uint32) {
	if b, ok := p.blocks[rel]; ok {
		return false, b
	}
	return !p.none[rel], nil
}

// runWALPass runs a WAL-guided cold pass with plan, whose CHECKPOINT
// returned at since.
func runWALPass(t *testing.T, dk destKind, src, dst string, plan fakePlan, since time.Time) PassStats {
	t.Helper()
	o := Options{Source: src, Dest: dst, Jobs: 2}
	must(t, o.validate())
	s := testSource(src)
	d, rep, err := openDest(t, dk, s, dst, &o)
	must(t, err)
	defer d.Close()
	j := &job{opts: &o, src: s, dst: d}
	cfg := j.senderConfig(manifest.Cold)
	cfg.WAL = &sender.WAL{Plan: plan, Since: since, Margin: time.Millisecond}
	st, _, err := sender.Run(context.Background(), cfg, d, rep.Header)
	if err != nil {
		t.Fatalf("WAL-guided cold pass: %v", err)
	}
	return st
}

// writeBlock writes data at block blk (8 KiB) of the source file rel.
func writeBlock(t *testing.T, src, rel string, blk int64, data string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(src, rel), os.O_WRONLY, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteAt([]byte(data), blk*8192+17)
	must(t, err)
}

// verifyManifest fails unless the copy's manifest, as every reader sees it
// (with its journal), describes the copy block by block.
func verifyManifest(t *testing.T, dk destKind, src, dst, what string) {
	t.Helper()
	d, _, err := openDest(t, dk, testSource(src), dst, &Options{DryRun: true})
	must(t, err)
	defer d.Close()
	diffs, err := d.VerifyManifest(context.Background(), 2, pass.NewExcluder(false, nil))
	if err != nil || len(diffs) != 0 {
		t.Fatalf("%s: the manifest must describe the copy: %v %v", what, err, diffs)
	}
}

// testWALColdPassWritesAJournal: a WAL-guided cold pass reads of a relation
// file with a trusted record only the blocks the WAL names, leaves the
// manifest as it was and commits a journal of what changed, much smaller
// than the manifest; a second one in a row carries the first's changes in
// its journal; every reader sees the manifest with the journal applied; the
// next live pass folds the journal into a new manifest and removes it.
func testWALColdPassWritesAJournal(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	since := time.Now() // the CHECKPOINT: before the live pass, whose records are then good at its redo point
	mustPass(t, dk, manifest.Live, src, dst)
	mpath := filepath.Join(dst, manifest.DirName, manifest.FileName)
	jpath := manifest.JournalPath(mpath)
	base, err := os.ReadFile(mpath)
	must(t, err)

	// The source changes: two blocks of the large relation file, which the
	// WAL names, the FSM fork (read whole), a new relation file; a file
	// goes.
	writeBlock(t, src, "base/1/16384", 2, "changed block 2")
	writeBlock(t, src, "base/1/16384", 600, "changed block 600")
	writeBlock(t, src, "base/1/16384_fsm", 1, "fsm")
	must(t, os.WriteFile(filepath.Join(src, "base/1/16385"), bytes.Repeat([]byte("n"), 3*8192), 0o600))
	must(t, os.Remove(filepath.Join(src, "pg_xact/0000")))
	plan := fakePlan{blocks: map[string][]uint32{"base/1/16384": {2, 600, 700}}, none: map[string]bool{"global/1262": true}}
	st := runWALPass(t, dk, src, dst, plan, since)
	sameTree(t, src, dst)
	if st.BytesRead > 1<<20 {
		t.Errorf("the WAL-guided cold pass reads the blocks the WAL names of the 8 MiB relation file, not the file: read %d bytes", st.BytesRead)
	}
	if after, _ := os.ReadFile(mpath); !bytes.Equal(base, after) {
		t.Error("a WAL-guided cold pass leaves the manifest itself as it was: its commit writes the journal")
	}
	jfi, err := os.Stat(jpath)
	if err != nil {
		t.Fatalf("a WAL-guided cold pass commits a journal: %v", err)
	}
	t.Logf("manifest %d bytes, journal %d bytes", len(base), jfi.Size())
	if jfi.Size() > int64(len(base))/2 {
		t.Errorf("the journal (%d bytes) holds the changes, not the files: much smaller than the manifest (%d bytes)", jfi.Size(), len(base))
	}
	verifyManifest(t, dk, src, dst, "after a WAL-guided cold pass")
	h, err := manifest.ReadHeader(mpath)
	if err != nil || !h.ColdComplete() || h.Passes[len(h.Passes)-1].Kind != manifest.Cold {
		t.Errorf("the manifest's header, as its journal gives it, records the cold pass: %+v %v", h, err)
	}

	// A second WAL-guided cold pass in a row (the files the first wrote in
	// its commit's clock tick are read whole: the safe horizon).
	writeBlock(t, src, "base/1/16384", 3, "changed block 3")
	runWALPass(t, dk, src, dst, fakePlan{blocks: map[string][]uint32{"base/1/16384": {3}}}, since)
	sameTree(t, src, dst)
	if after, _ := os.ReadFile(mpath); !bytes.Equal(base, after) {
		t.Error("a second WAL-guided cold pass leaves the manifest as it was")
	}
	verifyManifest(t, dk, src, dst, "after two WAL-guided cold passes")

	// The next live pass compacts.
	mustPass(t, dk, manifest.Live, src, dst)
	if _, err := os.Stat(jpath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the live pass after a WAL-guided cold pass folds the journal into the manifest and removes it (%v)", err)
	}
	if b, _ := os.ReadFile(mpath); len(b) < 10 || b[8] != manifest.Version {
		t.Error("the live pass writes the manifest in the current version")
	}
	verifyManifest(t, dk, src, dst, "after the compaction")
	mustPass(t, dk, manifest.Cold, src, dst)
	sameTree(t, src, dst)
}

// testWALColdPassOverADamagedManifest: a WAL-guided cold pass over a
// manifest whose index finds a damaged head reads the files after the
// damage whole, as any pass does, and leaves no damaged manifest behind
// the copy it seals: its journal is folded at once into a new manifest.
func testWALColdPassOverADamagedManifest(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	since := time.Now()
	mustPass(t, dk, manifest.Live, src, dst)
	mpath := filepath.Join(dst, manifest.DirName, manifest.FileName)
	data, err := os.ReadFile(mpath)
	must(t, err)
	i := bytes.Index(data, []byte("global/1262"))
	if i < 0 {
		t.Fatal("no record of global/1262")
	}
	data[i+7] ^= 1 // in the path: the head checksum fails
	must(t, os.WriteFile(mpath, data, 0o600))
	writeBlock(t, src, "base/1/16384", 2, "changed block 2")
	writeBlock(t, src, "global/1262", 1, "after the damage")
	var warned bool
	o := Options{Source: src, Dest: dst, Jobs: 2, Observer: observerFunc(func(e Event) {
		if e.Kind == Warning && bytes.Contains([]byte(e.Msg), []byte("the manifest is damaged")) {
			warned = true
		}
	})}
	must(t, o.validate())
	s := testSource(src)
	d, rep, err := openDest(t, dk, s, dst, &o)
	must(t, err)
	j := &job{opts: &o, src: s, dst: d}
	cfg := j.senderConfig(manifest.Cold)
	cfg.WAL = &sender.WAL{Plan: fakePlan{blocks: map[string][]uint32{"base/1/16384": {2}, "global/1262": {1}}}, Since: since, Margin: time.Millisecond}
	_, _, err = sender.Run(context.Background(), cfg, d, rep.Header)
	d.Close()
	must(t, err)
	if !warned {
		t.Error("the damage the index finds is reported")
	}
	sameTree(t, src, dst)
	if _, err := os.Stat(manifest.JournalPath(mpath)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after damage, the journal is folded into a new manifest at once (%v)", err)
	}
	verifyManifest(t, dk, src, dst, "after a WAL-guided cold pass over a damaged manifest")
}
