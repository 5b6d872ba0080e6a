package pass

import (
	"context"
	"errors"
	"io"
	"io/fs"

	"github.com/zeebo/xxh3"

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
