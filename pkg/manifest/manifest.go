// Package manifest reads and writes the manifest of a pgtwopass copy: the
// file DEST/.pgtwopass/manifest that records, for every regular file of the
// copy, the source's stat when it was copied, the copy's stat after writing,
// and an xxh3-128 hash of every block.
//
// The manifest is a stream: a [Writer] appends [File] records in walk order
// (see [ComparePaths]) and [Writer.Commit] makes it durable and atomically
// replaces the previous one; a [Reader] returns the records one at a time, so
// a pass holds one file's block hashes in memory, never the whole manifest.
// Every record carries its own checksum and the trailer a checksum of the
// whole file, so a bit flip or a truncation is reported as [ErrCorrupt] and
// never trusted. The byte layout is specified in docs/design.md.
//
// A WAL-guided cold pass reads the manifest through an [Index], which reads
// only the heads of the records and the hashes of the blocks it asks for,
// and commits a journal ([JournalWriter]) of what it changed instead of a
// new manifest: its manifest I/O follows the blocks it reads and writes, not
// the copy. Open, Reader and Index apply the journal; the next
// [Writer.Commit] folds it into a new manifest and removes it.
package manifest

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/zeebo/xxh3"
)

const (
	// DirName is the directory inside DEST that holds pgtwopass's own files.
	DirName = ".pgtwopass"
	// FileName is the manifest's name inside DirName.
	FileName = "manifest"
	// JournalSuffix names a manifest's journal: DirName/manifest.journal.
	JournalSuffix = ".journal"
	// Version is the format version this package writes; it reads every
	// version from 1 on.
	Version = 2
	// MaxPasses is how many pass records the header keeps (the newest).
	MaxPasses = 32

	magic = "PG2PMANI"
)

var (
	// ErrCorrupt means the manifest failed a checksum, is truncated, or is
	// otherwise not a manifest this version wrote. Its contents must not be
	// trusted.
	ErrCorrupt = errors.New("manifest is corrupt")
	// ErrVersion means the manifest was written by an incompatible version.
	ErrVersion = errors.New("manifest version is not supported")
)

// Hash is the xxh3-128 hash of one block, high half first.
type Hash [16]byte

// HashBlock returns the hash of one block.
func HashBlock(b []byte) Hash { return Hash(xxh3.Hash128(b).Bytes()) }

// Stat is the part of a file's stat that tells whether it changed.
// Times are nanoseconds since the Unix epoch.
type Stat struct {
	Size  int64
	Mtime int64
	Ctime int64
	Inode uint64
}

// File flags.
const (
	// FlagChangedWhileCopied marks a file whose source stat moved while the
	// live pass read it: the next pass must read it whatever its stat says.
	FlagChangedWhileCopied uint32 = 1 << 0
	// FlagNoCRC32C marks a record whose CRC32C field was not computed: a
	// cold pass that writes no backup_manifest leaves the CRC-32C out (it
	// costs more CPU than reading and hashing the file together).
	FlagNoCRC32C uint32 = 1 << 1
)

// File is the record of one regular file of the copy.
type File struct {
	// Path is slash-separated and relative to the data directory.
	Path  string
	Flags uint32
	// CRC32C is the CRC-32C of the copy's whole contents, for PostgreSQL's
	// backup_manifest; not set when Flags has FlagNoCRC32C.
	CRC32C uint32
	// Source is the source file's stat taken before it was read.
	Source Stat
	// Dest is the copy's stat after it was written, its mode, owner and
	// mtime set. A copy whose stat differs has been touched since, and its
	// hashes no longer describe it.
	Dest Stat
	// ReadStart is when the read of the source that produced Hashes began
	// (Unix ns): a stat older than this by a safe margin cannot hide a write.
	ReadStart int64
	// Hashes holds one hash per block of the copy's contents.
	Hashes []Hash
}

// PassKind says what kind of pass wrote a manifest.
type PassKind uint8

const (
	// Live is a pass while the source server runs.
	Live PassKind = 1
	// Cold is a pass with the source server stopped: every file read in full.
	Cold PassKind = 2
)

func (k PassKind) String() string {
	switch k {
	case Live:
		return "live"
	case Cold:
		return "cold"
	}
	return fmt.Sprintf("pass-kind-%d", uint8(k))
}

