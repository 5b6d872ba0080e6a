package manifest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/renameio/v2"
	"github.com/zeebo/xxh3"
)

// Layout constants; docs/design.md describes every field.
const (
	tagFile = 'F'
	tagEnd  = 'E'
	passLen = 1 + 8*8
	statLen = 4 * 8
	verLen  = 16
	// HeaderSize is the fixed size of the header. It is rewritten when the
	// manifest is committed, once the pass knows its statistics.
	HeaderSize = 74 + MaxPasses*passLen + 8
	maxPathLen = 4096
	// maxBodyLen bounds one record so that a damaged length cannot make the
	// reader allocate without limit: 256 MiB holds the hashes of a 64 GiB
	// file at 4 KiB blocks.
	maxBodyLen = 256 << 20
	minBodyLen = 2 + 1 + 8 + 2*statLen + 8 + 4
)

var le = binary.LittleEndian

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// encodeHeader returns the HeaderSize bytes of h; recordsSum is the checksum
// of everything after the header.
func encodeHeader(h *Header, recordsSum uint64) []byte {
	b := make([]byte, 0, HeaderSize)
	b = append(b, magic...)
	b = le.AppendUint16(b, Version)
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

// decodeHeader parses and checks a header; it returns the records checksum.
func decodeHeader(b []byte) (Header, uint64, error) {
	var h Header
	if len(b) < len(magic)+2 || string(b[:len(magic)]) != magic {
		return h, 0, corrupt("not a pgtwopass manifest (bad magic)")
	}
	if v := le.Uint16(b[8:]); v != Version {
		return h, 0, fmt.Errorf("%w: written as version %d, this pgtwopass reads version %d", ErrVersion, v, Version)
	}
	if len(b) != HeaderSize {
		return h, 0, corrupt("truncated header")
	}
	if le.Uint64(b[HeaderSize-8:]) != xxh3.Hash(b[:HeaderSize-8]) {
		return h, 0, corrupt("header checksum mismatch")
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
		return h, 0, corrupt("%d passes recorded", np)
	}
	h.Passes = make([]Pass, np)
	for i := range h.Passes {
		p := b[74+i*passLen:]
		v := func(k int) int64 { return int64(le.Uint64(p[1+8*k:])) }
		h.Passes[i] = Pass{Kind: PassKind(p[0]), Started: v(0), Finished: v(1), BytesRead: v(2), BytesWritten: v(3), FilesChanged: v(4), FilesDeleted: v(5),
			ReadNs: v(6), WriteNs: v(7)}
	}
	if !ValidBlockSize(int(h.BlockSize)) {
		return h, 0, corrupt("block size %d", h.BlockSize)
	}
	return h, sum, nil
}

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

// appendFile encodes one record, including its checksum.
func appendFile(b []byte, f *File) []byte {
	start := len(b)
	bodyLen := 2 + len(f.Path) + 8 + 2*statLen + 8 + 4 + 16*len(f.Hashes)
	b = append(b, tagFile)
	b = le.AppendUint32(b, uint32(bodyLen))
	b = le.AppendUint16(b, uint16(len(f.Path)))
	b = append(b, f.Path...)
	b = le.AppendUint32(b, f.Flags)
	b = le.AppendUint32(b, f.CRC32C)
	b = appendStat(b, f.Source)
	b = appendStat(b, f.Dest)
	b = le.AppendUint64(b, uint64(f.ReadStart))
	b = le.AppendUint32(b, uint32(len(f.Hashes)))
	for i := range f.Hashes {
		b = append(b, f.Hashes[i][:]...)
	}
	return le.AppendUint64(b, xxh3.Hash(b[start:]))
}

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
// file, rename over the old one, fsync of the directory) and closes the
// Writer. On error the old manifest is left as it was.
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
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("failed to write manifest: %w", err)
		}
	}
	if w.err == nil {
		if _, err := w.pending.WriteAt(encodeHeader(&h, w.sum.Sum64()), 0); err != nil {
			w.err = fmt.Errorf("failed to write manifest header: %w", err)
		}
	}
	if w.err != nil {
		err := w.err
		w.Abort()
		return err
	}
	if err := w.pending.CloseAtomicallyReplace(); err != nil {
		w.Abort()
		return fmt.Errorf("failed to replace manifest: %w", err)
	}
	w.err = errors.New("manifest already committed")
	return SyncDir(filepath.Dir(w.path))
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

// Reader returns a manifest's records one at a time.
type Reader struct {
	Header Header

	// state
	closer     io.Closer
	br         *bufio.Reader
	recordsSum uint64       // from the header
	sum        *xxh3.Hasher // of every byte after the header so far
	recSum     *xxh3.Hasher // of the current record
	buf        []byte
	last       string
	count      uint64
	bytes      uint64
	done       bool
}

// Open opens the manifest at path and reads its header. A missing file is
// reported as an error satisfying errors.Is(err, fs.ErrNotExist).
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// ReadHeader returns only the header of the manifest at path.
func ReadHeader(path string) (Header, error) {
	r, err := Open(path)
	if err != nil {
		return Header{}, err
	}
	defer r.Close()
	return r.Header, nil
}

