package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// blockSize is the block size of the comparison: pgtwopass's default and
// PostgreSQL's page size.
const blockSize = 8192

// unit is the finest granularity of the comparison: the smallest block size
// pgtwopass accepts. Larger block sizes are counted from it.
const unit = 4096

// diffResult is how a copy differs from its source, at the block size.
type diffResult struct {
	// differBytes is what a perfect block-level cold pass must write: each
	// block of the common length whose bytes differ (a short last block
	// counts its length), plus the source's bytes beyond the copy's size
	// (whole files the copy lacks included).
	differBytes  int64
	differBlocks int64
	filesDiffer  int   // source files with at least one differing byte
	missingFiles int   // source files the copy lacks
	extraFiles   int   // copy files the source lacks (deleted, nothing written)
	extraBytes   int64 // their size
	// rsync's view: files rsync --checksum transfers in full (content or
	// size differs, or missing), and the copy's bytes it reads to compare
	// (files of the same size as the source's).
	wholeFileBytes int64
	sameSizeBytes  int64
	// bySize is what differs, and the manifest's size, at other block
	// sizes (the ones asked for).
	bySize map[int]*sizeDiff
}

// sizeDiff is what a cold pass with one block size writes, and the size of
// the manifest that describes the source at that block size.
type sizeDiff struct {
	differBytes, differBlocks int64
	manifestBytes             int64
}

// blockDiff compares the regular files of src with those of dst block by
// block. held means dst is an unsealed pgtwopass copy: its pg_control is
// DEST/.pgtwopass/pg_control, not global/pg_control. dst's .pgtwopass is not
// part of the copy. Both trees must be at rest. sizes (multiples of 4 KiB)
// are the block sizes to count in bySize.
func blockDiff(src, dst string, held bool, sizes []int) (diffResult, error) {
	res := diffResult{bySize: map[int]*sizeDiff{}}
	for _, bs := range sizes {
		res.bySize[bs] = &sizeDiff{manifestBytes: manifest.HeaderSize + 1}
	}
	srcFiles, err := listFiles(src)
	if err != nil {
		return res, err
	}
	dstFiles, err := listFiles(dst)
	if err != nil {
		return res, err
	}
	dstPath := func(rel string) string {
		if held && rel == "global/pg_control" {
			return filepath.Join(dst, manifest.DirName, "pg_control")
		}
		return filepath.Join(dst, filepath.FromSlash(rel))
	}
	if held {
		if fi, err := os.Stat(dstPath("global/pg_control")); err == nil {
			dstFiles["global/pg_control"] = fi.Size()
		}
	}
	for rel, size := range dstFiles {
		if _, ok := srcFiles[rel]; !ok {
			res.extraFiles++
			res.extraBytes += size
		}
	}
	// A record is 99 bytes, the path, and 16 per block (docs/design.md).
	for rel, size := range srcFiles {
		for bs, d := range res.bySize {
			d.manifestBytes += 99 + int64(len(rel)) + 16*int64(manifest.NumBlocks(size, bs))
		}
	}

	jobs := make(chan string)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
			for rel := range jobs {
				var d diffResult
				ssize := srcFiles[rel]
				dsize, ok := dstFiles[rel]
				var units []bool // the 4 KiB units of the source that differ
				if !ok {
					d.missingFiles = 1
					d.filesDiffer = 1
					d.wholeFileBytes = ssize
					units = make([]bool, manifest.NumBlocks(ssize, unit))
					for i := range units {
						units[i] = true
					}
				} else {
					var cerr error
					units, cerr = compareFile(filepath.Join(src, filepath.FromSlash(rel)), dstPath(rel), ssize, bufA, bufB)
					if cerr != nil {
						mu.Lock()
						firstErr = errors.Join(firstErr, cerr)
						mu.Unlock()
						continue
					}
					if dsize == ssize {
						d.sameSizeBytes = dsize
					}
				}
				d.differBlocks, d.differBytes = countBlocks(units, ssize, blockSize)
				if ok && (d.differBlocks > 0 || dsize != ssize) {
					d.filesDiffer = 1
					d.wholeFileBytes = ssize
				}
				mu.Lock()
				res.differBytes += d.differBytes
				res.differBlocks += d.differBlocks
				res.filesDiffer += d.filesDiffer
				res.missingFiles += d.missingFiles
				res.wholeFileBytes += d.wholeFileBytes
				res.sameSizeBytes += d.sameSizeBytes
				for bs, sd := range res.bySize {
					blocks, n := countBlocks(units, ssize, bs)
					sd.differBlocks += blocks
					sd.differBytes += n
				}
				mu.Unlock()
			}
		}()
	}
	for rel := range srcFiles {
		jobs <- rel
	}
	close(jobs)
	wg.Wait()
	return res, firstErr
}

// countBlocks returns the blocks of size bs (a multiple of unit) of a file
// of size bytes that hold a differing unit, and their bytes (a short last
// block by its length).
func countBlocks(units []bool, size int64, bs int) (blocks, n int64) {
	per := bs / unit
	for i := 0; i < len(units); i += per {
		for _, u := range units[i:min(i+per, len(units))] {
			if u {
				blocks++
				n += min(int64(bs), size-int64(i)*unit)
				break
			}
		}
	}
	return blocks, n
}

// compareFile returns, for each 4 KiB unit of a (size bytes), whether it
// differs from b's at the same offset (a's bytes beyond b's end differ).
func compareFile(a, b string, size int64, bufA, bufB []byte) ([]bool, error) {
	units := make([]bool, manifest.NumBlocks(size, unit))
	fa, err := os.Open(a)
	if err != nil {
		return nil, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return nil, err
	}
	defer fb.Close()
	var off int64
	for {
		na, erra := io.ReadFull(fa, bufA)
		nb, errb := io.ReadFull(fb, bufB)
		for i := 0; i < na; i += unit {
			end := min(i+unit, na)
			if end > nb || !bytes.Equal(bufA[i:end], bufB[i:end]) {
				if u := (off + int64(i)) / unit; u < int64(len(units)) {
					units[u] = true
				}
			}
		}
		off += int64(na)
		for _, e := range []error{erra, errb} {
			if e != nil && !errors.Is(e, io.EOF) && !errors.Is(e, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("compare %s: %w", a, e)
			}
		}
		if erra != nil {
			return units, nil
		}
		if errb != nil {
			// b ended: the rest of a is missing from it.
			for u := off / unit; u < int64(len(units)); u++ {
				units[u] = true
			}
			return units, nil
		}
	}
}

// listFiles maps the relative paths of root's regular files that a copy
// includes (default excludes and .pgtwopass left out) to their sizes.
func listFiles(root string) (map[string]int64, error) {
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if rel == manifest.DirName || excluded(rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out[rel] = fi.Size()
		}
		return nil
	})
	return out, err
}
