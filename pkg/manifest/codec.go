package manifest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/zeebo/xxh3"
)

// Layout constants; docs/design.md describes every field.
const (
	tagFile    = 'F'
	tagDeleted = 'D' // journal only
	tagEnd     = 'E'
	passLen    = 1 + 8*8
	statLen    = 4 * 8
	verLen     = 16
	// HeaderSize is the fixed size of the header. It is rewritten when the
	// manifest is committed, once the pass knows its statistics.
	HeaderSize = 74 + MaxPasses*passLen + 8
	maxPathLen = 4096
	// maxBodyLen bounds one record so that a damaged length cannot make the
	// reader allocate without limit: 256 MiB holds the hashes of a 64 GiB
	// file at 4 KiB blocks.
	maxBodyLen = 256 << 20
	// headFixed is the size of a record's head after its path: flags,
	// CRC-32C, two stats, read start, block count.
	headFixed = 4 + 4 + 2*statLen + 8 + 4
	// minBodyLen is the shortest body of a version 1 record (a one-byte
	// path, no hashes); a version 2 record adds its head checksum.
	minBodyLen = 2 + 1 + headFixed
	sumLen     = 8
)

var le = binary.LittleEndian

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// encodeHeader returns the HeaderSize bytes of h in the format version this
// package writes; recordsSum is the checksum of everything after the header.
func encodeHeader(h *Header, recordsSum uint64) []byte {
	return encodeHeaderVersion(h, recordsSum, Version)
}

func encodeHeaderVersion(h *Header, recordsSum uint64, version uint16) []byte {
	b := make([]byte, 0, HeaderSize)
	b = append(b, magic...)
	b = le.AppendUint16(b, version)
	b = le.AppendUint16(b, h.Flags)
	b = le.AppendUint32(b, h.BlockSize)
	b = le.AppendUint64(b, h.SystemIdentifier)
	b = le.AppendUint64(b, uint64(h.Created))
	var ver [verLen]byte
	copy(ver[:], h.PGVersion)
	b = append(b, ver[:]...)
	b = le.AppendUint64(b, h.Files)
	b = le.AppendUint64(b, h.Bytes)
	b = le.AppendUint64(b, recordsSum)
	b = le.AppendUint16(b, uint16(len(h.Passes)))
	for i := range MaxPasses {
		var p Pass
		if i < len(h.Passes) {
			p = h.Passes[i]
		}
		b = append(b, byte(p.Kind))
		for _, v := range []int64{p.Started, p.Finished, p.BytesRead, p.BytesWritten, p.FilesChanged, p.FilesDeleted, p.ReadNs, p.WriteNs} {
			b = le.AppendUint64(b, uint64(v))
		}
	}
	return le.AppendUint64(b, xxh3.Hash(b))
}

// decodeHeader parses and checks a header; it returns the format version
// and the records checksum.
func decodeHeader(b []byte) (Header, uint16, uint64, error) {
	var h Header
	if len(b) < len(magic)+2 || string(b[:len(magic)]) != magic {
		return h, 0, 0, corrupt("not a pgtwopass manifest (bad magic)")
	}
	v := le.Uint16(b[8:])
	if v < 1 || v > Version {
		return h, 0, 0, fmt.Errorf("%w: written as version %d, this pgtwopass reads versions 1 to %d", ErrVersion, v, Version)
	}
	if len(b) != HeaderSize {
		return h, 0, 0, corrupt("truncated header")
	}
	if le.Uint64(b[HeaderSize-8:]) != xxh3.Hash(b[:HeaderSize-8]) {
		return h, 0, 0, corrupt("header checksum mismatch")
	}
	h.Flags = le.Uint16(b[10:])
	h.BlockSize = le.Uint32(b[12:])
	h.SystemIdentifier = le.Uint64(b[16:])
	h.Created = int64(le.Uint64(b[24:]))
	h.PGVersion = string(bytes.TrimRight(b[32:32+verLen], "\x00"))
	h.Files = le.Uint64(b[48:])
	h.Bytes = le.Uint64(b[56:])
	sum := le.Uint64(b[64:])
	np := int(le.Uint16(b[72:]))
	if np > MaxPasses {
		return h, 0, 0, corrupt("%d passes recorded", np)
	}
	h.Passes = make([]Pass, np)
	for i := range h.Passes {
		p := b[74+i*passLen:]
		v := func(k int) int64 { return int64(le.Uint64(p[1+8*k:])) }
		h.Passes[i] = Pass{Kind: PassKind(p[0]), Started: v(0), Finished: v(1), BytesRead: v(2), BytesWritten: v(3), FilesChanged: v(4), FilesDeleted: v(5),
			ReadNs: v(6), WriteNs: v(7)}
	}
	if !ValidBlockSize(int(h.BlockSize)) {
		return h, 0, 0, corrupt("block size %d", h.BlockSize)
	}
	return h, v, sum, nil
}

