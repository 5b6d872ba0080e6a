package wal

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in the WAL (PostgreSQL's XLogRecPtr): the byte offset
// from the beginning of the log, page headers included.
type LSN uint64

// String formats l as PostgreSQL does: high and low 32 bits in hexadecimal,
// the low half padded to 8 digits ("0/0174BAB8", pg_waldump's form).
func (l LSN) String() string {
	return fmt.Sprintf("%X/%08X", uint32(l>>32), uint32(l))
}

// ParseLSN parses "H/L" with H and L hexadecimal (with or without padding).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("wal: LSN %q: want H/L in hexadecimal", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("wal: LSN %q: want H/L in hexadecimal", s)
	}
	return LSN(h<<32 | l), nil
}

// PageSize is the size of a WAL page (XLOG_BLCKSZ), the only one this
// package reads; the long page header of every segment confirms it.
const PageSize = 8192

// pageStart returns the LSN of the page that holds l.
func pageStart(l LSN) LSN { return l &^ (PageSize - 1) }

// maxAlign rounds n up to a multiple of 8 (MAXALIGN on 64-bit platforms):
// records start on 8-byte boundaries.
func maxAlign[T ~uint32 | ~uint64](n T) T { return (n + 7) &^ 7 }

// ValidSegmentSize reports whether n is a segment size PostgreSQL allows: a
// power of two from 1 MiB to 1 GiB (initdb --wal-segsize).
func ValidSegmentSize(n uint32) bool {
	return n >= 1<<20 && n <= 1<<30 && n&(n-1) == 0
}

// SegmentFileName returns the name of the segment file that holds segment
// number segNo (LSN / segSize) of timeline tli: 24 hexadecimal digits, the
// timeline, then the segment number split at 2^32 bytes of WAL.
func SegmentFileName(tli uint32, segNo uint64, segSize uint32) string {
	perID := uint64(1<<32) / uint64(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, uint32(segNo/perID), uint32(segNo%perID))
}