// Pass is the record of one completed pass.
type Pass struct {
	Kind         PassKind
	Started      int64 // Unix ns
	Finished     int64 // Unix ns
	BytesRead    int64
	BytesWritten int64
	FilesChanged int64
	FilesDeleted int64
	// ReadNs and WriteNs split the time the pass spent copying files
	// between reading (and hashing) and writing (and fsync), in ns of wall
	// time: the measured rates that predict a cold pass.
	ReadNs  int64
	WriteNs int64
}

// Header flags.
const (
	// FlagColdComplete: the manifest was written by a completed cold pass.
	// The copy is sealed when this is set and global/pg_control is in place.
	FlagColdComplete uint16 = 1 << 0
)

// Header describes the copy as a whole.
type Header struct {
	Flags            uint16
	BlockSize        uint32
	SystemIdentifier uint64
	// PGVersion is the source's PG_VERSION (major version).
	PGVersion string
	// Created is when the first pass into this copy began (Unix ns).
	Created int64
	// Passes holds the newest passes, oldest first, at most MaxPasses.
	Passes []Pass
	// Files and Bytes count the records and their Dest.Size. Writer.Commit
	// sets them.
	Files uint64
	Bytes uint64
}

// ColdComplete reports whether a completed cold pass wrote the manifest.
func (h *Header) ColdComplete() bool { return h.Flags&FlagColdComplete != 0 }

// AddPass appends p, dropping the oldest passes beyond MaxPasses.
func (h *Header) AddPass(p Pass) {
	h.Passes = append(h.Passes, p)
	if n := len(h.Passes); n > MaxPasses {
		h.Passes = append([]Pass(nil), h.Passes[n-MaxPasses:]...)
	}
}

// ComparePaths orders slash-separated relative paths the way a depth-first
// walk that lists each directory in byte order visits them: component by
// component, so "a/b" sorts before "a-c" although '-' < '/'. Writers must add
// records in this order, and passes merge the manifest with their walk by it.
func ComparePaths(a, b string) int {
	for {
		ia := strings.IndexByte(a, '/')
		ib := strings.IndexByte(b, '/')
		ca, cb := a, b
		if ia >= 0 {
			ca = a[:ia]
		}
		if ib >= 0 {
			cb = b[:ib]
		}
		if c := strings.Compare(ca, cb); c != 0 {
			return c
		}
		switch {
		case ia < 0 && ib < 0:
			return 0
		case ia < 0:
			return -1
		case ib < 0:
			return 1
		}
		a, b = a[ia+1:], b[ib+1:]
	}
}

// NumBlocks is the number of blocks of a file of the given size.
func NumBlocks(size int64, blockSize int) int {
	if size <= 0 {
		return 0
	}
	return int((size + int64(blockSize) - 1) / int64(blockSize))
}

// ValidBlockSize reports whether bs can be used as a block size: a power of
// two from 4 KiB to 16 MiB.
func ValidBlockSize(bs int) bool {
	return bs >= 4<<10 && bs <= 16<<20 && bs&(bs-1) == 0
}

// Finder finds the records of the paths a pass asks for, in walk order,
// reading the manifest once from start to end. A manifest damaged part way
// vouches for nothing from the damage on: Find returns nil for every path
// after it, and onDamage is told why (once).
type Finder struct {
	r        *Reader
	next     *File
	onDamage func(error)
}

// NewFinder finds in r's records (nil: none); onDamage may be nil.
func NewFinder(r *Reader, onDamage func(error)) *Finder {
	f := &Finder{r: r, onDamage: onDamage}
	if r != nil {
		f.advance()
	}
	return f
}

func (f *Finder) advance() {
	rec, err := f.r.Next()
	if err != nil {
		if err != io.EOF && f.onDamage != nil {
			f.onDamage(err)
		}
		f.Close()
		return
	}
	f.next = rec
}

// Find returns the record of path, or nil; paths must come in walk order
// (ComparePaths). The records of paths not asked for are skipped.
func (f *Finder) Find(path string) *File {
	for f.next != nil {
		switch c := ComparePaths(f.next.Path, path); {
		case c < 0:
			f.advance()
		case c == 0:
			rec := f.next
			f.advance()
			return rec
		default:
			return nil
		}
	}
	return nil
}

// Close closes the manifest; Find returns nil from then on.
func (f *Finder) Close() {
	if f.r != nil {
		f.r.Close()
		f.r = nil
	}
	f.next = nil
}
