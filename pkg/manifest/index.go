package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"
)

// An Index finds the records of the paths a pass asks for, in walk order,
// like a [Finder], and gives the hashes of chosen blocks of a record.
//
// Opened with partial set (a WAL-guided cold pass), it reads of a version 2
// manifest only the heads of its records (everything but the hashes, checked
// by their head checksum) and, of a record, only the hashes asked for, at
// their offsets: the manifest's I/O follows the files and the blocks the
// pass reads, not the copy's size. The journal, if one applies, is read and
// checked whole. Hashes read so cannot be checked by their record's
// checksum; docs/design.md ("Reading part of the manifest") argues why that
// is safe: a damaged hash can only make a block look changed. A version 1
// manifest has no head checksums: its records are read whole.
//
// Opened without partial set, it reads every record whole and checks
// everything, as a Reader does.
type Index struct {
	// Header is the manifest's: the journal's when one applies.
	Header Header

	// config
	path     string
	bs       int
	onDamage func(error)

	// state: without partial
	full *Finder
	// state: with partial
	f        *os.File    // to close
	r        io.ReaderAt // the manifest: f, or a test's bytes
	size     int64
	version  uint16
	baseHdr  Header // the manifest's own header
	baseID   uint64
	j        *journal
	ci       int
	win      []byte // what the last read of heads read, at winOff
	winOff   int64
	off      int64 // the manifest's next record
	peek     *Head // the manifest's next record's head, read ahead
	baseDone bool
	view     *Head // the next record with the journal applied
	count    uint64
	bytes    uint64
	last     string
	gone     []*Head
	read     int64
	// both
	mtime int64
	err   error // damage found; nothing is found past it
}

// Head is a record as an Index finds it: File without its hashes (but
// for an Index without partial, which reads records whole), and where the
// hashes are.
type Head struct {
	File
	nb     int
	inBase bool    // the manifest itself has a record of the path
	baseN  int     // the block count of that record
	off    int64   // where its hash 0 is in the manifest
	hashes []Hash  // its hashes, when read whole
	c      *change // the journal's change of the path, if any
}

// NumBlocks is the block count of the record.
func (h *Head) NumBlocks() int { return h.nb }

// window is the unit of the reads of heads: whole pages of 4 KiB, what a
// disk reads anyway. The records of small files are read whole with their
// neighbours; of a large file's record, the page (or two) of its head.
const window = 4 << 10