// NewReader reads and checks a header from r and returns a Reader
// positioned at the first record.
func NewReader(r io.Reader) (*Reader, error) {
	mr := &Reader{br: bufio.NewReaderSize(r, 256<<10), sum: xxh3.New(), recSum: xxh3.New()}
	b := make([]byte, HeaderSize)
	n, err := io.ReadFull(mr.br, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("failed to read manifest: %w", err)
	}
	if mr.Header, mr.recordsSum, err = decodeHeader(b[:n]); err != nil {
		return nil, err
	}
	return mr, nil
}

// Close closes the underlying file, if Open opened it.
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// readStep bounds what read allocates ahead of the bytes actually read: a
// damaged record length (up to maxBodyLen) in a short file must not cost
// an allocation of that size.
const readStep = 1 << 20

// read returns the next n bytes, added to the running checksum. The slice is
// valid until the next call.
func (r *Reader) read(n int) ([]byte, error) {
	b := r.buf[:0]
	for len(b) < n {
		step := min(n-len(b), readStep)
		b = slices.Grow(b, step)
		m, err := io.ReadFull(r.br, b[len(b):len(b)+step])
		b = b[:len(b)+m]
		if err != nil {
			r.buf = b[:0]
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, corrupt("truncated after %d records", r.count)
			}
			return nil, fmt.Errorf("failed to read manifest: %w", err)
		}
	}
	r.buf = b
	r.sum.Write(b)
	return b, nil
}

// Next returns the next record. After the last one it checks the end of the
// manifest and returns io.EOF; a damaged or truncated manifest returns an
// error wrapping ErrCorrupt, and the Reader must not be used further.
func (r *Reader) Next() (*File, error) {
	if r.done {
		return nil, io.EOF
	}
	b, err := r.read(1)
	if err != nil {
		return nil, err
	}
	switch b[0] {
	case tagEnd:
		return nil, r.readEnd()
	case tagFile:
	default:
		return nil, corrupt("unknown record tag %#x after %d records", b[0], r.count)
	}
	if r.count >= r.Header.Files {
		return nil, corrupt("more records than the %d the header counts", r.Header.Files)
	}
	if b, err = r.read(4); err != nil {
		return nil, err
	}
	n := int(le.Uint32(b))
	if n > maxBodyLen || n < minBodyLen {
		return nil, corrupt("record length %d after %d records", n, r.count)
	}
	r.recSum.Reset()
	r.recSum.Write([]byte{tagFile})
	r.recSum.Write(b)
	if b, err = r.read(n + 8); err != nil {
		return nil, err
	}
	body := b[:n]
	r.recSum.Write(body)
	if le.Uint64(b[n:]) != r.recSum.Sum64() {
		return nil, corrupt("record %d checksum mismatch", r.count+1)
	}
	f, err := r.decodeFile(body)
	if err != nil {
		return nil, err
	}
	r.last = f.Path
	r.count++
	r.bytes += uint64(f.Dest.Size)
	return f, nil
}

func (r *Reader) decodeFile(body []byte) (*File, error) {
	pl := int(le.Uint16(body))
	fixed := 2 + pl + 8 + 2*statLen + 8 + 4
	if pl == 0 || pl > maxPathLen || fixed > len(body) {
		return nil, corrupt("record %d: path length %d", r.count+1, pl)
	}
	f := &File{Path: string(body[2 : 2+pl])}
	p := body[2+pl:]
	f.Flags = le.Uint32(p)
	f.CRC32C = le.Uint32(p[4:])
	p = p[8:]
	f.Source = decodeStat(p)
	f.Dest = decodeStat(p[statLen:])
	f.ReadStart = int64(le.Uint64(p[2*statLen:]))
	nb := int(le.Uint32(p[2*statLen+8:]))
	if nb != (len(body)-fixed)/16 || (len(body)-fixed)%16 != 0 {
		return nil, corrupt("record %d (%s): %d hashes in %d bytes", r.count+1, f.Path, nb, len(body)-fixed)
	}
	if f.Dest.Size < 0 || nb != NumBlocks(f.Dest.Size, int(r.Header.BlockSize)) {
		return nil, corrupt("record %d (%s): %d hashes for %d bytes", r.count+1, f.Path, nb, f.Dest.Size)
	}
	if r.count > 0 && ComparePaths(r.last, f.Path) >= 0 {
		return nil, corrupt("record %d (%s) out of order after %s", r.count+1, f.Path, r.last)
	}
	if nb > 0 {
		f.Hashes = make([]Hash, nb)
	}
	for i := range f.Hashes {
		copy(f.Hashes[i][:], body[fixed+16*i:])
	}
	return f, nil
}

func (r *Reader) readEnd() error {
	switch {
	case r.sum.Sum64() != r.recordsSum:
		return corrupt("records checksum mismatch")
	case r.count != r.Header.Files || r.bytes != r.Header.Bytes:
		return corrupt("header counts %d files and %d bytes, records hold %d and %d", r.Header.Files, r.Header.Bytes, r.count, r.bytes)
	}
	if _, err := r.br.ReadByte(); err != io.EOF {
		return corrupt("data after the end of the records")
	}
	r.done = true
	return io.EOF
}