// headerID is what identifies a manifest file: the checksum that ends its
// header, which covers the records checksum, the counts and the passes.
func headerID(hdr []byte) uint64 { return le.Uint64(hdr[HeaderSize-8:]) }

func appendStat(b []byte, s Stat) []byte {
	b = le.AppendUint64(b, uint64(s.Size))
	b = le.AppendUint64(b, uint64(s.Mtime))
	b = le.AppendUint64(b, uint64(s.Ctime))
	return le.AppendUint64(b, s.Inode)
}

func decodeStat(b []byte) Stat {
	return Stat{
		Size:  int64(le.Uint64(b)),
		Mtime: int64(le.Uint64(b[8:])),
		Ctime: int64(le.Uint64(b[16:])),
		Inode: le.Uint64(b[24:]),
	}
}

// headLen is the size of the head of a record of path.
func headLen(path string) int { return 2 + len(path) + headFixed }

// appendHead encodes a record's head: everything but its hashes, with nb
// as the block count.
func appendHead(b []byte, f *File, nb int) []byte {
	b = le.AppendUint16(b, uint16(len(f.Path)))
	b = append(b, f.Path...)
	b = le.AppendUint32(b, f.Flags)
	b = le.AppendUint32(b, f.CRC32C)
	b = appendStat(b, f.Source)
	b = appendStat(b, f.Dest)
	b = le.AppendUint64(b, uint64(f.ReadStart))
	return le.AppendUint32(b, uint32(nb))
}

// decodeHead parses the head at the start of p: the record without its
// hashes, its block count and the head's length. It checks the path's
// length and that the block count matches the copy's size at block size
// bs.
func decodeHead(p []byte, bs int) (f *File, nb, n int, err error) {
	if len(p) < 2 {
		return nil, 0, 0, corrupt("a record ends in its path length")
	}
	pl := int(le.Uint16(p))
	n = 2 + pl + headFixed
	if pl == 0 || pl > maxPathLen || n > len(p) {
		return nil, 0, 0, corrupt("path length %d", pl)
	}
	f = &File{Path: string(p[2 : 2+pl])}
	q := p[2+pl:]
	f.Flags = le.Uint32(q)
	f.CRC32C = le.Uint32(q[4:])
	q = q[8:]
	f.Source = decodeStat(q)
	f.Dest = decodeStat(q[statLen:])
	f.ReadStart = int64(le.Uint64(q[2*statLen:]))
	nb = int(le.Uint32(q[2*statLen+8:]))
	if f.Dest.Size < 0 || nb != NumBlocks(f.Dest.Size, bs) {
		return nil, 0, 0, corrupt("%s: %d hashes for %d bytes", f.Path, nb, f.Dest.Size)
	}
	return f, nb, n, nil
}

// appendFile encodes one record (version 2), including its checksums: the
// tag and the body length, the head, the head checksum, the hashes, the
// record checksum. Hash i is at 5 + headLen + 8 + 16i from its start.
func appendFile(b []byte, f *File) []byte {
	start := len(b)
	bodyLen := headLen(f.Path) + sumLen + 16*len(f.Hashes)
	b = append(b, tagFile)
	b = le.AppendUint32(b, uint32(bodyLen))
	b = appendHead(b, f, len(f.Hashes))
	b = le.AppendUint64(b, xxh3.Hash(b[start:]))
	for i := range f.Hashes {
		b = append(b, f.Hashes[i][:]...)
	}
	return le.AppendUint64(b, xxh3.Hash(b[start:]))
}

// JournalPath is the journal of the manifest at path (see [Index]).
func JournalPath(path string) string { return path + JournalSuffix }

// Writer writes a new manifest next to the old one and replaces it on
// Commit. It is not safe for concurrent use.
type Writer struct {
	// config
	path      string
	blockSize int
	// state
	pending *renameio.PendingFile
	bw      *bufio.Writer
	sum     *xxh3.Hasher
	buf     []byte
	last    string
	count   uint64
	bytes   uint64
	err     error
}

// Create starts a manifest that will replace path when committed. Records
// must hold one hash per blockSize bytes.
func Create(path string, blockSize int) (*Writer, error) {
	if !ValidBlockSize(blockSize) {
		return nil, fmt.Errorf("invalid block size %d", blockSize)
	}
	pf, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithPermissions(0o600))
	if err != nil {
		return nil, fmt.Errorf("failed to create manifest: %w", err)
	}
	w := &Writer{path: path, blockSize: blockSize, pending: pf, bw: bufio.NewWriterSize(pf, 1<<20), sum: xxh3.New()}
	// The header's place; Commit writes it.
	if _, err := w.bw.Write(make([]byte, HeaderSize)); err != nil {
		pf.Cleanup()
		return nil, fmt.Errorf("failed to write manifest: %w", err)
	}
	return w, nil
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.sum.Write(b)
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("failed to write manifest: %w", err)
	}
}

