package manifest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/renameio/v2"
	"github.com/zeebo/xxh3"
)

// The journal (JournalPath) records what a WAL-guided cold pass changed
// relative to a manifest, its base, so that the pass's commit costs I/O in
// proportion to the changes rather than to the copy: per changed file, its
// new head and the hashes of the blocks that changed; per file gone, its
// path. It names its base by the base's header checksum, so that it is
// never applied to another manifest. The next full commit (Writer.Commit)
// writes the manifest with the journal applied and removes the journal.
// docs/design.md gives the byte layout.

const (
	journalMagic   = "PG2PJRNL"
	journalVersion = 1
	// journalHeaderSize: magic, version, base, entries checksum, the
	// manifest header, the journal header's checksum.
	journalHeaderSize = 8 + 2 + 8 + 8 + HeaderSize + 8
)

// Run is a run of consecutive blocks of a file and their hashes.
type Run struct {
	First  uint32
	Hashes []Hash
}

func (r *Run) end() int { return int(r.First) + len(r.Hashes) }

// AddHash returns runs with the hash h of block i added; i must be greater
// than every block already in runs.
func AddHash(runs []Run, i uint32, h Hash) []Run {
	if n := len(runs); n > 0 && runs[n-1].end() == int(i) {
		runs[n-1].Hashes = append(runs[n-1].Hashes, h)
		return runs
	}
	return append(runs, Run{First: i, Hashes: []Hash{h}})
}

// change is one entry of a journal: a file deleted, or its new record
// (head) with the hashes of the blocks that differ from the base's record
// of the same path (all of them when the base has none).
type change struct {
	head    File // without Hashes
	nb      int  // the new record's block count
	deleted bool
	runs    []Run // sorted, disjoint, below nb
}

// needsBase returns how many of the base record's hashes the change takes:
// one past the last block below nb that no run covers (0: none).
func (c *change) needsBase() int {
	need, next := 0, 0
	for _, r := range c.runs {
		if int(r.First) > next {
			need = int(r.First)
		}
		next = r.end()
	}
	if next < c.nb {
		need = c.nb
	}
	return need
}

// hash returns the hash of block i if the change has it.
func (c *change) hash(i int) (Hash, bool) {
	k, _ := slices.BinarySearchFunc(c.runs, i, func(r Run, i int) int { return r.end() - 1 - i })
	if k < len(c.runs) && int(c.runs[k].First) <= i {
		return c.runs[k].Hashes[i-int(c.runs[k].First)], true
	}
	return Hash{}, false
}

// apply returns the record the change makes of base (nil: none).
func (c *change) apply(base *File) (*File, error) {
	f := c.head
	if c.needsBase() > 0 && (base == nil || len(base.Hashes) < c.needsBase()) {
		return nil, corrupt("the journal's record of %s takes blocks its manifest does not have", f.Path)
	}
	if c.nb > 0 {
		f.Hashes = make([]Hash, c.nb)
		if base != nil {
			copy(f.Hashes, base.Hashes)
		}
	}
	for _, r := range c.runs {
		copy(f.Hashes[r.First:], r.Hashes)
	}
	return &f, nil
}

// journal is a journal as read: its base, the header of the manifest with
// it applied, and its changes in walk order.
type journal struct {
	base    uint64
	header  Header
	changes []change
}

// loadJournal reads the journal of the manifest at path, whose header
// checksum is id and block size bs: nil when there is none, or when it
// belongs to another manifest (a stale journal). A damaged journal is an
// error wrapping ErrCorrupt.
func loadJournal(path string, id uint64, bs uint32) (*journal, int64, error) {
	b, mtime, err := readJournalFile(JournalPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	j, err := decodeJournal(b)
	if err != nil {
		return nil, 0, fmt.Errorf("the manifest's journal: %w", err)
	}
	if j.base != id {
		return nil, 0, nil
	}
	if j.header.BlockSize != bs {
		return nil, 0, corrupt("the journal's block size %d is not its manifest's, %d", j.header.BlockSize, bs)
	}
	return j, mtime, nil
}

func readJournalFile(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to read the manifest's journal: %w", err)
	}
	return b, fi.ModTime().UnixNano(), nil
}

