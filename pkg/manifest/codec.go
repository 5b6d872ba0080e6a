package manifest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/zeebo/xxh3"
)

// Layout constants; docs/design.md describes every field.
const (
	tagFile    = 'F'
	tagEnd     = 'E'
	passLen    = 1 + 6*8
	statLen    = 4 * 8
	maxPathLen = 4096
	maxVerLen  = 64
	// maxBodyLen bounds one record so that a damaged length cannot make the
	// reader allocate without limit: 256 MiB holds the hashes of a 64 GiB
	// file at 4 KiB blocks.
	maxBodyLen = 256 << 20
)

var le = binary.LittleEndian

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// appendHeader encodes h, including its checksum.
func appendHeader(b []byte, h *Header) []byte {
	start := len(b)
	b = append(b, magic...)
	b = le.AppendUint16(b, Version)
	b = le.AppendUint16(b, h.Flags)
	b = le.AppendUint32(b, h.BlockSize)
	b = le.AppendUint64(b, h.SystemIdentifier)
	b = le.AppendUint64(b, uint64(h.Created))
	b = le.AppendUint16(b, uint16(len(h.PGVersion)))
	b = append(b, h.PGVersion...)
	b = le.AppendUint16(b, uint16(len(h.Passes)))
	for _, p := range h.Passes {
		b = append(b, byte(p.Kind))
		for _, v := range []int64{p.Started, p.Finished, p.BytesRead, p.BytesWritten, p.FilesChanged, p.FilesDeleted} {
			b = le.AppendUint64(b, uint64(v))
		}
	}
	return le.AppendUint64(b, xxh3.Hash(b[start:]))
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
	bodyLen := 2 + len(f.Path) + 4 + 2*statLen + 8 + 4 + 16*len(f.Hashes)
	b = append(b, tagFile)
	b = le.AppendUint32(b, uint32(bodyLen))
	b = le.AppendUint16(b, uint16(len(f.Path)))
	b = append(b, f.Path...)
	b = le.AppendUint32(b, f.Flags)
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
	err     error
}

// Create starts a manifest that will replace path when committed.
func Create(path string, h Header) (*Writer, error) {
	if !ValidBlockSize(int(h.BlockSize)) {
		return nil, fmt.Errorf("invalid block size %d", h.BlockSize)
	}
	if len(h.PGVersion) > maxVerLen {
		return nil, fmt.Errorf("PG_VERSION %q is too long", h.PGVersion)
	}
	if len(h.Passes) > MaxPasses {
		h.Passes = h.Passes[len(h.Passes)-MaxPasses:]
	}
	pf, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithPermissions(0o600))
	if err != nil {
		return nil, fmt.Errorf("failed to create manifest: %w", err)
	}
	w := &Writer{path: path, blockSize: int(h.BlockSize), pending: pf, bw: bufio.NewWriterSize(pf, 1<<20), sum: xxh3.New()}
	w.write(appendHeader(nil, &h))
	if w.err != nil {
		pf.Cleanup()
		return nil, w.err
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
	return w.err
}

// Commit writes the trailer, makes the manifest durable (fsync of the file,
// rename over the old one, fsync of the directory) and closes the Writer.
func (w *Writer) Commit() error {
	if w.err != nil {
		w.Abort()
		return w.err
	}
	b := append([]byte{tagEnd}, le.AppendUint64(nil, w.count)...)
	w.write(b)
	if w.err == nil {
		w.write(le.AppendUint64(nil, w.sum.Sum64()))
	}
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("failed to write manifest: %w", err)
		}
	}
	if w.err != nil {
		w.Abort()
		return w.err
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
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open directory for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to fsync directory %s: %w", dir, err)
	}
	return nil
}

