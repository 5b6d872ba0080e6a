package manifest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readPath reads the manifest at path as every caller does (Open: the
// manifest with its journal applied).
func readPath(path string) (Header, []*File, error) {
	r, err := Open(path)
	if err != nil {
		return Header{}, nil, err
	}
	defer r.Close()
	var files []*File
	for {
		f, err := r.Next()
		if err == io.EOF {
			return r.Header, files, nil
		}
		if err != nil {
			return r.Header, files, err
		}
		files = append(files, f)
	}
}

func clone(files []*File) []*File {
	out := make([]*File, len(files))
	for i, f := range files {
		c := *f
		c.Hashes = slices.Clone(f.Hashes)
		out[i] = &c
	}
	return out
}

// journalPass brings the manifest at path to files (in walk order) as a
// WAL-guided cold pass does: through an Index of heads, and a journal of
// what changed: each file's runs are the blocks whose hashes differ from
// the index's. It returns the index, closed, for its counts.
func journalPass(t testing.TB, path string, h Header, files []*File) *Index {
	t.Helper()
	ix, err := OpenIndex(path, true, func(err error) { t.Fatalf("the index finds damage: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	w, err := ix.CreateJournal()
	if err != nil {
		t.Fatal(err)
	}
	gone := func() {
		for _, g := range ix.Gone() {
			if err := w.Delete(g); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range files {
		old := ix.Find(f.Path)
		gone()
		var runs []Run
		if old == nil {
			for i, x := range f.Hashes {
				runs = AddHash(runs, uint32(i), x)
			}
		} else {
			oh, err := ix.Hashes(old, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, x := range f.Hashes {
				if i >= len(oh) || oh[i] != x {
					runs = AddHash(runs, uint32(i), x)
				}
			}
			head := *f
			head.Hashes = nil
			if runs == nil && cmp.Equal(head, old.File) {
				continue // kept as it was: no entry
			}
		}
		if err := w.Put(old, f, runs); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Rest(); err != nil {
		t.Fatal(err)
	}
	gone()
	if err := w.Commit(h); err != nil {
		t.Fatal(err)
	}
	return ix
}

func withCounts(h Header, files []*File) Header {
	h.Files, h.Bytes = uint64(len(files)), 0
	for _, f := range files {
		h.Bytes += uint64(f.Dest.Size)
	}
	return h
}

// mustRead fails unless the manifest at path reads as h and files.
func mustRead(t *testing.T, what, path string, h Header, files []*File) {
	t.Helper()
	gotH, got, err := readPath(path)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if d := cmp.Diff(withCounts(h, files), gotH); d != "" {
		t.Errorf("%s: header (-want +got):\n%s", what, d)
	}
	if d := cmp.Diff(files, got); d != "" {
		t.Errorf("%s: records (-want +got):\n%s", what, d)
	}
}

// twoPasses returns a manifest's records after a first and a second
// WAL-guided cold pass: blocks changed, a file extended, one truncated,
// one deleted, one new, one new then deleted, one whose head alone moved.
func twoPasses() (first, second []*File) {
	base := sampleFiles()
	first = clone(base)
	first[1].Hashes[1] = HashBlock([]byte("changed in pass 1")) // base/1/1259
	first[1].Dest.Ctime++
	first[2].Dest.Size, first[2].Hashes = 8192*2, []Hash{HashBlock([]byte("x")), HashBlock([]byte("y"))} // base/1/1259_fsm grows
	first[3].Source.Mtime++                                                                              // base/1-x: head only
	newFile := &File{Path: "base/1/2000", Dest: Stat{Size: 8192}, Hashes: []Hash{HashBlock([]byte("new"))}}
	first = append(first[:3], append([]*File{newFile}, first[3:]...)...)
	// PG_VERSION deleted.
	first = first[1:]

	second = clone(first)
	second[0].Hashes[0] = HashBlock([]byte("changed in pass 2"))         // base/1/1259 again: blocks 0 and 1 differ from the base
	second[0].Dest.Size, second[0].Hashes = 8192*2, second[0].Hashes[:2] // and truncated
	second = append(second[:2], second[3:]...)                           // base/1/2000, new in pass 1, deleted
	second = append(second, &File{Path: "zz", Dest: Stat{Size: 5}, Hashes: []Hash{HashBlock([]byte("zz"))}})
	return first, second
}

// Two WAL-guided cold passes in a row: the second journal carries the
// first's changes with its own, still relative to the untouched manifest,
// and every reader sees the manifest with them applied.
func TestJournalOfTwoPassesInARow(t *testing.T) {
	dir := t.TempDir()
	h := sampleHeader()
	path := writeManifest(t, dir, h, sampleFiles())
	baseBytes, _ := os.ReadFile(path)
	first, second := twoPasses()

	h1 := h
	h1.AddPass(Pass{Kind: Cold, Started: 100})
	journalPass(t, path, h1, first)
	mustRead(t, "the manifest with the first journal", path, h1, first)
	h2 := h1
	h2.AddPass(Pass{Kind: Cold, Started: 200})
	journalPass(t, path, h2, second)
	mustRead(t, "the manifest with the journal of two passes", path, h2, second)
	if after, _ := os.ReadFile(path); !bytes.Equal(baseBytes, after) {
		t.Error("a journal's commit must leave the manifest itself untouched")
	}
	if got, err := ReadHeader(path); err != nil || !cmp.Equal(got, withCounts(h2, second)) {
		t.Errorf("ReadHeader must give the journal's header: %v\n%s", err, cmp.Diff(withCounts(h2, second), got))
	}
	// The journal holds changes, not the files: PG_VERSION, kept, has no
	// entry; base/1/2000, new then gone, none either.
	b, _ := os.ReadFile(JournalPath(path))
	j, err := decodeJournal(b)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range j.changes {
		paths = append(paths, c.head.Path)
	}
	if want := []string{"PG_VERSION", "base/1/1259", "base/1/1259_fsm", "base/1-x", "zz"}; !cmp.Equal(want, paths) {
		t.Errorf("the journal's entries: want %v, got %v", want, paths)
	}
	if !j.changes[0].deleted || len(j.changes[1].runs) != 1 || len(j.changes[1].runs[0].Hashes) != 2 {
		t.Errorf("PG_VERSION is deleted, base/1/1259 holds blocks 0 and 1 (one run): %+v", j.changes[:2])
	}

	// Compaction: a full commit folds the journal in and removes it.
	if err := Compact(path, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(JournalPath(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Compact must remove the journal (%v)", err)
	}
	mustRead(t, "the compacted manifest", path, h2, second)
	if b, _ := os.ReadFile(path); le.Uint16(b[8:]) != 2 {
		t.Errorf("a compacted manifest is written as version 2, got %d", le.Uint16(b[8:]))
	}
}

// A full commit (the next live pass) removes the journal; and one killed
// between its rename and the journal's removal leaves a stale journal that
// names the old manifest: readers ignore it and see the new manifest.
func TestCommitRemovesTheJournalAndAStaleOneIsIgnored(t *testing.T) {
	dir := t.TempDir()
	h := sampleHeader()
	path := writeManifest(t, dir, h, sampleFiles())
	first, _ := twoPasses()
	journalPass(t, path, h, first)
	stale, err := os.ReadFile(JournalPath(path))
	if err != nil {
		t.Fatal(err)
	}
	h2 := h
	h2.AddPass(Pass{Kind: Live, Started: 300})
	files := sampleFiles()[:2]
	writeManifest(t, dir, h2, files)
	if _, err := os.Stat(JournalPath(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Writer.Commit must remove the journal (%v)", err)
	}
	// The crash: the journal back, as if its removal had not reached the disk.
	if err := os.WriteFile(JournalPath(path), stale, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRead(t, "a manifest with a stale journal", path, h2, files)
	ix, err := OpenIndex(path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.j != nil || ix.Find("base/1/2000") != nil {
		t.Error("the index must ignore a stale journal")
	}
	// A journal pass over it replaces the stale journal.
	journalPass(t, path, h2, files[1:])
	mustRead(t, "a journal pass over a stale journal", path, h2, files[1:])
}

// Every truncation and every bit flip of a journal makes the manifest
// corrupt as a whole: a damaged journal is never applied, nor taken for a
// stale one. Exhaustively for the journal's reader (decodeJournal, which
// Open and OpenIndex call before anything else), and through Open and an
// Index for every seventh byte.
func TestEveryJournalTruncationAndBitFlipIsDetected(t *testing.T) {
	dir := t.TempDir()
	path := writeManifest(t, dir, sampleHeader(), sampleFiles())
	first, _ := twoPasses()
	journalPass(t, path, sampleHeader(), first)
	jpath := JournalPath(path)
	good, _ := os.ReadFile(jpath)
	check := func(what string, b []byte, throughFiles bool) {
		t.Helper()
		if _, err := decodeJournal(b); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("%s: the journal must be corrupt, got %v", what, err)
		}
		if !throughFiles {
			return
		}
		if err := os.WriteFile(jpath, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readPath(path); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("%s: the manifest read with it must be corrupt, got %v", what, err)
		}
		if _, err := OpenIndex(path, true, nil); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("%s: an index must refuse it, got %v", what, err)
		}
	}
	for n := 0; n < len(good); n++ {
		check("journal truncated to "+itoa(n)+" bytes", good[:n], n%7 == 0)
	}
	check("a byte after the journal", append(slices.Clone(good), 0), true)
	for i := range good {
		for bit := range 8 {
			bad := slices.Clone(good)
			bad[i] ^= 1 << bit
			check("bit "+itoa(bit)+" of journal byte "+itoa(i), bad, i%7 == 0 && bit == i%8)
		}
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// The manifest written by the previous release (format version 1, made by
// its code: testdata/manifest-v1) reads as it did, through Open and an
// Index, takes a journal, and the next full commit rewrites it as version 2.
func TestVersion1IsStillRead(t *testing.T) {
	golden, err := os.ReadFile("testdata/manifest-v1")
	if err != nil {
		t.Fatal(err)
	}
	if le.Uint16(golden[8:]) != 1 {
		t.Fatal("testdata/manifest-v1 must be of version 1")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, golden, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRead(t, "a version 1 manifest", path, sampleHeader(), sampleFiles())
	sameAsReader(t, path)
	// Every truncation and bit flip of it is still detected.
	for n := 0; n < len(golden); n++ {
		if _, _, err := readAll(bytes.NewReader(golden[:n])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a version 1 manifest truncated to %d bytes: got %v, want ErrCorrupt", n, err)
		}
	}
	for i := range golden {
		for bit := range 8 {
			bad := slices.Clone(golden)
			bad[i] ^= 1 << bit
			if _, _, err := readAll(bytes.NewReader(bad)); err == nil {
				t.Fatalf("bit %d of byte %d of a version 1 manifest flipped: accepted", bit, i)
			}
		}
	}
	first, second := twoPasses()
	journalPass(t, path, sampleHeader(), first)
	mustRead(t, "a version 1 manifest with a journal", path, sampleHeader(), first)
	journalPass(t, path, sampleHeader(), second)
	sameAsReader(t, path)
	writeManifest(t, dir, sampleHeader(), second)
	if b, _ := os.ReadFile(path); le.Uint16(b[8:]) != Version {
		t.Errorf("the next full commit writes version %d, got %d", Version, le.Uint16(b[8:]))
	}
	mustRead(t, "rewritten", path, sampleHeader(), second)
}

// sameAsReader fails unless an Index of heads finds the records a Reader
// reads: the same heads, and for chosen blocks (all, none, some) the same
// hashes; and lists as gone the records not asked for.
func sameAsReader(t *testing.T, path string) {
	t.Helper()
	_, want, err := readPath(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, partial := range []bool{true, false} {
		ix, err := OpenIndex(path, partial, func(err error) { t.Fatalf("damage: %v", err) })
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(3, 4))
		var gone []string
		for k, f := range want {
			if k%3 == 2 {
				continue // not asked for: gone
			}
			h := ix.Find(f.Path)
			for _, g := range ix.Gone() {
				gone = append(gone, g.Path)
			}
			if h == nil {
				t.Fatalf("the index does not find %s", f.Path)
			}
			head := *f
			head.Hashes = nil
			got := h.File
			if partial && got.Hashes != nil {
				t.Errorf("an index of heads reads no hashes with the head of %s", f.Path)
			}
			got.Hashes = nil
			if !cmp.Equal(head, got) || h.NumBlocks() != len(f.Hashes) {
				t.Errorf("the head of %s (-reader +index):\n%s", f.Path, cmp.Diff(head, got))
			}
			all, err := ix.Hashes(h, nil)
			if err != nil || !cmp.Equal(all, f.Hashes, cmp.Comparer(func(a, b []Hash) bool { return slices.Equal(a, b) })) {
				t.Errorf("all the hashes of %s: %v", f.Path, err)
			}
			var some []uint32
			for i := range f.Hashes {
				if r.IntN(2) == 0 {
					some = append(some, uint32(i))
				}
			}
			got2, err := ix.Hashes(h, some)
			if err != nil {
				t.Fatal(err)
			}
			for k, i := range some {
				if got2[k] != f.Hashes[i] {
					t.Errorf("hash of block %d of %s: the index's differs from the reader's", i, f.Path)
				}
			}
		}
		if err := ix.Rest(); err != nil {
			t.Fatal(err)
		}
		for _, g := range ix.Gone() {
			gone = append(gone, g.Path)
		}
		var wantGone []string
		for k, f := range want {
			if k%3 == 2 {
				wantGone = append(wantGone, f.Path)
			}
		}
		if partial && !cmp.Equal(wantGone, gone) {
			t.Errorf("gone: want %v, got %v", wantGone, gone)
		}
		ix.Close()
	}
}

func TestIndexFindsWhatTheReaderReads(t *testing.T) {
	dir := t.TempDir()
	path := writeManifest(t, dir, sampleHeader(), sampleFiles())
	sameAsReader(t, path)
	first, second := twoPasses()
	journalPass(t, path, sampleHeader(), first)
	sameAsReader(t, path)
	journalPass(t, path, sampleHeader(), second)
	sameAsReader(t, path)
}

// hashRegions returns the byte ranges of a version 2 manifest that an Index
// of heads does not read: the hashes and the record checksum of each
// record.
func hashRegions(t *testing.T, data []byte) [][2]int {
	t.Helper()
	var out [][2]int
	for off := HeaderSize; data[off] == tagFile; {
		n := int(le.Uint32(data[off+1:]))
		hl := headLen(string(make([]byte, le.Uint16(data[off+5:]))))
		out = append(out, [2]int{off + 5 + hl + sumLen, off + 5 + n + sumLen})
		off += 5 + n + sumLen
	}
	return out
}

// An Index of heads detects every truncation of the manifest and every bit
// flip in what it reads (the header, the heads, the end): it finds nothing
// from the damage on. Flips in the hashes it does not read are left to the
// full readers (TestEveryBitFlipIsDetected) and, for the hashes it reads, to
// the argument of docs/design.md.
func TestIndexDetectsDamageInWhatItReads(t *testing.T) {
	path := writeManifest(t, t.TempDir(), sampleHeader(), sampleFiles())
	data, _ := os.ReadFile(path)
	skip := hashRegions(t, data)
	none := filepath.Join(t.TempDir(), "none") // no journal
	damaged := func(b []byte) bool {
		ix := &Index{path: none}
		ix.onDamage = func(err error) { ix.err = err }
		if err := ix.openHeads(bytes.NewReader(b), int64(len(b)), 0); err != nil {
			return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrVersion)
		}
		for _, f := range sampleFiles() {
			ix.Find(f.Path)
		}
		return errors.Is(ix.Rest(), ErrCorrupt)
	}
	for n := 0; n < len(data); n++ {
		if !damaged(data[:n]) {
			t.Fatalf("an index of a manifest truncated to %d of %d bytes must find it damaged", n, len(data))
		}
	}
	if !damaged(append(slices.Clone(data), 0)) {
		t.Fatal("an index must find a byte after the end")
	}
	for i := range data {
		if slices.ContainsFunc(skip, func(r [2]int) bool { return i >= r[0] && i < r[1] }) {
			continue
		}
		for bit := range 8 {
			bad := slices.Clone(data)
			bad[i] ^= 1 << bit
			if !damaged(bad) {
				t.Fatalf("bit %d of byte %d (outside the hashes) flipped: the index did not find it", bit, i)
			}
		}
	}
	if damaged(data) {
		t.Fatal("the intact manifest must not be found damaged (the control)")
	}
}

// A manifest damaged part way, with a journal: Compact keeps the records
// before the damage and the journal's records that stand by themselves, and
// says why.
func TestCompactSalvagesADamagedManifest(t *testing.T) {
	dir := t.TempDir()
	path := writeManifest(t, dir, sampleHeader(), sampleFiles())
	first, _ := twoPasses()
	journalPass(t, path, sampleHeader(), first)
	data, _ := os.ReadFile(path)
	r := hashRegions(t, data)
	data[r[2][0]-1] ^= 1 // the head checksum of the third record, base/1/1259_fsm
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var damage error
	if err := Compact(path, func(err error) { damage = err }); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(damage, ErrCorrupt) {
		t.Errorf("Compact must report the damage, got %v", damage)
	}
	_, got, err := readPath(path)
	if err != nil {
		t.Fatal(err)
	}
	// base/1/1259 (before the damage, with the journal's blocks),
	// base/1/1259_fsm (the journal holds it whole), base/1/2000 (new);
	// base/1-x and global/pg_control, which the journal does not hold
	// whole, are left out.
	want := []*File{first[0], first[1], first[2]}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("salvaged records (-want +got):\n%s", d)
	}
}

func TestJournalWriterRefusesWhatItCannotRecord(t *testing.T) {
	dir := t.TempDir()
	path := writeManifest(t, dir, sampleHeader(), sampleFiles())
	ix, err := OpenIndex(path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	w, err := ix.CreateJournal()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	old := ix.Find("base/1/1259")
	grown := *old
	grown.Dest.Size = 8192 * 6
	if err := w.Put(old, &grown.File, []Run{{First: 4, Hashes: make([]Hash, 1)}}); err == nil {
		t.Error("a file grown past its record must carry the hashes of its new blocks")
	}
	if err := w.Put(nil, &File{Path: "base/1/3", Dest: Stat{Size: 8192}}, nil); err == nil {
		t.Error("a new file must carry all its hashes")
	}
	if err := w.Put(old, &old.File, []Run{{First: 3, Hashes: make([]Hash, 2)}}); err == nil {
		t.Error("a run past the file's blocks must be refused")
	}
	if err := w.Put(old, &old.File, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(old, &old.File, nil); err == nil {
		t.Error("changes out of walk order must be refused")
	}
	if _, err := (&Index{}).CreateJournal(); err == nil {
		t.Error("a journal needs an index of heads")
	}
}

// FuzzJournal: whatever the journal's reader accepts re-encodes to its own
// bytes; nothing makes it panic.
func FuzzJournal(f *testing.F) {
	dir := f.TempDir()
	path := writeManifest(f, dir, sampleHeader(), sampleFiles())
	first, _ := twoPasses()
	journalPass(f, path, sampleHeader(), first)
	good, _ := os.ReadFile(JournalPath(path))
	f.Add(good)
	f.Add(good[:journalHeaderSize+3])
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeJournal(b)
		if err != nil {
			return
		}
		var out []byte
		for i := range j.changes {
			out = appendChange(out, &j.changes[i])
		}
		out = append(out, tagEnd)
		h := j.header
		hdr := encodeJournalHeader(j.base, 0, &h)
		if !bytes.Equal(b[journalHeaderSize:], out) || !bytes.Equal(b[:18], hdr[:18]) {
			t.Fatal("an accepted journal does not re-encode to its own bytes")
		}
	})
}
