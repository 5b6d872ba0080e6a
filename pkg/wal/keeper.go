package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Keeper is a [SegmentSource] that holds open every segment file of a
// pg_wal directory from a start LSN on, as the segments appear. A checkpoint
// removes the segments before its redo LSN, or recycles them by renaming
// them to future segment names; the shutdown checkpoint does so for all of
// the range a cold pass needs. An open file descriptor keeps a removed
// file's contents readable, and a renamed one's until the server writes it
// again under its new name. docs/wal.md gives the argument, and why a
// segment lost anyway (removed before a scan saw it, or rewritten before it
// was read) is always detected, never read as if it were the right one.
//
// Call Scan (or Run) often while the server runs, Scan once more after it
// stopped, and Release the segments a Reader has read.
type Keeper struct {
	// config
	dir     string
	tli     uint32
	segSize uint32

	// state
	mu     sync.Mutex
	next   uint64 // the lowest segment number not yet opened
	held   map[uint64]*os.File
	closed bool
}

// NewKeeper returns a Keeper of the segments of timeline tli in dir from
// the one that holds start on, and opens those that exist; the first one
// must.
func NewKeeper(dir string, tli, segSize uint32, start LSN) (*Keeper, error) {
	if !ValidSegmentSize(segSize) {
		return nil, fmt.Errorf("wal: NewKeeper: segment size %d is not a power of two from 1 MiB to 1 GiB", segSize)
	}
	k := &Keeper{dir: dir, tli: tli, segSize: segSize, next: uint64(start) / uint64(segSize), held: make(map[uint64]*os.File)}
	n, err := k.Scan()
	if err == nil && n == 0 {
		err = fmt.Errorf("wal: NewKeeper: segment %s, which holds the start LSN %s, does not exist in %s: %w",
			SegmentFileName(tli, k.next, segSize), start, dir, fs.ErrNotExist)
	}
	if err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// Scan opens the segments from the lowest one not yet held up to the first
// that does not exist, and returns how many it opened. Pre-allocated future
// segments are opened too: the server writes them in place.
func (k *Keeper) Scan() (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return 0, errors.New("wal: Keeper is closed")
	}
	n := 0
	for {
		name := SegmentFileName(k.tli, k.next, k.segSize)
		f, err := os.Open(filepath.Join(k.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("wal: keeping segment %s: %w", name, err)
		}
		k.held[k.next] = f
		k.next++
		n++
	}
}

// Run calls Scan every interval until ctx is done, and returns the first
// error of Scan, or nil when ctx ends.
func (k *Keeper) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := k.Scan(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// keptSegment is what OpenSegment returns: the held file, without Close
// (the Keeper closes it).
type keptSegment struct{ f *os.File }

func (s keptSegment) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

// OpenSegment returns a held segment; for one not held yet it scans first.
// A segment before the start, or released, or not found by the scan, does
// not exist for the Keeper (an error wrapping fs.ErrNotExist): its file may
// already hold another segment's contents.
func (k *Keeper) OpenSegment(tli uint32, segNo uint64, segSize uint32) (io.ReaderAt, error) {
	if tli != k.tli || segSize != k.segSize {
		return nil, fmt.Errorf("wal: Keeper of timeline %d, %d-byte segments, asked for timeline %d, %d-byte segments: %w",
			k.tli, k.segSize, tli, segSize, fs.ErrNotExist)
	}
	k.mu.Lock()
	f, ok := k.held[segNo]
	next := k.next
	k.mu.Unlock()
	if !ok && segNo >= next {
		if _, err := k.Scan(); err != nil {
			return nil, err
		}
		k.mu.Lock()
		f, ok = k.held[segNo]
		k.mu.Unlock()
	}
	if !ok {
		return nil, fmt.Errorf("wal: segment %s is not held (not found by a scan, or released): %w",
			SegmentFileName(tli, segNo, segSize), fs.ErrNotExist)
	}
	return keptSegment{f}, nil
}

// Held returns the number of segment files held open.
func (k *Keeper) Held() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.held)
}

// Release closes the held segments that end at or before lsn (a Reader's
// NextLSN: it needs nothing before it), so that the space of removed
// segments is freed.
func (k *Keeper) Release(lsn LSN) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var errs []error
	for no, f := range k.held {
		if (no+1)*uint64(k.segSize) <= uint64(lsn) {
			errs = append(errs, f.Close())
			delete(k.held, no)
		}
	}
	return errors.Join(errs...)
}

// Close closes every held segment.
func (k *Keeper) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var errs []error
	for no, f := range k.held {
		errs = append(errs, f.Close())
		delete(k.held, no)
	}
	k.closed = true
	return errors.Join(errs...)
}
