package pass

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// grownFile is a file whose Stat reports the size it had before it grew to
// hold data: a file a live pass reads while PostgreSQL extends it.
type grownFile struct {
	*bytes.Reader
	statSize int64
}

func (g grownFile) Stat() (fs.FileInfo, error) { return sizeInfo(g.statSize), nil }

type sizeInfo int64

func (s sizeInfo) Name() string       { return "f" }
func (s sizeInfo) Size() int64        { return int64(s) }
func (s sizeInfo) Mode() fs.FileMode  { return 0o600 }
func (s sizeInfo) ModTime() time.Time { return time.Time{} }
func (s sizeInfo) IsDir() bool        { return false }
func (s sizeInfo) Sys() any           { return nil }

// TestHashFile: HashFile gives the hashes of the file's blocks, bs bytes
// each from the start, whatever its size, with a buffer sized to a small
// file, and also when the file grew after the size its buffer was chosen
// by (each read must still end on a block boundary).
func TestHashFile(t *testing.T) {
	const bs = 8192
	want := func(data []byte) []manifest.Hash {
		h := make([]manifest.Hash, manifest.NumBlocks(int64(len(data)), bs))
		HashBlocks(h, data, bs)
		return h
	}
	check := func(what string, data []byte, hashes []manifest.Hash, size int64, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if size != int64(len(data)) {
			t.Errorf("%s: size %d, want %d", what, size, len(data))
		}
		if w := want(data); !slices.Equal(hashes, w) {
			t.Errorf("%s: %d hashes differ from the blocks' (%d)", what, len(hashes), len(w))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	for _, n := range []int{0, 1, bs - 1, bs, bs + 1, 3*bs + 17, ChunkSize - 1, ChunkSize, ChunkSize + bs + 5} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		hashes, size, err := HashFile(context.Background(), f, bs, nil)
		f.Close()
		check(fmt.Sprintf("a file of %d bytes", n), data, hashes, size, err)

		for _, statSize := range []int64{0, 1, bs - 1, bs + 1} {
			if statSize >= int64(n) {
				continue
			}
			hashes, size, err := HashFile(context.Background(), grownFile{bytes.NewReader(data), statSize}, bs, nil)
			check(fmt.Sprintf("a file of %d bytes, %d when stat'ed", n, statSize), data, hashes, size, err)
		}
	}
}