// decodeJournal parses and checks a whole journal.
func decodeJournal(b []byte) (*journal, error) {
	if len(b) < len(journalMagic)+2 || string(b[:len(journalMagic)]) != journalMagic {
		return nil, corrupt("not a journal (bad magic)")
	}
	if v := le.Uint16(b[8:]); v != journalVersion {
		return nil, fmt.Errorf("%w: a journal of version %d, this pgtwopass reads version %d", ErrVersion, v, journalVersion)
	}
	if len(b) < journalHeaderSize+sumLen {
		return nil, corrupt("truncated journal")
	}
	hs := journalHeaderSize - sumLen
	if le.Uint64(b[hs:]) != xxh3.Hash(b[:hs]) {
		return nil, corrupt("journal header checksum mismatch")
	}
	if le.Uint64(b[18:]) != xxh3.Hash(b[journalHeaderSize:]) {
		return nil, corrupt("journal entries checksum mismatch")
	}
	h, _, _, err := decodeHeader(b[26 : 26+HeaderSize])
	if err != nil {
		return nil, err
	}
	j := &journal{base: le.Uint64(b[10:]), header: h}
	bs := int(h.BlockSize)
	p := b[journalHeaderSize:]
	for {
		if len(p) == 0 {
			return nil, corrupt("the journal ends without its end tag")
		}
		tag := p[0]
		p = p[1:]
		var c change
		switch tag {
		case tagEnd:
			if len(p) != 0 {
				return nil, corrupt("data after the end of the journal")
			}
			return j, nil
		case tagDeleted:
			if len(p) < 2 {
				return nil, corrupt("truncated journal entry")
			}
			n := int(le.Uint16(p))
			if n == 0 || n > maxPathLen || len(p) < 2+n {
				return nil, corrupt("journal entry path length %d", n)
			}
			c = change{head: File{Path: string(p[2 : 2+n])}, deleted: true}
			p = p[2+n:]
		case tagFile:
			if len(p) < 4 || int(le.Uint32(p)) > len(p)-4 {
				return nil, corrupt("truncated journal entry")
			}
			n := int(le.Uint32(p))
			if c, err = decodeChange(p[4:4+n], bs); err != nil {
				return nil, err
			}
			p = p[4+n:]
		default:
			return nil, corrupt("unknown journal tag %#x after %d entries", tag, len(j.changes))
		}
		if k := len(j.changes); k > 0 && ComparePaths(j.changes[k-1].head.Path, c.head.Path) >= 0 {
			return nil, corrupt("journal entry %s out of order after %s", c.head.Path, j.changes[k-1].head.Path)
		}
		j.changes = append(j.changes, c)
	}
}

// decodeChange parses the body of a journal entry 'F'.
func decodeChange(p []byte, bs int) (change, error) {
	f, nb, n, err := decodeHead(p, bs)
	if err != nil {
		return change{}, fmt.Errorf("journal entry: %w", err)
	}
	c := change{head: *f, nb: nb}
	p = p[n:]
	if len(p) < 4 {
		return c, corrupt("journal entry %s: truncated", f.Path)
	}
	nr := int(le.Uint32(p))
	p = p[4:]
	if nr > len(p)/8 {
		return c, corrupt("journal entry %s: %d runs", f.Path, nr)
	}
	next := 0
	for range nr {
		if len(p) < 8 {
			return c, corrupt("journal entry %s: truncated", f.Path)
		}
		first, k := int(le.Uint32(p)), int(le.Uint32(p[4:]))
		p = p[8:]
		if k == 0 || first < next || first > nb || k > nb-first || 16*k > len(p) {
			return c, corrupt("journal entry %s: a run of %d blocks from %d", f.Path, k, first)
		}
		r := Run{First: uint32(first), Hashes: make([]Hash, k)}
		for i := range r.Hashes {
			copy(r.Hashes[i][:], p[16*i:])
		}
		p = p[16*k:]
		c.runs = append(c.runs, r)
		next = first + k
	}
	if len(p) != 0 {
		return c, corrupt("journal entry %s: %d bytes too many", f.Path, len(p))
	}
	return c, nil
}

// appendChange encodes one journal entry.
func appendChange(b []byte, c *change) []byte {
	if c.deleted {
		b = append(b, tagDeleted)
		b = le.AppendUint16(b, uint16(len(c.head.Path)))
		return append(b, c.head.Path...)
	}
	n := headLen(c.head.Path) + 4
	for _, r := range c.runs {
		n += 8 + 16*len(r.Hashes)
	}
	b = append(b, tagFile)
	b = le.AppendUint32(b, uint32(n))
	b = appendHead(b, &c.head, c.nb)
	b = le.AppendUint32(b, uint32(len(c.runs)))
	for _, r := range c.runs {
		b = le.AppendUint32(b, r.First)
		b = le.AppendUint32(b, uint32(len(r.Hashes)))
		for i := range r.Hashes {
			b = append(b, r.Hashes[i][:]...)
		}
	}
	return b
}

