package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// VerifyManifest reads every file of the copy in o.Dest, on this host or on
// another, and compares it with the manifest: block hashes, CRC-32C and
// size; files the manifest does not know and records whose file is gone
// are differences too. It needs no source and writes nothing.
func VerifyManifest(ctx context.Context, o Options) ([]Difference, error) {
	o.Source = "-"
	if err := o.validate(); err != nil {
		return nil, err
	}
	d, err := copyOnly(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer d.close()
	return d.verifyManifest(ctx, o.Jobs, o.excluder())
}

func (d *localDest) verifyManifest(ctx context.Context, jobs int, ex excluder) ([]Difference, error) {
	st, err := d.status(ctx)
	if err != nil {
		return nil, err
	}
	r, err := manifest.Open(d.manifestPath())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	entries, err := walk(d.dir, ex)
	if err != nil {
		return nil, err
	}
	onDisk := make(map[string]bool)
	for i := range entries {
		if e := &entries[i]; e.isRegular() && e.rel != backupManifestName {
			onDisk[e.rel] = true
		}
	}
	v := &verifier{bs: int(st.Header.BlockSize), obs: d.obs}
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
		path := filepath.Join(st.Dest, filepath.FromSlash(f.Path))
		if f.Path == controlFile && !onDisk[f.Path] {
			path = filepath.Join(st.Dest, filepath.FromSlash(heldControl))
		}
		delete(onDisk, f.Path)
		g.Go(func() error { return v.checkRecord(gctx, f, path) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for rel := range onDisk {
		v.add(rel, "in the copy but not in the manifest")
	}
	sort.Slice(v.diffs, func(a, b int) bool { return manifest.ComparePaths(v.diffs[a].Path, v.diffs[b].Path) < 0 })
	return v.diffs, nil
}

func (v *verifier) checkRecord(ctx context.Context, rec *manifest.File, path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		v.add(rec.Path, "in the manifest but missing from the copy")
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, max(chunkSize, v.bs))
	var size int64
	var crc uint32
	var differing, first int64 = 0, -1
	for blk := 0; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(f, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("failed to read %s: %w", path, err)
		}
		crc = crc32c.Update(crc, buf[:n])
		v.obs.Progress(int64(n), 0)
		for b := 0; b < n; b, blk = b+v.bs, blk+1 {
			h := manifest.HashBlock(buf[b:min(b+v.bs, n)])
			if blk >= len(rec.Hashes) || rec.Hashes[blk] != h {
				differing++
				if first < 0 {
					first = size + int64(b)
				}
			}
		}
		size += int64(n)
		if n < len(buf) {
			break
		}
	}
	switch {
	case size != rec.Dest.Size:
		v.add(rec.Path, "%d bytes in the copy, %d in the manifest", size, rec.Dest.Size)
	case differing > 0:
		v.add(rec.Path, "%d block(s) of %d bytes differ from the manifest's hashes, the first at byte %d", differing, v.bs, first)
	case rec.Flags&manifest.FlagNoCRC32C == 0 && crc != rec.CRC32C:
		v.add(rec.Path, "CRC-32C %08x in the copy, %08x in the manifest", crc, rec.CRC32C)
	}
	return nil
}
