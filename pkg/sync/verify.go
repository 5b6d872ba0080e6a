package sync

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	stdsync "sync"

	"golang.org/x/sync/errgroup"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
)

// Difference is one way in which the copy differs from the source.
type Difference struct {
	Path string
	What string
}

func (d Difference) String() string { return d.Path + ": " + d.What }

// Verify reads a stopped source and its copy in full and returns every
// difference: entries missing or extra, types, modes, owners (when the
// copy's side runs as root), symlink targets, sizes and contents, block by
// block (both sides hash their blocks with xxh3-128, so that a copy on
// another host is compared without sending its data). An unsealed copy
// differs in global/pg_control. It writes nothing.
func Verify(ctx context.Context, o Options) ([]Difference, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	src, err := inspectSource(ctx, o.Source, o.TablespaceMap)
	if err != nil {
		return nil, err
	}
	if up, pm, _ := pgctl.ServerRunning(src.dir); up {
		return nil, inputErr("stop the server first: a running server changes its files while they are compared",
			"the server on SRC is running (pid %d)", pm.PID)
	}
	dst, err := newDest(ctx, &o, src)
	if err != nil {
		return nil, err
	}
	defer dst.close()
	rep, err := dst.open(ctx, &openRequest{ReadOnly: true, SystemIdentifier: src.control.SystemIdentifier, PGVersion: src.pgVersion,
		Owner: src.ownerIDs(), Tablespaces: sortedKeys(src.tablespaces)})
	if err != nil {
		return nil, err
	}
	bs := o.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	ex := o.excluder()
	se, err := walk(src.dir, ex)
	if err != nil {
		return nil, err
	}
	newIDMap(src.ownerIDs(), rep.Owner).apply(se)
	de, err := dst.walkCopy(ctx, ex)
	if err != nil {
		return nil, err
	}
	// A backup_manifest that finish --backup-manifest wrote is not the
	// source's.
	if !hasEntry(se, backupManifestName) {
		de = dropEntry(de, backupManifestName)
	}
	v := &verifier{bs: bs, owners: rep.AsRoot, obs: o.Observer}
	var files []*entry
	i, k := 0, 0
	for i < len(se) || k < len(de) {
		var c int
		switch {
		case i == len(se):
			c = 1
		case k == len(de):
			c = -1
		default:
			c = manifest.ComparePaths(se[i].rel, de[k].rel)
		}
		switch {
		case c < 0:
			v.missing(ctx, dst, &se[i])
			i++
		case c > 0:
			v.add(de[k].rel, "not in the source")
			k++
		default:
			if v.compareMeta(&se[i], &de[k]) {
				files = append(files, &se[i])
			}
			if oid, rest, ok := tablespaceRel(se[i].rel); ok && rest == "" && src.tablespaces[oid] != nil {
				if want := rep.Tablespaces[oid]; de[k].target != want {
					v.add(se[i].rel, "the copy's tablespace link points to %q, not to %s", de[k].target, want)
				}
			}
			i++
			k++
		}
	}
	if err := v.compareContents(ctx, src.dir, dst, files, o.Jobs); err != nil {
		return nil, err
	}
	sort.Slice(v.diffs, func(a, b int) bool { return manifest.ComparePaths(v.diffs[a].Path, v.diffs[b].Path) < 0 })
	return v.diffs, nil
}

type verifier struct {
	// config
	bs     int
	owners bool
	obs    Observer
	// state
	mu    stdsync.Mutex
	diffs []Difference
}

func (v *verifier) add(path, format string, args ...any) {
	v.mu.Lock()
	v.diffs = append(v.diffs, Difference{Path: path, What: fmt.Sprintf(format, args...)})
	v.mu.Unlock()
}

func (v *verifier) missing(ctx context.Context, dst dest, e *entry) {
	if e.rel == controlFile {
		if st, err := dst.status(ctx); err == nil && !st.Sealed {
			v.add(e.rel, "the copy is not sealed: its pg_control is held in %s until a cold pass completes (run finish)", manifest.DirName)
			return
		}
	}
	v.add(e.rel, "missing from the copy")
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "file"
}

