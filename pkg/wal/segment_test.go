package wal

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The tests' readers of segment files and their names: what a test checks a
// real pg_wal against.

// ParseSegmentFileName is the inverse of [SegmentFileName]: the timeline and
// segment number of a segment file name.
func ParseSegmentFileName(name string, segSize uint32) (tli uint32, segNo uint64, err error) {
	if len(name) != 24 || strings.ToUpper(name) != name {
		return 0, 0, fmt.Errorf("wal: %q is not a WAL segment file name", name)
	}
	var v [3]uint64
	for i := range v {
		v[i], err = strconv.ParseUint(name[8*i:8*i+8], 16, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("wal: %q is not a WAL segment file name", name)
		}
	}
	perID := uint64(1<<32) / uint64(segSize)
	if v[2] >= perID {
		return 0, 0, fmt.Errorf("wal: %q: segment %X out of range for %d-byte segments", name, v[2], segSize)
	}
	return uint32(v[0]), v[1]*perID + v[2], nil
}

// SegmentHeader is what the long page header at the start of a segment file
// says about the segment.
type SegmentHeader struct {
	Version     int    // major version, from the page magic
	Magic       uint16 // XLOG_PAGE_MAGIC
	TLI         uint32 // timeline of the first record in the segment
	PageAddr    LSN    // LSN of the segment's first byte
	SystemID    uint64 // database system identifier (pg_controldata's)
	SegmentSize uint32 // WAL segment size
}

// ReadSegmentHeader reads the long page header at the start of a segment
// file and checks it: a supported magic, the long-header flag, a valid
// segment size, the page size this package reads, and a page address at a
// segment boundary. It is how a caller learns the segment size and major
// version of a pg_wal directory.
func ReadSegmentHeader(f io.ReaderAt) (SegmentHeader, error) {
	var p [longHeaderSize]byte
	if n, err := f.ReadAt(p[:], 0); n < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			return SegmentHeader{}, &Error{Kind: ErrTruncatedSegment, Detail: fmt.Sprintf("segment file has %d bytes, less than a long page header", n)}
		}
		return SegmentHeader{}, &Error{Kind: ErrRead, Detail: "reading the long page header", Err: err}
	}
	h := parsePageHeader(p[:])
	v, ok := VersionOfMagic(h.magic)
	if !ok {
		return SegmentHeader{}, &Error{Kind: ErrUnsupportedMagic, Detail: fmt.Sprintf("page magic 0x%04X is not that of PostgreSQL 13 to 18", h.magic)}
	}
	switch {
	case h.info&xlpLongHeader == 0:
		return SegmentHeader{}, &Error{Kind: ErrInvalid, Detail: fmt.Sprintf("first page of the segment has no long header (xlp_info 0x%04X)", h.info)}
	case !ValidSegmentSize(h.segSize):
		return SegmentHeader{}, &Error{Kind: ErrInvalid, Detail: fmt.Sprintf("segment size %d in the long page header is not a power of two from 1 MiB to 1 GiB", h.segSize)}
	case h.blcksz != PageSize:
		return SegmentHeader{}, &Error{Kind: ErrInvalid, Detail: fmt.Sprintf("WAL page size %d in the long page header; only %d is read", h.blcksz, PageSize)}
	case uint64(h.pageAddr)%uint64(h.segSize) != 0:
		return SegmentHeader{}, &Error{Kind: ErrInvalid, LSN: h.pageAddr, Detail: "page address of the first page is not at a segment boundary"}
	}
	return SegmentHeader{Version: v, Magic: h.magic, TLI: h.tli, PageAddr: h.pageAddr, SystemID: h.sysID, SegmentSize: h.segSize}, nil
}
