package manifest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zeebo/xxh3"
)

func sampleHeader() Header {
	h := Header{Flags: FlagColdComplete, BlockSize: 8192, SystemIdentifier: 7312345678901234567, PGVersion: "15", Created: 1700000000123456789}
	h.AddPass(Pass{Kind: Live, Started: 1, Finished: 2, BytesRead: 3, BytesWritten: 4, FilesChanged: 5, FilesDeleted: 6})
	h.AddPass(Pass{Kind: Cold, Started: 7, Finished: 8, BytesRead: 9, BytesWritten: 10, FilesChanged: 11, FilesDeleted: 12, ReadNs: 13, WriteNs: 14})
	return h
}

func sampleFiles() []*File {
	mk := func(path string, size int64, seed byte) *File {
		f := &File{Path: path, CRC32C: 0xdeadbeef ^ uint32(seed), Source: Stat{Size: size, Mtime: 11, Ctime: 12, Inode: 13}, Dest: Stat{Size: size, Mtime: 21, Ctime: 22, Inode: 23}, ReadStart: 99}
		for i := range NumBlocks(size, 8192) {
			f.Hashes = append(f.Hashes, HashBlock([]byte{seed, byte(i)}))
		}
		return f
	}
	return []*File{
		mk("PG_VERSION", 3, 1),
		mk("base/1/1259", 8192*3+100, 2),
		mk("base/1/1259_fsm", 0, 3),
		mk("base/1-x", 8192, 4),
		mk("global/pg_control", 8192, 5),
	}
}

func writeManifest(t testing.TB, dir string, h Header, files []*File) string {
	t.Helper()
	path := filepath.Join(dir, FileName)
	w, err := Create(path, int(h.BlockSize))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := w.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(h); err != nil {
		t.Fatal(err)
	}
	return path
}

func readAll(r io.Reader) (Header, []*File, error) {
	mr, err := NewReader(r)
	if err != nil {
		return Header{}, nil, err
	}
	var files []*File
	for {
		f, err := mr.Next()
		if err == io.EOF {
			return mr.Header, files, nil
		}
		if err != nil {
			return mr.Header, files, err
		}
		files = append(files, f)
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	h, files := sampleHeader(), sampleFiles()
	path := writeManifest(t, dir, h, files)
	h.Files = uint64(len(files))
	for _, f := range files {
		h.Bytes += uint64(f.Dest.Size)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gotH, gotFiles, err := readAll(f)
	if err != nil {
		t.Fatalf("reading back a committed manifest: %v", err)
	}
	if d := cmp.Diff(h, gotH); d != "" {
		t.Errorf("header does not round-trip (-want +got):\n%s", d)
	}
	if d := cmp.Diff(files, gotFiles); d != "" {
		t.Errorf("file records do not round-trip (-want +got):\n%s", d)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("commit must leave only the manifest, found %d entries", len(entries))
	}
}

func TestCommitReplacesAtomicallyAndAbortKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := writeManifest(t, dir, sampleHeader(), sampleFiles())
	before, _ := os.ReadFile(path)

	w, err := Create(path, 8192)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(sampleFiles()[0]); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("an aborted manifest must leave the previous manifest untouched")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("abort must remove its temporary file, found %d entries", len(entries))
	}
}

// Every truncation of a valid manifest must be reported as corrupt: a reader
// that reaches io.EOF has seen every record and a valid trailer.
func TestEveryTruncationIsDetected(t *testing.T) {
	path := writeManifest(t, t.TempDir(), sampleHeader(), sampleFiles())
	data, _ := os.ReadFile(path)
	for n := 0; n < len(data); n++ {
		_, _, err := readAll(bytes.NewReader(data[:n]))
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("manifest truncated to %d of %d bytes: got %v, want ErrCorrupt", n, len(data), err)
		}
	}
	if _, _, err := readAll(bytes.NewReader(append(data, 0))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a byte after the trailer must be reported as corrupt, got %v", err)
	}
}

// Every single-bit flip anywhere in the file must be detected (header,
// records, hashes, trailer).
func TestEveryBitFlipIsDetected(t *testing.T) {
	path := writeManifest(t, t.TempDir(), sampleHeader(), sampleFiles())
	data, _ := os.ReadFile(path)
	for i := range data {
		for bit := range 8 {
			bad := bytes.Clone(data)
			bad[i] ^= 1 << bit
			_, _, err := readAll(bytes.NewReader(bad))
			if err == nil {
				t.Fatalf("bit %d of byte %d flipped: manifest accepted", bit, i)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("bit %d of byte %d flipped: got %v, want ErrCorrupt or ErrVersion", bit, i, err)
			}
		}
	}
}