// compareMeta compares everything but contents, and reports whether the
// contents must be compared too.
func (v *verifier) compareMeta(s, d *entry) bool {
	name := s.rel
	if name == "" {
		name = "."
	}
	if s.mode.Type() != d.mode.Type() {
		v.add(name, "a %s in the source, a %s in the copy", kindOf(s.mode), kindOf(d.mode))
		return false
	}
	if !s.isSymlink() && (s.mode.Perm() != d.mode.Perm() || s.mode&modeSpecial != d.mode&modeSpecial) {
		v.add(name, "mode %v in the source, %v in the copy", s.mode.Perm(), d.mode.Perm())
	}
	if v.owners && (s.uid != d.uid || s.gid != d.gid) {
		v.add(name, "owner %d:%d in the source, %d:%d in the copy", s.uid, s.gid, d.uid, d.gid)
	}
	switch {
	case s.isSymlink():
		if s.target != d.target {
			v.add(name, "symlink to %q in the source, to %q in the copy", s.target, d.target)
		}
	case s.isRegular():
		if s.stat.Size != d.stat.Size {
			v.add(name, "%d bytes in the source, %d in the copy", s.stat.Size, d.stat.Size)
		}
		return true
	}
	return false
}

// copyHashes is one file's hashes from the copy's side.
type copyHashes struct {
	e      *entry
	hashes []manifest.Hash
}

// compareContents hashes the source's files while the copy's side hashes
// its own, and compares them block by block.
func (v *verifier) compareContents(ctx context.Context, srcDir string, dst dest, files []*entry, jobs int) error {
	byRel := make(map[string]*entry, len(files))
	rels := make([]string, len(files))
	for i, e := range files {
		byRel[e.rel] = e
		rels[i] = e.rel
	}
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan copyHashes, jobs)
	g.Go(func() error {
		defer close(work)
		return dst.hashFiles(gctx, rels, v.bs, jobs, func(rel string, size int64, hashes []manifest.Hash, err error) error {
			if err != nil {
				return err
			}
			e := byRel[rel]
			if e == nil {
				return fmt.Errorf("the copy's side hashed %q, which was not asked for", rel)
			}
			v.obs.Progress(size, 0)
			select {
			case work <- copyHashes{e, hashes}:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	for range jobs {
		g.Go(func() error {
			for w := range work {
				if err := v.compareFile(gctx, srcDir, w); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func (v *verifier) compareFile(ctx context.Context, srcDir string, w copyHashes) error {
	f, err := os.Open(filepath.Join(srcDir, filepath.FromSlash(w.e.rel)))
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", w.e.rel, err)
	}
	defer f.Close()
	sh, err := hashContents(ctx, f, v.bs, func(n int64) { v.obs.Progress(n, 0) })
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", w.e.rel, err)
	}
	var differing, first int64 = 0, -1
	for b := range max(len(sh), len(w.hashes)) {
		if b >= len(sh) || b >= len(w.hashes) || sh[b] != w.hashes[b] {
			differing++
			if first < 0 {
				first = int64(b) * int64(v.bs)
			}
		}
	}
	if differing > 0 {
		v.add(w.e.rel, "%d block(s) of %d bytes differ, the first at byte %d", differing, v.bs, first)
	}
	return nil
}

func hasEntry(es []entry, rel string) bool {
	for i := range es {
		if es[i].rel == rel {
			return true
		}
	}
	return false
}

func dropEntry(es []entry, rel string) []entry {
	for i := range es {
		if es[i].rel == rel {
			return append(es[:i:i], es[i+1:]...)
		}
	}
	return es
}

// walkCopy lists the copy as walk lists SRC; the tablespace links lead to
// the tablespaces' copies.
func (d *localDest) walkCopy(_ context.Context, ex excluder) ([]entry, error) {
	return walk(d.dir, ex)
}

// hashFiles hashes the copy's files rels with jobs workers.
func (d *localDest) hashFiles(ctx context.Context, rels []string, bs, jobs int, fn func(string, int64, []manifest.Hash, error) error) error {
	var mu stdsync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, rel := range rels {
		if !validRel(rel) || rel == "" {
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

func (d *localDest) hashFile(ctx context.Context, rel string, bs int) (int64, []manifest.Hash, error) {
	root, name := d.at(rel, false)
	if root == nil {
		return 0, nil, fmt.Errorf("failed to open %s in the copy: %w", rel, fs.ErrNotExist)
	}
	f, err := root.Open(name)
	if err != nil {
		return 0, nil, fmt.Errorf("failed to open %s in the copy: %w", rel, err)
	}
	defer f.Close()
	var size int64
	hashes, err := hashContents(ctx, f, bs, func(n int64) { size += n })
	if err != nil {
		return 0, nil, fmt.Errorf("failed to read %s in the copy: %w", rel, err)
	}
	return size, hashes, nil
}
