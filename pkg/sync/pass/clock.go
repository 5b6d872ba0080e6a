package pass

import (
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// FSClock knows the timestamp granularity of file systems, by device: a
// file system keeps timestamps to the nanosecond, the microsecond, the
// second (ext4 with 128-byte inodes, ext3, some network file systems), or
// two seconds (FAT). The zero value knows none: it assumes a second.
type FSClock struct {
	mu sync.Mutex
	g  map[uint64]int64 // st_dev -> granularity in ns
}

// unknownGranularity is assumed for a file system that was not probed: the
// coarsest in common use.
const unknownGranularity = int64(time.Second)

// Granularity is the timestamp granularity (ns) of the file system of
// device dev.
func (c *FSClock) Granularity(dev uint64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g, ok := c.g[dev]; ok {
		return g
	}
	return unknownGranularity
}

// Probe measures the timestamp granularity of the file system of dir,
// with a file it writes there and removes: it sets the file's mtime to a
// time with every digit of its nanoseconds set and reads back what the file
// system kept.
func (c *FSClock) Probe(dir string) error {
	f, err := os.CreateTemp(dir, ".pgtwopass-clock-")
	if err != nil {
		return fmt.Errorf("failed to probe the timestamps of %s: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	want := time.Unix(1_000_000_001, 123_456_789) // an odd second: FAT keeps two
	if err := os.Chtimes(name, want, want); err != nil {
		return fmt.Errorf("failed to probe the timestamps of %s: %w", dir, err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("failed to probe the timestamps of %s: %w", dir, err)
	}
	got := fi.ModTime().UnixNano()
	g := int64(1)
	for g < 2*int64(time.Second) && got != want.UnixNano()/g*g {
		switch {
		case g < int64(time.Second):
			g *= 10
		default:
			g = 2 * int64(time.Second)
		}
	}
	if got != want.UnixNano()/g*g {
		g = 2 * int64(time.Second) // something coarser still: assume two seconds
	}
	c.mu.Lock()
	if c.g == nil {
		c.g = map[uint64]int64{}
	}
	c.g[uint64(fi.Sys().(*syscall.Stat_t).Dev)] = g
	c.mu.Unlock()
	return nil
}

// SameMtime reports whether the copy's mtime got is the source's mtime
// want as the copy's file system keeps it.
func (c *FSClock) SameMtime(fi fs.FileInfo, got, want int64) bool {
	if got == want {
		return true
	}
	g := c.Granularity(uint64(fi.Sys().(*syscall.Stat_t).Dev))
	return g > 1 && got == Floor(want, g)
}

// Floor rounds t (ns since the epoch) down to a multiple of g.
func Floor(t, g int64) int64 {
	if t < 0 {
		return (t - g + 1) / g * g
	}
	return t / g * g
}