func TestVersionMismatch(t *testing.T) {
	path := writeManifest(t, t.TempDir(), sampleHeader(), nil)
	data, _ := os.ReadFile(path)
	binary.LittleEndian.PutUint16(data[len(magic):], Version+1)
	_, _, err := readAll(bytes.NewReader(data))
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("a manifest of version %d must be refused with ErrVersion, got %v", Version+1, err)
	}
}

func TestWriterRefusesOutOfOrderAndBadHashCount(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, FileName), 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	files := sampleFiles()
	if err := w.Add(files[1]); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(files[0]); err == nil {
		t.Error("adding a record before its predecessor in walk order must fail")
	}
	bad := *files[2]
	bad.Path = "zz"
	bad.Dest.Size = 8193
	if err := w.Add(&bad); err == nil {
		t.Error("a record whose hash count does not match its size must be refused")
	}
}

func TestComparePathsMatchesWalkOrder(t *testing.T) {
	// A depth-first walk listing each directory in byte order.
	walk := []string{"a", "a/b", "a/b/c", "a/b-", "a-c", "a.d", "a0", "b", "b/a"}
	shuffled := []string{"a0", "b/a", "a-c", "a/b-", "a", "a.d", "a/b/c", "b", "a/b"}
	sort.Slice(shuffled, func(i, j int) bool { return ComparePaths(shuffled[i], shuffled[j]) < 0 })
	if d := cmp.Diff(walk, shuffled); d != "" {
		t.Errorf("ComparePaths must order paths as a depth-first walk visits them (-want +got):\n%s", d)
	}
	if ComparePaths("x/y", "x/y") != 0 {
		t.Error("equal paths must compare equal")
	}
}

func TestValidBlockSize(t *testing.T) {
	for bs, want := range map[int]bool{0: false, 4096: true, 8192: true, 12288: false, 1 << 24: true, 1 << 25: false, 2048: false} {
		if ValidBlockSize(bs) != want {
			t.Errorf("ValidBlockSize(%d) = %v, want %v", bs, !want, want)
		}
	}
}

func FuzzReader(f *testing.F) {
	dir := f.TempDir()
	path := writeManifest(f, dir, sampleHeader(), sampleFiles())
	data, _ := os.ReadFile(path)
	f.Add(data)
	f.Add(data[:40])
	empty := writeManifest(f, f.TempDir(), Header{BlockSize: 4096}, nil)
	e, _ := os.ReadFile(empty)
	f.Add(e)
	if v1, err := os.ReadFile("testdata/manifest-v1"); err == nil {
		f.Add(v1)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mr, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		var files []*File
		for {
			f, err := mr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
			files = append(files, f)
		}
		// Whatever the reader accepts must re-encode to the same bytes, in
		// the version it was written in.
		var out bytes.Buffer
		for _, f := range files {
			if mr.base.version == 1 {
				out.Write(appendFileV1(nil, f))
			} else {
				out.Write(appendFile(nil, f))
			}
		}
		out.WriteByte(tagEnd)
		hdr := encodeHeaderVersion(&mr.Header, xxh3.Hash(out.Bytes()), mr.base.version)
		if !bytes.Equal(b, append(hdr, out.Bytes()...)) {
			t.Fatalf("accepted manifest does not re-encode to its own bytes")
		}
	})
}

// appendFileV1 encodes a record as format version 1 did: no head checksum.
func appendFileV1(b []byte, f *File) []byte {
	start := len(b)
	b = append(b, tagFile)
	b = le.AppendUint32(b, uint32(headLen(f.Path)+16*len(f.Hashes)))
	b = appendHead(b, f, len(f.Hashes))
	for i := range f.Hashes {
		b = append(b, f.Hashes[i][:]...)
	}
	return le.AppendUint64(b, xxh3.Hash(b[start:]))
}

func TestHeaderSizeMatchesTheSpec(t *testing.T) {
	// docs/design.md gives the header's size and layout; keep them in step.
	if HeaderSize != 2162 {
		t.Fatalf("HeaderSize = %d, docs/design.md says 2162", HeaderSize)
	}
	if got := len(encodeHeader(&Header{BlockSize: 8192}, 0)); got != HeaderSize {
		t.Fatalf("an encoded header is %d bytes, want %d", got, HeaderSize)
	}
}

// A damaged record length (up to the 256 MiB a record may hold) in a short
// manifest costs no allocation of that size: found by FuzzReader, whose
// executions crawled under such allocations.
func TestDamagedLengthAllocatesLittle(t *testing.T) {
	path := writeManifest(t, t.TempDir(), sampleHeader(), sampleFiles())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le.PutUint32(b[HeaderSize+1:], maxBodyLen) // the first record's length
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := readAll(bytes.NewReader(b)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a manifest whose first record claims %d bytes is corrupt, got %v", maxBodyLen, err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Errorf("reading a short manifest whose record claims %d bytes allocated %d bytes", maxBodyLen, n)
	}
}