// Add appends the record of one file. Records must come in ComparePaths
// order, each path once, with one hash per block of f.Dest.Size.
func (w *Writer) Add(f *File) error {
	if w.err != nil {
		return w.err
	}
	switch {
	case f.Path == "" || len(f.Path) > maxPathLen:
		return fmt.Errorf("manifest: bad path %q", f.Path)
	case w.count > 0 && ComparePaths(w.last, f.Path) >= 0:
		return fmt.Errorf("manifest: %q added after %q: records must be in walk order", f.Path, w.last)
	case len(f.Hashes) != NumBlocks(f.Dest.Size, w.blockSize):
		return fmt.Errorf("manifest: %q has %d hashes for %d bytes", f.Path, len(f.Hashes), f.Dest.Size)
	}
	w.buf = appendFile(w.buf[:0], f)
	w.write(w.buf)
	w.last = f.Path
	w.count++
	w.bytes += uint64(f.Dest.Size)
	return w.err
}

// Commit writes the end of the records and the header h (with Files and
// Bytes set from the records), makes the manifest durable (fsync of the
// file, rename over the old one, fsync of the directory), removes the
// journal the old one may have had (the new manifest holds what it said),
// and closes the Writer. On error the old manifest is left as it was.
func (w *Writer) Commit(h Header) error {
	if h.BlockSize != uint32(w.blockSize) {
		w.Abort()
		return fmt.Errorf("manifest: header block size %d, records written with %d", h.BlockSize, w.blockSize)
	}
	if len(h.PGVersion) > verLen {
		w.Abort()
		return fmt.Errorf("manifest: PG_VERSION %q is too long", h.PGVersion)
	}
	if len(h.Passes) > MaxPasses {
		h.Passes = h.Passes[len(h.Passes)-MaxPasses:]
	}
	h.Files, h.Bytes = w.count, w.bytes
	w.write([]byte{tagEnd})
	err := commitPending(w.bw, w.pending, w.err, encodeHeader(&h, w.sum.Sum64()), "manifest", w.path, w.Abort)
	if w.err == nil {
		w.err = errors.New("manifest already committed")
	}
	if err != nil {
		return err
	}
	dir := filepath.Dir(w.path)
	// The new manifest is durable: the journal describes changes to the old
	// one. A crash before its removal is durable leaves it behind, stale:
	// it names the old manifest, and readers ignore it.
	if err := os.Remove(JournalPath(w.path)); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("failed to remove the manifest's journal: %w", err)
	}
	return SyncDir(dir)
}

// commitPending ends a file written through bw into pending: it flushes
// bw, writes header at its start, replaces the file at path atomically
// (fsync, rename) and fsyncs the directory. err is the writer's error so
// far; on any error before the rename abort runs. what names the file in
// messages.
func commitPending(bw *bufio.Writer, pending *renameio.PendingFile, err error, header []byte, what, path string, abort func()) error {
	if err == nil {
		if ferr := bw.Flush(); ferr != nil {
			err = fmt.Errorf("failed to write %s: %w", what, ferr)
		}
	}
	if err == nil {
		if _, werr := pending.WriteAt(header, 0); werr != nil {
			err = fmt.Errorf("failed to write %s's header: %w", what, werr)
		}
	}
	if err != nil {
		abort()
		return err
	}
	if err := pending.CloseAtomicallyReplace(); err != nil {
		abort()
		return fmt.Errorf("failed to replace %s: %w", what, err)
	}
	return SyncDir(filepath.Dir(path))
}

// Abort discards the new manifest; the old one stays as it was.
func (w *Writer) Abort() {
	if w.pending != nil {
		w.pending.Cleanup()
	}
	if w.err == nil {
		w.err = errors.New("manifest aborted")
	}
}

// SyncDir fsyncs a directory, making renames and new entries in it durable.
func SyncDir(dir string) error { return syncDir(os.Open(dir)) }

// SyncDirIn fsyncs the directory name of root.
func SyncDirIn(root *os.Root, name string) error { return syncDir(root.Open(name)) }

// syncDir fsyncs and closes the directory d that was opened with err: the
// one way pgtwopass makes a directory durable.
func syncDir(d *os.File, err error) error {
	if err != nil {
		return fmt.Errorf("failed to open directory for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to fsync directory %s: %w", d.Name(), err)
	}
	return nil
}
