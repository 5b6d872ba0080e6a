package manifest

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// procIO returns the bytes this process has read and written through
// system calls (/proc/self/io: rchar, wchar).
func procIO(t *testing.T) (read, written int64) {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "rchar":
			read = n
		case "wchar":
			written = n
		}
	}
	return read, written
}

type walIO struct {
	files                   int
	manifest                int64 // its size
	read, written           int64 // system calls, during the pass
	indexRead, journalBytes int64
}

// simulateWALPass builds the manifest of a cluster of files × blocksPer
// blocks (8 KiB: 128 MiB files at 16384), then does to it what a WAL-guided
// cold pass's destination does when k blocks changed, spread over ten files:
// every head found through an Index, the hashes of the k blocks read, a
// journal of the changes committed. It counts the bytes read and written
// meanwhile.
func simulateWALPass(t *testing.T, files, blocksPer, k int) walIO {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	w, err := Create(path, 8192)
	if err != nil {
		t.Fatal(err)
	}
	name := func(i int) string { return fmt.Sprintf("base/16384/%d", 100000+i) }
	rec := &File{Dest: Stat{Size: int64(blocksPer) * 8192}, Hashes: make([]Hash, blocksPer)}
	for i := range files {
		rec.Path = name(i)
		for b := range rec.Hashes {
			le.PutUint64(rec.Hashes[b][:], uint64(i)<<32|uint64(b))
		}
		if err := w.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(Header{BlockSize: 8192, PGVersion: "17"}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	// The same ten files and blocks at every size.
	r := rand.New(rand.NewPCG(7, 8))
	changed := map[string][]uint32{}
	for f := range 10 {
		var blocks []uint32
		for range k / 10 {
			blocks = append(blocks, uint32(r.IntN(blocksPer)))
		}
		slices.Sort(blocks)
		changed[name(f*7)] = slices.Compact(blocks)
	}

	r0, w0 := procIO(t)
	ix, err := OpenIndex(path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	jw, err := ix.CreateJournal()
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		h := ix.Find(name(i))
		blocks := changed[name(i)]
		if h == nil || blocks == nil {
			continue
		}
		old, err := ix.Hashes(h, blocks)
		if err != nil {
			t.Fatal(err)
		}
		var runs []Run
		for n, b := range blocks {
			nh := old[n]
			nh[0] ^= 1 // changed
			runs = AddHash(runs, b, nh)
		}
		if err := jw.Put(h, &h.File, runs); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Rest(); err != nil {
		t.Fatal(err)
	}
	if err := jw.Commit(ix.Header); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	r1, w1 := procIO(t)
	jfi, _ := os.Stat(JournalPath(path))
	return walIO{files: files, manifest: fi.Size(), read: r1 - r0, written: w1 - w0, indexRead: ix.BytesRead(), journalBytes: jfi.Size()}
}

// The manifest I/O of a WAL-guided cold pass follows the blocks it writes,
// not the cluster: for two clusters 5× apart (100 and 500 files of 128 MiB:
// 12.5 and 62.5 GiB, manifests of 25 and 125 MiB) and the same 1000 changed
// blocks, the bytes written are the same, and the bytes read differ only by
// the heads of the 400 more files (at most one read window each).
func TestWALPassManifestIOFollowsTheChanges(t *testing.T) {
	const k = 1000
	small := simulateWALPass(t, 100, 16384, k)
	large := simulateWALPass(t, 500, 16384, k)
	for _, m := range []walIO{small, large} {
		t.Logf("%d files: manifest %d bytes; the WAL pass read %d bytes (index: %d), wrote %d (journal: %d bytes)",
			m.files, m.manifest, m.read, m.indexRead, m.written, m.journalBytes)
	}
	// A head is a page (two when it straddles pages).
	more := int64(large.files - small.files)
	extra := large.read - small.read
	t.Logf("the larger cluster cost %d more bytes read: %d per more file", extra, extra/more)
	if extra > more*2*window {
		t.Errorf("the bytes read grow with the cluster: %d more for %d more files (%d per file, at most %d)",
			extra, more, extra/more, 2*window)
	}
	// wchar counts every write of the process: the Go runtime's wake-ups of
	// its poller write 8 bytes to an eventfd now and then (more often on a
	// busy machine), which are not the manifest's. A few of those aside,
	// the writes are the same.
	if d := small.written - large.written; d < -64 || d > 64 || small.journalBytes != large.journalBytes {
		t.Errorf("the bytes written must not depend on the cluster: %d and %d (journals %d and %d)",
			small.written, large.written, small.journalBytes, large.journalBytes)
	}
	// What it writes is the journal: its header (twice: its place, then
	// itself) and 16 bytes a block, plus the runs and the heads; what it
	// reads, the heads and the pages of the blocks' hashes.
	if max := int64(2*journalHeaderSize + 10*200 + k*(16+8)); large.written > max {
		t.Errorf("the pass writes %d bytes for %d blocks, more than %d", large.written, k, max)
	}
	if large.read > large.manifest/20 {
		t.Errorf("the pass reads %d bytes of a %d-byte manifest: more than 5%%", large.read, large.manifest)
	}
	if large.indexRead > large.read {
		t.Errorf("the index counts %d bytes read, the system %d", large.indexRead, large.read)
	}
}
