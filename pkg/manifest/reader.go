package manifest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/zeebo/xxh3"
)

// Reader returns a manifest's records one at a time: the manifest's own
// (the base), with its journal applied when it has one.
type Reader struct {
	// Header is the manifest's: the journal's when one applies.
	Header Header

	// state
	base     *baseReader
	j        *journal // nil: none applies
	ci       int      // the next change of j
	peek     *File    // the base's next record, read ahead
	baseDone bool
	count    uint64
	bytes    uint64
	mtime    int64 // of the newest file read (Open only)
	closer   io.Closer
	done     bool
	// salvage (Compact): past damage in the base, go on with the
	// journal's records that stand by themselves; damage is the damage.
	salvage bool
	damage  error
}

// Open opens the manifest at path and reads its header, and its journal
// (path + [JournalSuffix]) if it has one for this manifest: a damaged
// journal makes the whole manifest corrupt, a journal of another manifest
// (left by a crash after the commit of a new one) is ignored. A missing
// manifest is reported as an error satisfying errors.Is(err,
// fs.ErrNotExist).
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
	if fi, err := f.Stat(); err == nil {
		r.mtime = fi.ModTime().UnixNano()
	}
	j, mtime, err := loadJournal(path, r.base.id, r.base.hdr.BlockSize)
	if err != nil {
		f.Close()
		return nil, err
	}
	if j != nil {
		r.j, r.Header, r.mtime = j, j.header, mtime
	}
	return r, nil
}

// ReadHeader returns only the header of the manifest at path: its
// journal's, when one applies (which is read and checked whole).
func ReadHeader(path string) (Header, error) {
	r, err := Open(path)
	if err != nil {
		return Header{}, err
	}
	defer r.Close()
	return r.Header, nil
}

// NewReader reads and checks a header from r and returns a Reader
// positioned at the first record. It reads the manifest alone: no journal.
func NewReader(r io.Reader) (*Reader, error) {
	b, err := newBaseReader(r)
	if err != nil {
		return nil, err
	}
	return &Reader{Header: b.hdr, base: b}, nil
}

// Close closes the underlying file, if Open opened it.
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Next returns the next record. After the last one it checks the end of the
// manifest (and of its journal) and returns io.EOF; a damaged or truncated
// manifest returns an error wrapping ErrCorrupt, and the Reader must not be
// used further.
func (r *Reader) Next() (*File, error) {
	for !r.done {
		if r.peek == nil && !r.baseDone {
			f, err := r.base.next()
			switch {
			case err == io.EOF:
				r.baseDone = true
			case err != nil && r.salvage:
				r.damage, r.baseDone = err, true
			case err != nil:
				return nil, err
			default:
				r.peek = f
			}
		}
		var c *change
		if r.j != nil && r.ci < len(r.j.changes) {
			c = &r.j.changes[r.ci]
		}
		var out *File
		switch {
		case r.peek == nil && c == nil:
			r.done = true
			if r.j != nil && !r.salvage && (r.count != r.Header.Files || r.bytes != r.Header.Bytes) {
				return nil, corrupt("the journal counts %d files and %d bytes, the manifest with it holds %d and %d", r.Header.Files, r.Header.Bytes, r.count, r.bytes)
			}
			return nil, io.EOF
		case c == nil || r.peek != nil && ComparePaths(r.peek.Path, c.head.Path) < 0:
			out, r.peek = r.peek, nil
		default:
			r.ci++
			var base *File
			if r.peek != nil && r.peek.Path == c.head.Path {
				base, r.peek = r.peek, nil
			}
			if c.deleted {
				if base == nil && !r.salvage {
					return nil, corrupt("the journal deletes %s, which the manifest has not", c.head.Path)
				}
				continue
			}
			var err error
			if out, err = c.apply(base); err != nil {
				if r.salvage {
					continue
				}
				return nil, err
			}
		}
		r.count++
		r.bytes += uint64(out.Dest.Size)
		return out, nil
	}
	return nil, io.EOF
}

// baseReader reads the records of one manifest file, of version 1 or 2.
type baseReader struct {
	hdr     Header
	version uint16
	id      uint64 // the header's checksum: see headerID

	// state
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

func newBaseReader(r io.Reader) (*baseReader, error) {
	mr := &baseReader{br: bufio.NewReaderSize(r, 256<<10), sum: xxh3.New(), recSum: xxh3.New()}
	b := make([]byte, HeaderSize)
	n, err := io.ReadFull(mr.br, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("failed to read manifest: %w", err)
	}
	if mr.hdr, mr.version, mr.recordsSum, err = decodeHeader(b[:n]); err != nil {
		return nil, err
	}
	mr.id = headerID(b)
	return mr, nil
}

// readStep bounds what read allocates ahead of the bytes actually read: a
// damaged record length (up to maxBodyLen) in a short file must not cost
// an allocation of that size.
const readStep = 1 << 20

// read returns the next n bytes, added to the running checksum. The slice is
// valid until the next call.
func (r *baseReader) read(n int) ([]byte, error) {
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

// next returns the next record, or io.EOF after checking the end.
func (r *baseReader) next() (*File, error) {
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
	if r.count >= r.hdr.Files {
		return nil, corrupt("more records than the %d the header counts", r.hdr.Files)
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
	if b, err = r.read(n + sumLen); err != nil {
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

func (r *baseReader) decodeFile(body []byte) (*File, error) {
	f, err := decodeBody(body, r.version, int(r.hdr.BlockSize))
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", r.count+1, err)
	}
	if r.count > 0 && ComparePaths(r.last, f.Path) >= 0 {
		return nil, corrupt("record %d (%s) out of order after %s", r.count+1, f.Path, r.last)
	}
	return f, nil
}

// decodeBody parses the body of a record of a manifest of the given
// version and block size.
func decodeBody(body []byte, version uint16, bs int) (*File, error) {
	f, nb, hl, err := decodeHead(body, bs)
	if err != nil {
		return nil, err
	}
	hashes := body[hl:]
	if version >= 2 {
		// The head checksum: of the tag, the length and the head.
		if len(hashes) < sumLen || le.Uint64(hashes) != headSum(len(body), body[:hl]) {
			return nil, corrupt("%s: head checksum mismatch", f.Path)
		}
		hashes = hashes[sumLen:]
	}
	if len(hashes) != 16*nb {
		return nil, corrupt("%s: %d hashes in %d bytes", f.Path, nb, len(hashes))
	}
	if nb > 0 {
		f.Hashes = make([]Hash, nb)
	}
	for i := range f.Hashes {
		copy(f.Hashes[i][:], hashes[16*i:])
	}
	return f, nil
}

// headSum is the head checksum of a record whose body is n bytes long and
// begins with head (from its path length to its block count): xxh3-64 of
// the tag, the length and the head, as they are stored.
func headSum(n int, head []byte) uint64 {
	b := make([]byte, 0, 5+len(head))
	b = append(b, tagFile)
	b = le.AppendUint32(b, uint32(n))
	return xxh3.Hash(append(b, head...))
}

func (r *baseReader) readEnd() error {
	switch {
	case r.sum.Sum64() != r.recordsSum:
		return corrupt("records checksum mismatch")
	case r.count != r.hdr.Files || r.bytes != r.hdr.Bytes:
		return corrupt("header counts %d files and %d bytes, records hold %d and %d", r.hdr.Files, r.hdr.Bytes, r.count, r.bytes)
	}
	if _, err := r.br.ReadByte(); err != io.EOF {
		return corrupt("data after the end of the records")
	}
	r.done = true
	return io.EOF
}
