package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
// difference: entries missing or extra, types, modes, owners (as root),
// symlink targets, sizes and contents, block by block. An unsealed copy
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
	dest, err := checkPaths(src, o.Dest)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dest); err != nil || !fi.IsDir() {
		return nil, inputErr("give the copy's directory", "DEST %s is not a directory", o.Dest)
	}
	if !isCopy(dest) {
		return nil, inputErr("give the directory of a copy of SRC: one made by pgtwopass, or any copy of a data directory (it holds PG_VERSION)",
			"DEST %s is neither a pgtwopass copy nor a data directory (no %s, no PG_VERSION)", o.Dest, manifest.DirName)
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
	de, err := walk(dest, ex)
	if err != nil {
		return nil, err
	}
	// A backup_manifest that finish --backup-manifest wrote is not the
	// source's.
	if !hasEntry(se, backupManifestName) {
		de = dropEntry(de, backupManifestName)
	}
	v := &verifier{src: src.dir, dst: dest, bs: bs, owners: os.Geteuid() == 0, obs: o.Observer}
	var files [][2]*entry
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
			v.missing(&se[i])
			i++
		case c > 0:
			v.add(de[k].rel, "not in the source")
			k++
		default:
			if v.compareMeta(&se[i], &de[k]) {
				files = append(files, [2]*entry{&se[i], &de[k]})
			}
			i++
			k++
		}
	}
	for _, ts := range src.tablespaces {
		link := filepath.Join(dest, "pg_tblspc", ts.oid)
		if target, err := os.Readlink(link); err != nil || target != ts.new {
			v.add("pg_tblspc/"+ts.oid, "the copy's tablespace link points to %q, not to %s", target, ts.new)
		}
	}
	if err := v.compareContents(ctx, files, o.Jobs); err != nil {
		return nil, err
	}
	sort.Slice(v.diffs, func(a, b int) bool { return manifest.ComparePaths(v.diffs[a].Path, v.diffs[b].Path) < 0 })
	return v.diffs, nil
}

type verifier struct {
	// config
	src, dst string
	bs       int
	owners   bool
	obs      Observer
	// state
	mu    stdsync.Mutex
	diffs []Difference
}

func (v *verifier) add(path, format string, args ...any) {
	v.mu.Lock()
	v.diffs = append(v.diffs, Difference{Path: path, What: fmt.Sprintf(format, args...)})
	v.mu.Unlock()
}

func (v *verifier) missing(e *entry) {
	if e.rel == controlFile {
		if _, err := os.Stat(filepath.Join(v.dst, filepath.FromSlash(heldControl))); err == nil {
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

func (v *verifier) compareContents(ctx context.Context, files [][2]*entry, jobs int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, f := range files {
		g.Go(func() error { return v.compareFile(ctx, f[0], f[1]) })
	}
	return g.Wait()
}

func (v *verifier) compareFile(ctx context.Context, s, d *entry) error {
	sf, err := os.Open(filepath.Join(v.src, filepath.FromSlash(s.rel)))
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", s.rel, err)
	}
	defer sf.Close()
	df, err := os.Open(filepath.Join(v.dst, filepath.FromSlash(d.rel)))
	if err != nil {
		return fmt.Errorf("failed to open the copy of %s: %w", d.rel, err)
	}
	defer df.Close()
	sb, db := make([]byte, chunkSize), make([]byte, chunkSize)
	var differing, first int64 = 0, -1
	for off := int64(0); ; off += chunkSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		sn, serr := io.ReadFull(sf, sb)
		dn, derr := io.ReadFull(df, db)
		for _, err := range []error{serr, derr} {
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("failed to read %s: %w", s.rel, err)
			}
		}
		v.obs.Progress(int64(sn+dn), 0)
		for b := 0; b < max(sn, dn); b += v.bs {
			se, de := min(b+v.bs, sn), min(b+v.bs, dn)
			if b >= sn || b >= dn || !bytes.Equal(sb[b:se], db[b:de]) {
				differing++
				if first < 0 {
					first = off + int64(b)
				}
			}
		}
		if sn < chunkSize || dn < chunkSize {
			break
		}
	}
	if differing > 0 {
		v.add(s.rel, "%d block(s) of %d bytes differ, the first at byte %d", differing, v.bs, first)
	}
	return nil
}

// isCopy reports whether dir looks like a copy of a data directory: a copy
// made by pgtwopass (it has DEST/.pgtwopass), or one made otherwise (it has
// PG_VERSION). Comparing SRC with anything else prints every file of SRC as
// missing, which is a mistyped path rather than a finding.
func isCopy(dir string) bool {
	for _, name := range []string{manifest.DirName, "PG_VERSION"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
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
