package sync

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// Verify reads a stopped source and its copy in full and returns every
// difference: entries missing or extra, types, modes, owners (when the
// copy's side runs as root), symlink targets, sizes and contents, block by
// block (both sides hash their blocks with xxh3-128, so that a copy on
// another host is compared without sending its data). An unsealed copy
// differs in global/pg_control. It writes nothing.
func Verify(ctx context.Context, o Options) ([]Difference, error) {
	src, dst, rep, err := openVerify(ctx, &o, "a running server changes its files while they are compared")
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	bs := o.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	ex := o.excluder()
	se, err := pass.Walk(src.dir, ex)
	if err != nil {
		return nil, err
	}
	pass.NewIDMap(src.ownerIDs(), rep.Owner).Apply(se)
	de, err := dst.WalkCopy(ctx, ex)
	if err != nil {
		return nil, err
	}
	// A backup_manifest that finish --backup-manifest wrote is not the
	// source's.
	if !hasEntry(se, pass.BackupManifestName) {
		de = dropEntry(de, pass.BackupManifestName)
	}
	v := &verifier{bs: bs, owners: rep.AsRoot, obs: o.Observer}
	var files []*pass.Entry
	i, k := 0, 0
	for i < len(se) || k < len(de) {
		var c int
		switch {
		case i == len(se):
			c = 1
		case k == len(de):
			c = -1
		default:
			c = manifest.ComparePaths(se[i].Rel, de[k].Rel)
		}
		switch {
		case c < 0:
			v.missing(ctx, dst, &se[i])
			i++
		case c > 0:
			v.Add(de[k].Rel, "not in the source")
			k++
		default:
			if v.compareMeta(&se[i], &de[k]) {
				files = append(files, &se[i])
			}
			if oid, rest, ok := pass.TablespaceRel(se[i].Rel); ok && rest == "" && src.tablespaces[oid] != nil {
				if want := rep.Tablespaces[oid]; de[k].Target != want {
					v.Add(se[i].Rel, "the copy's tablespace link points to %q, not to %s", de[k].Target, want)
				}
			}
			i++
			k++
		}
	}
	if err := v.compareContents(ctx, src.dir, dst, files, o.Jobs); err != nil {
		return nil, err
	}
	return v.Sorted(), nil
}

type verifier struct {
	// config
	bs     int
	owners bool
	obs    Observer
	// state
	pass.Differences
}

