package wal

import (
	"errors"
	"fmt"
)

// Kinds of [Error], for errors.Is. Every error the [Reader] returns wraps
// exactly one of them.
var (
	// ErrEndOfWAL: at a record boundary the WAL visibly ends: a record
	// length of zero (the zeroed rest of the last page), a page that was
	// never written (zero magic) or that still holds an older segment's
	// contents (a recycled file: wrong page address). Reading may be retried.
	ErrEndOfWAL = errors.New("end of WAL")
	// ErrLimit: the next record reaches past the limit set by
	// [Reader.SetLimit]; nothing was consumed, and reading may be retried
	// after the limit is raised.
	ErrLimit = errors.New("read limit reached")
	// ErrMissingSegment: the segment file that holds the next bytes does not
	// exist.
	ErrMissingSegment = errors.New("missing WAL segment")
	// ErrTruncatedSegment: a segment file ends before the bytes needed.
	ErrTruncatedSegment = errors.New("truncated WAL segment")
	// ErrBadCRC: a record's CRC-32C does not match its contents.
	ErrBadCRC = errors.New("record CRC-32C mismatch")
	// ErrBrokenChain: a record's xl_prev is not the LSN of the record read
	// before it.
	ErrBrokenChain = errors.New("broken xl_prev chain")
	// ErrUnsupportedMagic: a page's magic is not the one of a major version
	// this package reads (13 to 18), or not the one of the pages before it.
	ErrUnsupportedMagic = errors.New("unsupported WAL page magic")
	// ErrTimeline: a page belongs to another timeline than the one read.
	ErrTimeline = errors.New("WAL page of another timeline")
	// ErrUnknownRmgr: a record names a resource manager that does not exist
	// in this major version.
	ErrUnknownRmgr = errors.New("unknown resource manager")
	// ErrInvalid: anything else that is inconsistent: a bad page header, a
	// continuation that does not match, a block reference or a length that
	// does not add up.
	ErrInvalid = errors.New("invalid WAL")
	// ErrRead: the segment source failed (an I/O error).
	ErrRead = errors.New("WAL read error")
)

// Error is an error at a position in the WAL.
type Error struct {
	Kind    error  // one of the Err* sentinels of this package
	LSN     LSN    // the record, page or byte where the problem is
	Segment string // the segment file name, when one is involved
	Detail  string // what is wrong, for people
	Err     error  // the underlying error (I/O), or nil
}

func (e *Error) Error() string {
	s := "wal: " + e.Kind.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	s += " at " + e.LSN.String()
	if e.Segment != "" {
		s += " in segment " + e.Segment
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the kind and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

func errorf(kind error, lsn LSN, format string, args ...any) *Error {
	return &Error{Kind: kind, LSN: lsn, Detail: fmt.Sprintf(format, args...)}
}
