package wal

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// writeSegments writes the synthetic segments to dir as files.
func writeSegments(t *testing.T, s *synth, dir string) {
	t.Helper()
	for no, b := range s.segs {
		if err := os.WriteFile(filepath.Join(dir, SegmentFileName(s.tli, no, s.segSize)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeeperKeepsRemovedAndRenamedSegments: once the keeper holds them, a
// segment unlinked (a checkpoint removed it) and a segment renamed to a
// future name (recycled) are still read whole; a segment that appears
// later is picked up by a scan; one removed before any scan saw it is
// missing, never silently skipped.
func TestKeeperKeepsRemovedAndRenamedSegments(t *testing.T) {
	dir := t.TempDir()
	start := LSN(synthSegSize + 0x28)
	s := newSynth(16, start)
	var written []LSN
	for i := 0; i < 40; i++ {
		written = append(written, s.record(RmgrLogicalMessage, 0, uint32(i), body(nil, nil, 0, bytes.Repeat([]byte{byte(i)}, 100000))))
	}
	writeSegments(t, s, dir)
	last := uint64(s.pos) / synthSegSize
	// Segment `last` appears only after the keeper started.
	lastName := filepath.Join(dir, SegmentFileName(1, last, synthSegSize))
	if err := os.Rename(lastName, lastName+".later"); err != nil {
		t.Fatal(err)
	}

	k, err := NewKeeper(dir, 1, synthSegSize, start)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if k.Held() != int(last-1) {
		t.Fatalf("holds %d segments, want %d", k.Held(), last-1)
	}
	// A checkpoint removes segment 1 and recycles segment 2 as a future one.
	if err := os.Remove(filepath.Join(dir, SegmentFileName(1, 1, synthSegSize))); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, SegmentFileName(1, 2, synthSegSize)), filepath.Join(dir, SegmentFileName(1, last+5, synthSegSize))); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(lastName+".later", lastName); err != nil {
		t.Fatal(err)
	}
	if n, err := k.Scan(); err != nil || n != 1 {
		t.Fatalf("Scan opened %d, %v; want the one segment that appeared", n, err)
	}
	r, _ := NewReader(ReaderOptions{Source: k, Start: start, TLI: 1, SegmentSize: synthSegSize})
	recs, err := readAll(t, r)
	wantKind(t, err, ErrEndOfWAL, 0)
	if len(recs) != len(written) {
		t.Fatalf("read %d records through the keeper, wrote %d", len(recs), len(written))
	}

	// Released segments are closed and no longer served.
	if err := k.Release(3 * synthSegSize); err != nil {
		t.Fatal(err)
	}
	if _, err := k.OpenSegment(1, 2, synthSegSize); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a released segment: %v", err)
	}
	if k.Held() != int(last-2) {
		t.Errorf("holds %d after releasing 2", k.Held())
	}

	// Without the keeper, the same directory has lost segment 1.
	r, _ = NewReader(ReaderOptions{Source: Dir(dir), Start: start, TLI: 1, SegmentSize: synthSegSize})
	_, err = r.Next()
	wantKind(t, err, ErrMissingSegment, synthSegSize)

	// A keeper that starts after segment 1 was removed cannot start.
	if _, err := NewKeeper(dir, 1, synthSegSize, start); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("NewKeeper on a removed start segment: %v", err)
	}
}

// TestKeeperRecycledAndRewritten: a held segment that the server recycled
// and then wrote again as a future segment no longer holds the old contents;
// the reader notices (page addresses), it does not read the new contents
// as the old.
func TestKeeperRecycledAndRewritten(t *testing.T) {
	dir := t.TempDir()
	start := LSN(synthSegSize + 0x28)
	s := newSynth(17, start)
	for i := 0; i < 30; i++ {
		s.record(RmgrLogicalMessage, 0, uint32(i), body(nil, nil, 0, bytes.Repeat([]byte{byte(i)}, 100000)))
	}
	writeSegments(t, s, dir)
	k, err := NewKeeper(dir, 1, synthSegSize, start)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	// Segment 2 is recycled to segment 9's name, and the server writes
	// segment 9 into it (in place, as it writes a recycled file).
	seg2 := filepath.Join(dir, SegmentFileName(1, 2, synthSegSize))
	seg9 := filepath.Join(dir, SegmentFileName(1, 9, synthSegSize))
	if err := os.Rename(seg2, seg9); err != nil {
		t.Fatal(err)
	}
	other := newSynth(17, 9*synthSegSize+0x28)
	other.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
	f, err := os.OpenFile(seg9, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(other.segs[9][:PageSize], 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, _ := NewReader(ReaderOptions{Source: k, Start: start, TLI: 1, SegmentSize: synthSegSize})
	_, err = readAll(t, r)
	if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupportedMagic) {
		t.Fatalf("reading a recycled and rewritten segment: %v", err)
	}
	t.Log(err)
	sum, _ := Summarize(context.Background(), func() *Reader {
		r, _ := NewReader(ReaderOptions{Source: k, Start: start, TLI: 1, SegmentSize: synthSegSize})
		return r
	}(), SummaryOptions{})
	if sum.Fallback == nil {
		t.Fatal("a summary over a rewritten segment has no fallback")
	}
}