func (v *verifier) missing(ctx context.Context, dst pass.Destination, e *pass.Entry) {
	if e.Rel == pass.ControlFile {
		if st, err := dst.Status(ctx); err == nil && !st.Sealed {
			v.Add(e.Rel, "the copy is not sealed: its pg_control is held in %s until a cold pass completes (run finish)", manifest.DirName)
			return
		}
	}
	v.Add(e.Rel, "missing from the copy")
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
func (v *verifier) compareMeta(s, d *pass.Entry) bool {
	name := s.Rel
	if name == "" {
		name = "."
	}
	if s.Mode.Type() != d.Mode.Type() {
		v.Add(name, "a %s in the source, a %s in the copy", kindOf(s.Mode), kindOf(d.Mode))
		return false
	}
	if !s.IsSymlink() && (s.Mode.Perm() != d.Mode.Perm() || s.Mode&pass.ModeSpecial != d.Mode&pass.ModeSpecial) {
		v.Add(name, "mode %v in the source, %v in the copy", s.Mode.Perm(), d.Mode.Perm())
	}
	if v.owners && (s.UID != d.UID || s.GID != d.GID) {
		v.Add(name, "owner %d:%d in the source, %d:%d in the copy", s.UID, s.GID, d.UID, d.GID)
	}
	switch {
	case s.IsSymlink():
		if s.Target != d.Target {
			v.Add(name, "symlink to %q in the source, to %q in the copy", s.Target, d.Target)
		}
	case s.IsRegular():
		if s.Stat.Size != d.Stat.Size {
			v.Add(name, "%d bytes in the source, %d in the copy", s.Stat.Size, d.Stat.Size)
		}
		return true
	}
	return false
}

// copyHashes is one file's hashes from the copy's side.
type copyHashes struct {
	e      *pass.Entry
	hashes []manifest.Hash
}

// compareContents hashes the source's files while the copy's side hashes
// its own, and compares them block by block.
func (v *verifier) compareContents(ctx context.Context, srcDir string, dst pass.Destination, files []*pass.Entry, jobs int) error {
	byRel := make(map[string]*pass.Entry, len(files))
	rels := make([]string, len(files))
	for i, e := range files {
		byRel[e.Rel] = e
		rels[i] = e.Rel
	}
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan copyHashes, jobs)
	g.Go(func() error {
		defer close(work)
		return dst.HashFiles(gctx, rels, v.bs, jobs, func(rel string, size int64, hashes []manifest.Hash, err error) error {
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
	f, err := os.Open(filepath.Join(srcDir, filepath.FromSlash(w.e.Rel)))
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", w.e.Rel, err)
	}
	defer f.Close()
	sh, _, err := pass.HashFile(ctx, f, v.bs, func(b []byte) { v.obs.Progress(int64(len(b)), 0) })
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", w.e.Rel, err)
	}
	if differing, first := pass.BlocksDiffer(sh, w.hashes, v.bs); differing > 0 {
		v.Add(w.e.Rel, "%d block(s) of %d bytes differ, the first at byte %d", differing, v.bs, first)
	}
	return nil
}

func hasEntry(es []pass.Entry, rel string) bool {
	for i := range es {
		if es[i].Rel == rel {
			return true
		}
	}
	return false
}

func dropEntry(es []pass.Entry, rel string) []pass.Entry {
	for i := range es {
		if es[i].Rel == rel {
			return append(es[:i:i], es[i+1:]...)
		}
	}
	return es
}

// openVerify checks that the server on SRC is stopped (why says why it must
// be) and opens DEST to read: how every verify of SRC against DEST begins.
// The caller closes the destination.
func openVerify(ctx context.Context, o *Options, why string) (*source, pass.Destination, *pass.OpenReply, error) {
	if err := o.validate(); err != nil {
		return nil, nil, nil, err
	}
	src, err := inspectSource(ctx, o.Source, o.TablespaceMap)
	if err != nil {
		return nil, nil, nil, err
	}
	if st := pgctl.ReadServerState(src.dir); !st.Known() {
		return nil, nil, nil, errServerUnknown(src.dir, st.Err)
	} else if st.Running {
		return nil, nil, nil, inputErr("stop the server first: "+why, "the server on SRC is running (pid %d)", st.PM.PID)
	}
	dst, err := newDest(ctx, o, src)
	if err != nil {
		return nil, nil, nil, err
	}
	rep, err := dst.Open(ctx, &pass.OpenRequest{ReadOnly: true, SystemIdentifier: src.control.SystemIdentifier, PGVersion: src.pgVersion,
		Owner: src.ownerIDs(), Tablespaces: sortedKeys(src.tablespaces)})
	if err != nil {
		dst.Close()
		return nil, nil, nil, err
	}
	return src, dst, rep, nil
}

// VerifyAgainstSeal reads the stopped source in full and compares it with
// the copy's manifest as the last pass (the seal) left it: every block's
// hash, every file's size, files the seal lacks and records the source
// lacks. It reads nothing of the copy, which may have run since (after a
// cutover, the old source still stopped): the checksum cold pass's proof,
// off the downtime, for a copy made by a WAL-guided or quick cold pass.
func VerifyAgainstSeal(ctx context.Context, o Options) ([]Difference, error) {
	src, dst, _, err := openVerify(ctx, &o, "the seal describes the source as it was stopped")
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	st, err := dst.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Header.SystemIdentifier != src.control.SystemIdentifier {
		return nil, inputErr("give the copy of this source", "DEST is a copy of another cluster (database system identifier %d; SRC has %d)",
			st.Header.SystemIdentifier, src.control.SystemIdentifier)
	}
	bs := int(st.Header.BlockSize)
	se, err := pass.Walk(src.dir, o.excluder())
	if err != nil {
		return nil, err
	}
	files := map[string]*pass.Entry{}
	for i := range se {
		if se[i].IsRegular() {
			files[se[i].Rel] = &se[i]
		}
	}
	v := &verifier{bs: bs, obs: o.Observer}
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan copyHashes, o.Jobs)
	g.Go(func() error {
		defer close(work)
		return dst.SealedHashes(gctx, func(rel string, size int64, hashes []manifest.Hash) error {
			e := files[rel]
			if e == nil {
				v.Add(rel, "in the seal's manifest, but not in the source")
				return nil
			}
			delete(files, rel)
			if e.Stat.Size != size {
				v.Add(rel, "%d bytes in the source, %d when the copy was sealed", e.Stat.Size, size)
			}
			select {
			case work <- copyHashes{e, hashes}:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	for range o.Jobs {
		g.Go(func() error {
			for w := range work {
				if err := v.compareFile(gctx, src.dir, w); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for rel := range files {
		if rel != pass.BackupManifestName {
			v.Add(rel, "in the source, but not in the seal's manifest")
		}
	}
	return v.Sorted(), nil
}
