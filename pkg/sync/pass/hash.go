package pass

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// HashBlocks hashes buf block by block, bs bytes each (the last one may be
// shorter), into out, which must hold ceil(len(buf)/bs) hashes.
func HashBlocks(out []manifest.Hash, buf []byte, bs int) {
	for i, b := 0, 0; b < len(buf); i, b = i+1, b+bs {
		out[i] = manifest.HashBlock(buf[b:min(b+bs, len(buf))])
	}
}

// HashFile returns the block hashes of what r holds, read in chunks from
// the start to its end, and its size. chunk, if set, sees each chunk read
// (for progress, or a CRC).
func HashFile(ctx context.Context, r io.ReaderAt, bs int, chunk func([]byte)) ([]manifest.Hash, int64, error) {
	size := max(ChunkSize, bs)
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		// Whole blocks past the file's end, so that one read sees it:
		// most files of a data directory are a few KiB, and a 4 MiB
		// buffer cleared for each of them cost verify more than hashing
		// them. A multiple of bs, as every chunk must be, should the file
		// grow.
		if fi, err := f.Stat(); err == nil && fi.Size() < int64(size) {
			size = (int(fi.Size())/bs + 1) * bs
		}
	}
	buf := make([]byte, size)
	var hashes []manifest.Hash
	for off := int64(0); ; {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		n, err := r.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		first := len(hashes)
		hashes = append(hashes, make([]manifest.Hash, manifest.NumBlocks(int64(n), bs))...)
		HashBlocks(hashes[first:], buf[:n], bs)
		if chunk != nil {
			chunk(buf[:n])
		}
		off += int64(n)
		if n < len(buf) {
			return hashes, off, nil
		}
	}
}

// HashesSum is the xxh3-64 of a file's block hashes, by which a remote
// receiver checks the hashes it rebuilt from the basis and the blocks it
// received.
func HashesSum(hs []manifest.Hash) uint64 {
	h := xxh3.New()
	for i := range hs {
		h.Write(hs[i][:])
	}
	return h.Sum64()
}

// BlocksDiffer counts the blocks where the hashes a and b differ (a block
// one of them lacks differs), and returns the offset of the first, with
// blocks of bs bytes; -1 when none differs.
func BlocksDiffer(a, b []manifest.Hash, bs int) (differing, first int64) {
	first = -1
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			differing++
			if first < 0 {
				first = int64(i) * int64(bs)
			}
		}
	}
	return differing, first
}

// CheckRecord reads the copy's file at path and adds to diffs how it
// differs from its record rec: size, block hashes (blocks of bs bytes),
// CRC-32C. progress, if set, is told the bytes read.
func CheckRecord(ctx context.Context, rec *manifest.File, path string, bs int, progress func(int64), diffs *Differences) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		diffs.Add(rec.Path, "in the manifest but missing from the copy")
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", path, err)
	}
	defer f.Close()
	var crc uint32
	hashes, size, err := HashFile(ctx, f, bs, func(b []byte) {
		crc = crc32c.Update(crc, b)
		if progress != nil {
			progress(int64(len(b)))
		}
	})
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", path, err)
	}
	switch differing, first := BlocksDiffer(hashes, rec.Hashes, bs); {
	case size != rec.Dest.Size:
		diffs.Add(rec.Path, "%d bytes in the copy, %d in the manifest", size, rec.Dest.Size)
	case differing > 0:
		diffs.Add(rec.Path, "%d block(s) of %d bytes differ from the manifest's hashes, the first at byte %d", differing, bs, first)
	case rec.Flags&manifest.FlagNoCRC32C == 0 && crc != rec.CRC32C:
		diffs.Add(rec.Path, "CRC-32C %08x in the copy, %08x in the manifest", crc, rec.CRC32C)
	}
	return nil
}

// CheckRecords compares the copy's files with the records r holds, with
// jobs workers: each record's file (at pathOf(rel)) is read in full
// (CheckRecord), and the files of onDisk (the copy's regular files, by rel;
// emptied on the way) that no record names are differences too. progress,
// if set, is told the bytes read.
func CheckRecords(ctx context.Context, r *manifest.Reader, onDisk map[string]bool, pathOf func(rel string) string, bs, jobs int, progress func(int64)) ([]Difference, error) {
	v := &Differences{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			g.Wait()
			return nil, err
		}
		path := pathOf(f.Path)
		delete(onDisk, f.Path)
		g.Go(func() error { return CheckRecord(gctx, f, path, bs, progress, v) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for rel := range onDisk {
		v.Add(rel, "in the copy but not in the manifest")
	}
	return v.Sorted(), nil
}