// encodeJournalHeader returns the journal's header.
func encodeJournalHeader(base, entriesSum uint64, h *Header) []byte {
	b := make([]byte, 0, journalHeaderSize)
	b = append(b, journalMagic...)
	b = le.AppendUint16(b, journalVersion)
	b = le.AppendUint64(b, base)
	b = le.AppendUint64(b, entriesSum)
	b = append(b, encodeHeader(h, 0)...)
	return le.AppendUint64(b, xxh3.Hash(b))
}

// mergeRuns returns the runs of nw, and those of old's blocks below nb that
// nw does not cover: the changes of two passes in a row, the second's
// winning.
func mergeRuns(nw, old []Run, nb int) []Run {
	c := change{runs: nw}
	type bh struct {
		i int
		h Hash
	}
	var all []bh
	for _, r := range old {
		for k, h := range r.Hashes {
			if i := int(r.First) + k; i < nb {
				if _, ok := c.hash(i); !ok {
					all = append(all, bh{i, h})
				}
			}
		}
	}
	for _, r := range nw {
		for k, h := range r.Hashes {
			all = append(all, bh{int(r.First) + k, h})
		}
	}
	slices.SortFunc(all, func(a, b bh) int { return a.i - b.i })
	var out []Run
	for _, x := range all {
		out = AddHash(out, uint32(x.i), x.h)
	}
	return out
}

// JournalWriter writes the journal of a pass that read its manifest
// through an Index: the changes relative to the manifest as the index
// read it, merged with the journal it read (two WAL-guided cold passes in
// a row), relative to the same base. Changes come in walk order. Commit
// replaces the journal; the manifest itself is not touched.
type JournalWriter struct {
	// config
	ix   *Index
	path string
	bs   int
	// state
	pending *renameio.PendingFile
	bw      *bufio.Writer
	sum     *xxh3.Hasher
	old     []change // the read journal's changes not yet carried
	last    string
	files   int64
	bytes   int64
	buf     []byte
	err     error
}

// CreateJournal starts a journal of ix's manifest. ix must read heads
// (OpenIndex with partial set).
func (ix *Index) CreateJournal() (*JournalWriter, error) {
	if ix.full != nil || ix.r == nil {
		return nil, errors.New("manifest: a journal needs an index of heads")
	}
	path := JournalPath(ix.path)
	pf, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithPermissions(0o600))
	if err != nil {
		return nil, fmt.Errorf("failed to create the manifest's journal: %w", err)
	}
	w := &JournalWriter{ix: ix, path: path, bs: int(ix.Header.BlockSize), pending: pf, bw: bufio.NewWriterSize(pf, 256<<10), sum: xxh3.New(),
		files: int64(ix.Header.Files), bytes: int64(ix.Header.Bytes)}
	if ix.j != nil {
		w.old = ix.j.changes
	}
	if _, err := w.bw.Write(make([]byte, journalHeaderSize)); err != nil {
		pf.Cleanup()
		return nil, fmt.Errorf("failed to write the manifest's journal: %w", err)
	}
	return w, nil
}

func (w *JournalWriter) write(c *change) {
	if w.err != nil {
		return
	}
	if w.last != "" && ComparePaths(w.last, c.head.Path) >= 0 {
		w.err = fmt.Errorf("manifest journal: %q after %q: changes must be in walk order", c.head.Path, w.last)
		return
	}
	w.last = c.head.Path
	w.buf = appendChange(w.buf[:0], c)
	w.sum.Write(w.buf)
	if _, err := w.bw.Write(w.buf); err != nil {
		w.err = fmt.Errorf("failed to write the manifest's journal: %w", err)
	}
}

// carry writes the read journal's changes of the paths before path ("":
// all), and returns its change of path itself, if any, which the caller
// replaces.
func (w *JournalWriter) carry(path string) *change {
	for len(w.old) > 0 {
		c := &w.old[0]
		cmp := -1
		if path != "" {
			cmp = ComparePaths(c.head.Path, path)
		}
		if cmp > 0 {
			return nil
		}
		w.old = w.old[1:]
		if cmp == 0 {
			return c
		}
		w.write(c)
	}
	return nil
}