// OpenIndex opens the manifest at path (and its journal, as Open does). A
// manifest damaged part way vouches for nothing from the damage on: Find
// returns nil for every path after it, and onDamage (may be nil) is told
// why, once.
func OpenIndex(path string, partial bool, onDamage func(error)) (*Index, error) {
	ix := &Index{path: path}
	ix.onDamage = func(err error) {
		if ix.err == nil {
			ix.err = err
			if onDamage != nil {
				onDamage(err)
			}
		}
	}
	if !partial {
		r, err := Open(path)
		if err != nil {
			return nil, err
		}
		ix.Header, ix.bs, ix.mtime = r.Header, int(r.Header.BlockSize), r.mtime
		ix.full = NewFinder(r, ix.onDamage)
		return ix, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		// The reads of heads and hashes go forward by strides: read-ahead
		// would read the hashes skipped.
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
		ix.f = f
		err = ix.openHeads(f, fi.Size(), fi.ModTime().UnixNano())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return ix, nil
}

// openHeads reads the header of the manifest r of size bytes, and its
// journal.
func (ix *Index) openHeads(r io.ReaderAt, size, mtime int64) error {
	ix.r, ix.size, ix.mtime, ix.off = r, size, mtime, HeaderSize
	b := make([]byte, HeaderSize)
	n, err := r.ReadAt(b, 0)
	ix.read += int64(n)
	if err != nil && err != io.EOF {
		return fmt.Errorf("failed to read manifest: %w", err)
	}
	if ix.baseHdr, ix.version, _, err = decodeHeader(b[:n]); err != nil {
		return err
	}
	ix.baseID, ix.bs, ix.Header = headerID(b), int(ix.baseHdr.BlockSize), ix.baseHdr
	j, mtime, err := loadJournal(ix.path, ix.baseID, ix.baseHdr.BlockSize)
	if err != nil {
		return err
	}
	if j != nil {
		ix.j, ix.Header, ix.mtime = j, j.header, mtime
		if fi, err := os.Stat(JournalPath(ix.path)); err == nil {
			ix.read += fi.Size()
		}
	}
	return nil
}

// Close closes the manifest.
func (ix *Index) Close() {
	if ix.full != nil {
		ix.full.Close()
	}
	if ix.f != nil {
		ix.f.Close()
		ix.f = nil
	}
	ix.r, ix.view, ix.peek = nil, nil, nil
}

// Mtime is the time of the manifest's last commit (Unix ns): the mtime of
// its journal when one applies, else its own.
func (ix *Index) Mtime() int64 { return ix.mtime }

// Err is the damage found so far, if any.
func (ix *Index) Err() error { return ix.err }

// BytesRead counts the bytes of the manifest and its journal read so far
// (with partial set).
func (ix *Index) BytesRead() int64 { return ix.read }

// Find returns the record of path, or nil; paths must come in walk order
// (ComparePaths). The records of paths not asked for are skipped: with
// partial set, Gone returns them.
func (ix *Index) Find(path string) *Head {
	if ix.full != nil {
		f := ix.full.Find(path)
		if f == nil {
			return nil
		}
		return &Head{File: *f, nb: len(f.Hashes), inBase: true, baseN: len(f.Hashes), hashes: f.Hashes}
	}
	for {
		h := ix.next()
		if h == nil {
			return nil
		}
		switch c := ComparePaths(h.Path, path); {
		case c < 0:
			ix.gone = append(ix.gone, h)
			ix.view = nil
		case c == 0:
			ix.view = nil
			return h
		default:
			return nil
		}
	}
}

// Gone returns the records skipped by Find (and Rest) since the last call:
// the files the pass no longer has.
func (ix *Index) Gone() []*Head {
	g := ix.gone
	ix.gone = nil
	return g
}

// Rest skips the records after the last path found, to the end, and
// returns the damage found, if any.
func (ix *Index) Rest() error {
	if ix.full == nil {
		for h := ix.next(); h != nil; h = ix.next() {
			ix.gone = append(ix.gone, h)
			ix.view = nil
		}
	}
	return ix.err
}

// next returns the next record with the journal applied (without
// consuming it), or nil at the end or past damage.
func (ix *Index) next() *Head {
	for ix.view == nil && ix.err == nil && ix.r != nil {
		if ix.peek == nil && !ix.baseDone {
			h, err := ix.nextHead()
			if err != nil {
				ix.onDamage(err)
				return nil
			}
			ix.peek = h
			ix.baseDone = h == nil
		}
		var c *change
		if ix.j != nil && ix.ci < len(ix.j.changes) {
			c = &ix.j.changes[ix.ci]
		}
		switch {
		case ix.peek == nil && c == nil:
			return nil
		case c == nil || ix.peek != nil && ComparePaths(ix.peek.Path, c.head.Path) < 0:
			ix.view, ix.peek = ix.peek, nil
		default:
			ix.ci++
			h := &Head{File: c.head, nb: c.nb, c: c}
			if b := ix.peek; b != nil && b.Path == c.head.Path {
				ix.peek = nil
				h.inBase, h.baseN, h.off, h.hashes = true, b.baseN, b.off, b.hashes
			}
			switch {
			case c.deleted && !h.inBase:
				ix.onDamage(corrupt("the journal deletes %s, which the manifest has not", c.head.Path))
			case c.deleted:
			case c.needsBase() > h.baseN:
				ix.onDamage(corrupt("the journal's record of %s takes blocks its manifest does not have", c.head.Path))
			default:
				ix.view = h
			}
		}
	}
	return ix.view
}

// at returns n bytes of the manifest at off, from the window or read into
// it. The slice is valid until the next call.
func (ix *Index) at(off int64, n int) ([]byte, error) {
	if off >= ix.winOff && off+int64(n) <= ix.winOff+int64(len(ix.win)) {
		return ix.win[off-ix.winOff:][:n], nil
	}
	if off+int64(n) > ix.size {
		return nil, corrupt("truncated after %d records", ix.count)
	}
	// Whole pages: what the disk reads anyway.
	start := off &^ (window - 1)
	end := min((off+int64(n)+window-1)&^(window-1), ix.size)
	m := int(end - start)
	if cap(ix.win) < m {
		ix.win = make([]byte, m)
	}
	ix.win = ix.win[:m]
	k, err := ix.r.ReadAt(ix.win, start)
	ix.read += int64(k)
	if k < m {
		ix.win = ix.win[:0]
		return nil, fmt.Errorf("failed to read manifest: %w", shortRead(err))
	}
	ix.winOff = start
	return ix.win[off-start:][:n], nil
}

// shortRead is the error of a read that returned less than asked, err.
func shortRead(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nextHead reads the head of the manifest's next record (nil after the
// last one, whose end it checks).
func (ix *Index) nextHead() (*Head, error) {
	off := ix.off
	b, err := ix.at(off, 1)
	if err != nil {
		return nil, err
	}
	switch b[0] {
	case tagEnd:
		switch {
		case off+1 != ix.size:
			return nil, corrupt("data after the end of the records")
		case ix.count != ix.baseHdr.Files || ix.bytes != ix.baseHdr.Bytes:
			return nil, corrupt("header counts %d files and %d bytes, records hold %d and %d", ix.baseHdr.Files, ix.baseHdr.Bytes, ix.count, ix.bytes)
		}
		return nil, nil
	case tagFile:
	default:
		return nil, corrupt("unknown record tag %#x after %d records", b[0], ix.count)
	}
	if ix.count >= ix.baseHdr.Files {
		return nil, corrupt("more records than the %d the header counts", ix.baseHdr.Files)
	}
	if b, err = ix.at(off, 7); err != nil {
		return nil, err
	}
	n, pl := int(le.Uint32(b[1:])), int(le.Uint16(b[5:]))
	hl := 2 + pl + headFixed
	minLen := minBodyLen
	if ix.version >= 2 {
		minLen += sumLen
	}
	switch {
	case n > maxBodyLen || n < minLen:
		return nil, corrupt("record length %d after %d records", n, ix.count)
	case off+int64(5+n+sumLen) > ix.size:
		return nil, corrupt("truncated after %d records", ix.count)
	}
	var h *Head
	if ix.version < 2 {
		// No head checksum: the record is read and checked whole.
		rec, err := ix.at(off, 5+n+sumLen)
		if err != nil {
			return nil, err
		}
		if le.Uint64(rec[5+n:]) != xxh3.Hash(rec[:5+n]) {
			return nil, corrupt("record %d checksum mismatch", ix.count+1)
		}
		f, err := decodeBody(rec[5:5+n], ix.version, ix.bs)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", ix.count+1, err)
		}
		h = &Head{File: *f, nb: len(f.Hashes), hashes: f.Hashes}
		h.File.Hashes = nil
	} else {
		if hl > n {
			return nil, corrupt("record %d: path length %d", ix.count+1, pl)
		}
		rec, err := ix.at(off, 5+hl+sumLen)
		if err != nil {
			return nil, err
		}
		if le.Uint64(rec[5+hl:]) != headSum(n, rec[5:5+hl]) {
			return nil, corrupt("record %d: head checksum mismatch", ix.count+1)
		}
		f, nb, _, err := decodeHead(rec[5:5+hl], ix.bs)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", ix.count+1, err)
		}
		if n != hl+sumLen+16*nb {
			return nil, corrupt("record %d (%s): %d hashes in %d bytes", ix.count+1, f.Path, nb, n-hl-sumLen)
		}
		h = &Head{File: *f, nb: nb, off: off + int64(5+hl+sumLen)}
	}
	if ix.count > 0 && ComparePaths(ix.last, h.Path) >= 0 {
		return nil, corrupt("record %d (%s) out of order after %s", ix.count+1, h.Path, ix.last)
	}
	h.inBase, h.baseN = true, h.nb
	ix.last = h.Path
	ix.count++
	ix.bytes += uint64(h.Dest.Size)
	ix.off = off + int64(5+n+sumLen)
	return h, nil
}