// Reader returns a manifest's records one at a time.
type Reader struct {
	Header Header

	// state
	closer io.Closer
	br     *bufio.Reader
	sum    *xxh3.Hasher // of every byte so far, for the trailer
	recSum *xxh3.Hasher // of the current record
	buf    []byte
	last   string
	count  uint64
	done   bool
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

// NewReader reads a header from r and returns a Reader positioned at the
// first record.
func NewReader(r io.Reader) (*Reader, error) {
	mr := &Reader{br: bufio.NewReaderSize(r, 1<<20), sum: xxh3.New(), recSum: xxh3.New()}
	if err := mr.readHeader(); err != nil {
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

// read returns the next n bytes, added to the running checksum. The slice is
// valid until the next call.
func (r *Reader) read(n int) ([]byte, error) {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.br, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, corrupt("truncated after %d records", r.count)
		}
		return nil, fmt.Errorf("failed to read manifest: %w", err)
	}
	r.sum.Write(b)
	return b, nil
}

func (r *Reader) readHeader() error {
	b, err := r.read(len(magic) + 2)
	if err != nil {
		return err
	}
	if string(b[:len(magic)]) != magic {
		return corrupt("not a pgtwopass manifest (bad magic)")
	}
	if v := le.Uint16(b[len(magic):]); v != Version {
		return fmt.Errorf("%w: written as version %d, this pgtwopass reads version %d", ErrVersion, v, Version)
	}
	hdr := append([]byte(nil), b...)
	if b, err = r.read(2 + 4 + 8 + 8 + 2); err != nil {
		return err
	}
	hdr = append(hdr, b...)
	h := &r.Header
	h.Flags = le.Uint16(b)
	h.BlockSize = le.Uint32(b[2:])
	h.SystemIdentifier = le.Uint64(b[6:])
	h.Created = int64(le.Uint64(b[14:]))
	n := int(le.Uint16(b[22:]))
	if n > maxVerLen {
		return corrupt("PG_VERSION length %d", n)
	}
	if b, err = r.read(n + 2); err != nil {
		return err
	}
	hdr = append(hdr, b...)
	h.PGVersion = string(b[:n])
	np := int(le.Uint16(b[n:]))
	if np > MaxPasses {
		return corrupt("%d passes recorded", np)
	}
	if b, err = r.read(np * passLen); err != nil {
		return err
	}
	hdr = append(hdr, b...)
	h.Passes = make([]Pass, np)
	for i := range h.Passes {
		p := b[i*passLen:]
		v := func(k int) int64 { return int64(le.Uint64(p[1+8*k:])) }
		h.Passes[i] = Pass{Kind: PassKind(p[0]), Started: v(0), Finished: v(1), BytesRead: v(2), BytesWritten: v(3), FilesChanged: v(4), FilesDeleted: v(5)}
	}
	if b, err = r.read(8); err != nil {
		return err
	}
	if le.Uint64(b) != xxh3.Hash(hdr) {
		return corrupt("header checksum mismatch")
	}
	if !ValidBlockSize(int(h.BlockSize)) {
		return corrupt("block size %d", h.BlockSize)
	}
	return nil
}

// Next returns the next record. After the last one it verifies the trailer
// and returns io.EOF; a damaged or truncated manifest returns an error
// wrapping ErrCorrupt, and the Reader must not be used further.
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
		return nil, r.readTrailer()
	case tagFile:
	default:
		return nil, corrupt("unknown record tag %#x after %d records", b[0], r.count)
	}
	if b, err = r.read(4); err != nil {
		return nil, err
	}
	n := int(le.Uint32(b))
	if n > maxBodyLen || n < 2+4+2*statLen+8+4 {
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
	return f, nil
}

func (r *Reader) decodeFile(body []byte) (*File, error) {
	pl := int(le.Uint16(body))
	fixed := 2 + pl + 4 + 2*statLen + 8 + 4
	if pl == 0 || pl > maxPathLen || fixed > len(body) {
		return nil, corrupt("record %d: path length %d", r.count+1, pl)
	}
	f := &File{Path: string(body[2 : 2+pl])}
	p := body[2+pl:]
	f.Flags = le.Uint32(p)
	f.Source = decodeStat(p[4:])
	f.Dest = decodeStat(p[4+statLen:])
	f.ReadStart = int64(le.Uint64(p[4+2*statLen:]))
	nb := int(le.Uint32(p[4+2*statLen+8:]))
	if nb != (len(body)-fixed)/16 || (len(body)-fixed)%16 != 0 {
		return nil, corrupt("record %d (%s): %d hashes in %d bytes", r.count+1, f.Path, nb, len(body)-fixed)
	}
	if nb != NumBlocks(f.Dest.Size, int(r.Header.BlockSize)) {
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

func (r *Reader) readTrailer() error {
	b, err := r.read(8)
	if err != nil {
		return err
	}
	if n := le.Uint64(b); n != r.count {
		return corrupt("trailer counts %d records, read %d", n, r.count)
	}
	want := r.sum.Sum64()
	if b, err = r.read(8); err != nil {
		return err
	}
	if le.Uint64(b) != want {
		return corrupt("file checksum mismatch")
	}
	// Nothing may follow the trailer.
	if _, err := r.br.ReadByte(); err != io.EOF {
		return corrupt("data after the trailer")
	}
	r.done = true
	return io.EOF
}