// Delete records that the file of old, a record the index found, is gone.
func (w *JournalWriter) Delete(old *Head) error {
	w.carry(old.Path)
	if old.inBase {
		w.write(&change{head: File{Path: old.Path}, deleted: true})
	}
	w.files--
	w.bytes -= old.Dest.Size
	return w.err
}

// Put records the file's new record f (its Hashes are ignored), whose
// blocks differ from old's (the record the index found; nil: none) in runs,
// sorted. Blocks of f that runs does not cover keep old's hashes: runs must
// cover every block of f that old does not have.
func (w *JournalWriter) Put(old *Head, f *File, runs []Run) error {
	if w.err != nil {
		return w.err
	}
	c := change{head: *f, nb: NumBlocks(f.Dest.Size, w.bs), runs: runs}
	c.head.Hashes = nil
	next := 0
	for _, r := range runs {
		if int(r.First) < next || len(r.Hashes) == 0 || r.end() > c.nb {
			return fmt.Errorf("manifest journal: %s: a run of %d blocks from %d", f.Path, len(r.Hashes), r.First)
		}
		next = r.end()
	}
	if oc := w.carry(f.Path); oc != nil && !oc.deleted {
		c.runs = mergeRuns(runs, oc.runs, c.nb)
	}
	baseN := 0
	if old != nil && old.inBase {
		baseN = old.baseN
	}
	if c.needsBase() > baseN {
		return fmt.Errorf("manifest journal: %s: no hashes for blocks %d to %d", f.Path, baseN, c.needsBase())
	}
	w.write(&c)
	if old == nil {
		w.files++
		w.bytes += f.Dest.Size
	} else {
		w.bytes += f.Dest.Size - old.Dest.Size
	}
	return w.err
}

// Commit writes the end of the journal and its header, which says that the
// manifest with the journal applied has the header h (Files and Bytes set
// from the changes), makes it durable (fsync of the file, rename over the
// previous journal, fsync of the directory) and closes the JournalWriter.
// On error the previous journal is left as it was.
func (w *JournalWriter) Commit(h Header) error {
	if len(h.PGVersion) > verLen || h.BlockSize != uint32(w.bs) {
		w.Abort()
		return fmt.Errorf("manifest journal: a header of block size %d and PG_VERSION %q", h.BlockSize, h.PGVersion)
	}
	w.carry("")
	if len(h.Passes) > MaxPasses {
		h.Passes = h.Passes[len(h.Passes)-MaxPasses:]
	}
	if w.files < 0 || w.bytes < 0 {
		w.Abort()
		return fmt.Errorf("manifest journal: %d files of %d bytes", w.files, w.bytes)
	}
	h.Files, h.Bytes = uint64(w.files), uint64(w.bytes)
	if w.err == nil {
		w.sum.Write([]byte{tagEnd})
		if err := w.bw.WriteByte(tagEnd); err != nil {
			w.err = err
		}
	}
	err := commitPending(w.bw, w.pending, w.err, encodeJournalHeader(w.ix.baseID, w.sum.Sum64(), &h), "the manifest's journal", w.path, w.Abort)
	if w.err == nil {
		w.err = errors.New("manifest journal already committed")
	}
	return err
}

// Abort discards the new journal; the previous one stays as it was.
func (w *JournalWriter) Abort() {
	if w.pending != nil {
		w.pending.Cleanup()
	}
	if w.err == nil {
		w.err = errors.New("manifest journal aborted")
	}
}

// Compact rewrites the manifest at path with its journal applied, as a new
// manifest, and removes the journal (Writer.Commit). A manifest damaged part
// way is salvaged: its records up to the damage, and after it the journal's
// records that stand by themselves (a file the journal holds whole); the
// files of the others get no record, and the next pass reads them whole.
// onDamage, if set, is told of the damage.
func Compact(path string, onDamage func(error)) error {
	r, err := Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	r.salvage = true
	w, err := Create(path, int(r.Header.BlockSize))
	if err != nil {
		return err
	}
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = w.Add(f)
		}
		if err != nil {
			w.Abort()
			return err
		}
	}
	if r.damage != nil && onDamage != nil {
		onDamage(r.damage)
	}
	return w.Commit(r.Header)
}
