package destination

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// VerifyManifest reads every file of the copy and compares it with the
// manifest: block hashes, CRC-32C and size; files the manifest does not
// know and records whose file is gone are differences too. It writes
// nothing.
func (d *Local) VerifyManifest(ctx context.Context, jobs int, ex pass.Excluder) ([]pass.Difference, error) {
	st, err := d.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Running {
		return nil, pass.InputErr("stop the server that runs on the copy: a running server changes the files being compared",
			"a PostgreSQL server runs on DEST %s (or pgtwopass cannot tell: check its postmaster.pid)", d.given)
	}
	if st.RanSinceSeal {
		return nil, pass.InputErr("the copy's files are the new cluster's now, not those the manifest recorded; verify SRC DEST compares it with a stopped source",
			"DEST %s has run as a PostgreSQL cluster since pgtwopass sealed it: its manifest describes it no more", d.given)
	}
	r, err := manifest.Open(d.manifestPath())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	entries, err := pass.Walk(d.dir, ex)
	if err != nil {
		return nil, err
	}
	onDisk := make(map[string]bool)
	for i := range entries {
		if e := &entries[i]; e.IsRegular() && e.Rel != pass.BackupManifestName {
			onDisk[e.Rel] = true
		}
	}
	// A pg_control not installed yet is held in .pgtwopass.
	return pass.CheckRecords(ctx, r, onDisk, func(rel string) string {
		if rel == pass.ControlFile && !onDisk[rel] {
			rel = pass.HeldControl
		}
		return filepath.Join(st.Dest, filepath.FromSlash(rel))
	}, int(st.Header.BlockSize), jobs, func(n int64) { d.obs.Progress(n, 0) })
}

// WalkCopy lists the copy as Walk lists SRC; the tablespace links lead to
// the tablespaces' copies.
func (d *Local) WalkCopy(_ context.Context, ex pass.Excluder) ([]pass.Entry, error) {
	return pass.Walk(d.dir, ex)
}

// HashFiles hashes the copy's files rels with jobs workers.
func (d *Local) HashFiles(ctx context.Context, rels []string, bs, jobs int, fn func(string, int64, []manifest.Hash, error) error) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, rel := range rels {
		if !pass.ValidRel(rel) || rel == "" {
			return fmt.Errorf("refusing to hash %q: not a file below the data directory", rel)
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			size, hashes, err := d.hashFile(gctx, rel, bs)
			mu.Lock()
			defer mu.Unlock()
			return fn(rel, size, hashes, err)
		})
	}
	return g.Wait()
}

func (d *Local) hashFile(ctx context.Context, rel string, bs int) (int64, []manifest.Hash, error) {
	root, name := d.at(rel, false)
	if root == nil {
		return 0, nil, fmt.Errorf("failed to open %s in the copy: %w", rel, fs.ErrNotExist)
	}
	f, err := root.Open(name)
	if err != nil {
		return 0, nil, fmt.Errorf("failed to open %s in the copy: %w", rel, err)
	}
	defer f.Close()
	hashes, size, err := pass.HashFile(ctx, f, bs, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("failed to read %s in the copy: %w", rel, err)
	}
	return size, hashes, nil
}

// SealedHashes calls fn with each record of the manifest, in walk order: the
// copy as the last pass left it, whatever happened to the copy since.
func (d *Local) SealedHashes(ctx context.Context, fn func(rel string, size int64, hashes []manifest.Hash) error) error {
	r, err := manifest.Open(d.manifestPath())
	if err != nil {
		return pass.InputErr("give the directory of a copy made by pgtwopass (verify --against-seal before pgtwopass detach)",
			"cannot read the manifest of DEST %s: %v", d.given, err)
	}
	defer r.Close()
	for {
		f, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(f.Path, f.Dest.Size, f.Hashes); err != nil {
			return err
		}
	}
}