// Hashes returns the hashes of the blocks of h's record (sorted, each below
// h.NumBlocks(); nil: all of them): the journal's, else the manifest's,
// read at their offsets. The caller must not change them.
func (ix *Index) Hashes(h *Head, blocks []uint32) ([]Hash, error) {
	if blocks == nil && h.c == nil && h.hashes != nil && len(h.hashes) == h.nb {
		return h.hashes, nil // read whole: the record's own, not copied
	}
	count := len(blocks)
	idx := func(k int) int { return int(blocks[k]) }
	if blocks == nil {
		count, idx = h.nb, func(k int) int { return k }
	}
	out := make([]Hash, count)
	for k := 0; k < count; {
		i := idx(k)
		if i >= h.nb || k > 0 && i <= idx(k-1) {
			return nil, fmt.Errorf("manifest: block %d of %s asked for, out of order or past its %d blocks", i, h.Path, h.nb)
		}
		if h.c != nil {
			if x, ok := h.c.hash(i); ok {
				out[k] = x
				k++
				continue
			}
		}
		if !h.inBase || i >= h.baseN {
			return nil, corrupt("no hash of block %d of %s", i, h.Path)
		}
		if h.hashes != nil {
			out[k] = h.hashes[i]
			k++
			continue
		}
		// The run of blocks that follow in the manifest's record.
		j := k + 1
		for j < count && idx(j) == idx(j-1)+1 && idx(j) < h.baseN {
			if h.c != nil {
				if _, ok := h.c.hash(idx(j)); ok {
					break
				}
			}
			j++
		}
		if err := ix.readHashes(out[k:j], h.off+16*int64(i)); err != nil {
			return nil, err
		}
		k = j
	}
	return out, nil
}

// readHashes reads len(out) hashes at off of the manifest, from the window
// when it holds them.
func (ix *Index) readHashes(out []Hash, off int64) error {
	n := 16 * len(out)
	var b []byte
	if off >= ix.winOff && off+int64(n) <= ix.winOff+int64(len(ix.win)) {
		b = ix.win[off-ix.winOff:][:n]
	} else {
		if ix.r == nil {
			return errors.New("manifest: index closed")
		}
		b = make([]byte, n)
		k, err := ix.r.ReadAt(b, off)
		ix.read += int64(k)
		if k < n {
			return fmt.Errorf("failed to read manifest: %w", shortRead(err))
		}
	}
	for i := range out {
		copy(out[i][:], b[16*i:])
	}
	return nil
}
