package wal

import (
	"io"
	"os"
	"path/filepath"
)

// SegmentSource opens WAL segment files for a [Reader].
type SegmentSource interface {
	// OpenSegment returns segment segNo of timeline tli, the file
	// SegmentFileName(tli, segNo, segSize). An error that wraps
	// fs.ErrNotExist means the segment does not exist. The Reader closes
	// what it gets when it moves on if it implements io.Closer; a source
	// that keeps segments open itself returns something that does not.
	OpenSegment(tli uint32, segNo uint64, segSize uint32) (io.ReaderAt, error)
}

// Dir is a [SegmentSource] that opens segment files by name in a directory
// (a data directory's pg_wal).
type Dir string

// OpenSegment opens the segment file in d.
func (d Dir) OpenSegment(tli uint32, segNo uint64, segSize uint32) (io.ReaderAt, error) {
	f, err := os.Open(filepath.Join(string(d), SegmentFileName(tli, segNo, segSize)))
	if err != nil {
		return nil, err
	}
	return f, nil
}
