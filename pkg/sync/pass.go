package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	stdsync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// pass is one live or cold pass from SRC into DEST.
type pass struct {
	// config
	kind   manifest.PassKind
	opts   *Options
	src    *source
	dst    *destination
	bs     int
	asRoot bool
	quick  bool // a quick cold pass: trust files past the safe horizon
	obs    Observer

	// state
	bufs                                stdsync.Pool
	read, written, blocks               atomic.Int64
	examined, skipped, changed, deleted atomic.Int64
	readBusy, writeBusy                 atomic.Int64 // ns, summed over workers
	readWall, writeWall                 time.Duration
}

func newPass(kind manifest.PassKind, opts *Options, src *source, dst *destination) (*pass, error) {
	bs := opts.BlockSize
	if h := dst.header; h != nil {
		switch {
		case bs == 0:
			bs = int(h.BlockSize)
		case bs != int(h.BlockSize):
			return nil, inputErr(fmt.Sprintf("use --block-size %d (or no --block-size) with this copy, or start a new copy", h.BlockSize),
				"DEST was copied with block size %d, not %d", h.BlockSize, bs)
		}
	}
	if bs == 0 {
		bs = DefaultBlockSize
	}
	p := &pass{kind: kind, opts: opts, src: src, dst: dst, bs: bs, asRoot: os.Geteuid() == 0, obs: opts.Observer,
		quick: kind == manifest.Cold && opts.ColdPass == ColdQuick}

	size := max(chunkSize, bs)
	p.bufs.New = func() any { b := make([]byte, size); return &b }
	return p, nil
}

// dstPath is where rel goes in the copy: below DEST, or below the
// tablespace's NEW directory, and pg_control held aside until the seal.
func (p *pass) dstPath(rel string) string {
	if rel == controlFile {
		rel = heldControl
	}
	if ts, rest := p.src.tablespaceOf(rel); ts != nil {
		return filepath.Join(ts.new, filepath.FromSlash(rest))
	}
	return filepath.Join(p.dst.dir, filepath.FromSlash(rel))
}

func (p *pass) srcPath(rel string) string {
	return filepath.Join(p.src.dir, filepath.FromSlash(rel))
}

func (p *pass) warn(path, format string, args ...any) {
	p.obs.Event(Event{Kind: Warning, Pass: p.kind, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *pass) stats(started time.Time) PassStats {
	return PassStats{
		Kind: p.kind, DryRun: p.opts.DryRun, Started: started, Finished: time.Now(),
		FilesExamined: p.examined.Load(), FilesSkipped: p.skipped.Load(), FilesChanged: p.changed.Load(),
		FilesDeleted: p.deleted.Load(), BytesRead: p.read.Load(), BytesWritten: p.written.Load(), BlocksWritten: p.blocks.Load(),
		ReadTime: p.readWall, WriteTime: p.writeWall,
	}
}

// run runs the pass. The copy stays unsealed unless a cold pass completes.
func (p *pass) run(ctx context.Context) (PassStats, error) {
	started := time.Now()
	entries, err := walk(p.src.dir, p.opts.excluder())
	if err != nil {
		return p.stats(started), err
	}
	var total int64
	for i := range entries {
		if entries[i].isRegular() {
			total += entries[i].stat.Size
		}
	}
	p.obs.Event(Event{Kind: PassStarted, Pass: p.kind, Total: total})
	if p.opts.DryRun {
		err = p.dryRun(entries)
	} else {
		err = p.copy(ctx, entries, started)
	}
	st := p.stats(started)
	if err == nil {
		p.obs.Event(Event{Kind: PassFinished, Pass: p.kind, Stats: &st})
	}
	return st, err
}

func (p *pass) copy(ctx context.Context, entries []entry, started time.Time) error {
	if err := p.unseal(); err != nil {
		return err
	}
	if err := p.deleteExtras(ctx, entries); err != nil {
		return err
	}
	if err := p.makeDirsAndLinks(entries); err != nil {
		return err
	}
	mw, err := manifest.Create(p.dst.manifestPath(), p.bs)
	if err != nil {
		return err
	}
	copyStart := time.Now()
	if err := p.copyFiles(ctx, entries, mw); err != nil {
		mw.Abort()
		return err
	}
	p.splitWall(time.Since(copyStart))
	if err := p.finishDirs(entries); err != nil {
		mw.Abort()
		return err
	}
	h := manifest.Header{Created: started.UnixNano()}
	if p.dst.header != nil {
		h = *p.dst.header
	}
	h.BlockSize = uint32(p.bs)
	h.SystemIdentifier = p.src.control.SystemIdentifier
	h.PGVersion = p.src.pgVersion
	h.Flags = 0
	if p.kind == manifest.Cold {
		h.Flags |= manifest.FlagColdComplete
	}
	st := p.stats(started)
	h.AddPass(manifest.Pass{
		Kind: p.kind, Started: started.UnixNano(), Finished: st.Finished.UnixNano(),
		BytesRead: st.BytesRead, BytesWritten: st.BytesWritten, FilesChanged: st.FilesChanged, FilesDeleted: st.FilesDeleted,
		ReadNs: st.ReadTime.Nanoseconds(), WriteNs: st.WriteTime.Nanoseconds(),
	})
	if err := mw.Commit(h); err != nil {
		return err
	}
	giveState(p.dst.dir, p.src.owner)
	if p.kind != manifest.Cold {
		return nil
	}
	if p.opts.BackupManifest {
		if err := p.writeBackupManifest(); err != nil {
			return err
		}
		// The new file moved the copy's mtime: give it the source's again.
		if err := p.setMeta(p.dst.dir, &entries[0], nil); err != nil {
			return err
		}
		if err := manifest.SyncDir(p.dst.dir); err != nil {
			return err
		}
	}
	return p.seal(entries)
}

// splitWall divides the wall time of copying files between reading and
// writing in proportion to the workers' busy time in each: the measured
// rates from which the downtime of a cold pass is predicted.
func (p *pass) splitWall(wall time.Duration) {
	r, w := p.readBusy.Load(), p.writeBusy.Load()
	if r+w == 0 {
		return
	}
	p.readWall = time.Duration(float64(wall) * float64(r) / float64(r+w))
	p.writeWall = wall - p.readWall
}

// deleteExtras removes from DEST every entry that SRC does not have, or has
// with another type. Deleting first frees space before anything is written.
func (p *pass) deleteExtras(ctx context.Context, entries []entry) error {
	want := make(map[string]fs.FileMode, len(entries))
	for i := range entries {
		want[entries[i].rel] = entries[i].mode.Type()
	}
	var visit func(rel string) error
	visit = func(rel string) error {
		dir := p.dstPath(rel)
		names, err := readDirNames(dir)
		if errors.Is(err, fs.ErrNotExist) && rel != "" {
			return nil // a tablespace's copy not made yet
		}
		if err != nil {
			return fmt.Errorf("failed to list %s: %w", dir, err)
		}
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			crel := name
			if rel != "" {
				crel = rel + "/" + name
			}
			if crel == manifest.DirName || isMarker(crel) {
				continue
			}
			path := filepath.Join(dir, name)
			typ, ok := want[crel]
			if ts, _ := p.src.tablespaceOf(crel); ts != nil && ok && isTablespaceLink(crel) {
				// The link is made by makeDirsAndLinks; the copy is below NEW.
				if err := visit(crel); err != nil {
					return err
				}
				continue
			}
			fi, err := os.Lstat(path)
			if err != nil {
				return fmt.Errorf("failed to stat %s: %w", path, err)
			}
			if ok && typ == fi.Mode().Type() {
				if fi.IsDir() {
					if err := visit(crel); err != nil {
						return err
					}
				}
				continue
			}
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("failed to delete %s from the copy: %w", path, err)
			}
			p.deleted.Add(1)
			p.obs.Event(Event{Kind: FileDeleted, Pass: p.kind, Path: crel})
		}
		return nil
	}
	return visit("")
}

// makeDirsAndLinks creates the missing directories (owner-only until
// finishDirs gives them their modes) and the symlinks.
func (p *pass) makeDirsAndLinks(entries []entry) error {
	for i := range entries {
		e := &entries[i]
		path := p.dstPath(e.rel)
		if ts, rest := p.src.tablespaceOf(e.rel); ts != nil && rest == "" {
			if err := p.linkTablespace(e, ts); err != nil {
				return err
			}
		}
		switch {
		case e.isDir():
			if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("failed to create directory %s: %w", path, err)
			}
		case e.isSymlink():
			if target, err := os.Readlink(path); err == nil && target == e.target {
				if err := p.setMeta(path, e, nil); err != nil {
					return err
				}
				continue
			}
			os.Remove(path)
			if err := os.Symlink(e.target, path); err != nil {
				return fmt.Errorf("failed to create symlink %s: %w", path, err)
			}
			if err := p.setMeta(path, e, nil); err != nil {
				return err
			}
			p.changed.Add(1)
			p.obs.Event(Event{Kind: FileChanged, Pass: p.kind, Path: e.rel})
		}
	}
	return nil
}

// finishDirs gives every directory its owner, mode and mtime, children
// before parents (creating entries moves a directory's mtime), then fsyncs
// them all, so that every entry created or removed is durable.
func (p *pass) finishDirs(entries []entry) error {
	for i := len(entries) - 1; i >= 0; i-- {
		if e := &entries[i]; e.isDir() {
			if err := p.setMeta(p.dstPath(e.rel), e, nil); err != nil {
				return err
			}
		}
	}
	for i := range entries {
		if e := &entries[i]; e.isDir() {
			if err := manifest.SyncDir(p.dstPath(e.rel)); err != nil {
				return err
			}
		}
	}
	for _, ts := range p.src.tablespaces {
		if err := manifest.SyncDir(filepath.Dir(ts.new)); err != nil {
			return err
		}
	}
	return manifest.SyncDir(filepath.Dir(p.dst.dir))
}

// linkTablespace makes the copy's pg_tblspc/OID a link to the tablespace's
// NEW directory (created if missing).
func (p *pass) linkTablespace(e *entry, ts *tablespace) error {
	link := filepath.Join(p.dst.dir, filepath.FromSlash(e.rel))
	if target, err := os.Readlink(link); err == nil && target == ts.new {
		return nil
	}
	if err := os.MkdirAll(ts.new, 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", ts.new, err)
	}
	os.Remove(link)
	if err := os.Symlink(ts.new, link); err != nil {
		return fmt.Errorf("failed to link %s to %s: %w", link, ts.new, err)
	}
	if p.asRoot {
		os.Lchown(link, int(e.uid), int(e.gid))
	}
	p.changed.Add(1)
	p.obs.Event(Event{Kind: FileChanged, Pass: p.kind, Path: e.rel, Msg: "tablespace linked to " + ts.new})
	return nil
}

// setMeta gives path e's owner (as root), mode and times, where they
// differ from fi (nil: lstat path).
func (p *pass) setMeta(path string, e *entry, fi fs.FileInfo) error {
	_, err := p.applyMeta(path, e, fi)
	return err
}

// applyMeta is setMeta that reports whether it changed anything.
func (p *pass) applyMeta(path string, e *entry, fi fs.FileInfo) (bool, error) {
	if fi == nil {
		var err error
		if fi, err = os.Lstat(path); err != nil {
			return false, fmt.Errorf("failed to stat %s: %w", path, err)
		}
	}
	st := newEntry(e.rel, fi)
	changed := false
	if p.asRoot && (st.uid != e.uid || st.gid != e.gid) {
		if err := os.Lchown(path, int(e.uid), int(e.gid)); err != nil {
			return changed, fmt.Errorf("failed to set the owner of %s: %w", path, err)
		}
		changed = true
	}
	if e.isSymlink() {
		if st.stat.Mtime != e.stat.Mtime {
			ts := []unixTimespec{nsec(e.atime), nsec(e.stat.Mtime)}
			if err := lutimes(path, ts); err != nil {
				return changed, fmt.Errorf("failed to set the times of %s: %w", path, err)
			}
			changed = true
		}
		return changed, nil
	}
	// chown clears set-uid bits: set the mode after the owner.
	if changed || st.mode.Perm() != e.mode.Perm() || st.mode&modeSpecial != e.mode&modeSpecial {
		if err := os.Chmod(path, e.mode.Perm()|e.mode&modeSpecial); err != nil {
			return changed, fmt.Errorf("failed to set the mode of %s: %w", path, err)
		}
		changed = true
	}
	if st.stat.Mtime != e.stat.Mtime {
		if err := os.Chtimes(path, time.Unix(0, e.atime), time.Unix(0, e.stat.Mtime)); err != nil {
			return changed, fmt.Errorf("failed to set the times of %s: %w", path, err)
		}
		changed = true
	}
	return changed, nil
}

const modeSpecial = fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// copyFiles copies every regular file, in parallel across files and across
// the chunks of large files, and adds their records to mw in walk order.
func (p *pass) copyFiles(ctx context.Context, entries []entry, mw *manifest.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	old := p.openManifest()
	defer old.close()

	jobs := make(chan chunk, 2*p.opts.Jobs)
	// ordered bounds the files in flight, and with them the block hashes
	// held in memory.
	ordered := make(chan *fileCopy, 2*p.opts.Jobs+2)
	g, gctx := errgroup.WithContext(ctx)
	var workers stdsync.WaitGroup
	for range p.opts.Jobs {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for c := range jobs {
				p.copyChunk(gctx, c)
			}
		}()
	}
	// The producer: walk order, merged with the old manifest.
	g.Go(func() error {
		defer close(ordered)
		defer close(jobs)
		for i := range entries {
			e := &entries[i]
			if !e.isRegular() {
				continue
			}
			if err := gctx.Err(); err != nil {
				return err
			}
			fc, err := p.plan(e, old.find(e.rel))
			if err != nil {
				return err
			}
			if fc == nil {
				continue
			}
			select {
			case ordered <- fc:
			case <-gctx.Done():
				return gctx.Err()
			}
			if fc.src == nil {
				continue // kept by its stat: nothing to read
			}
			if fc.n == 0 {
				p.finishFile(fc)
				continue
			}
			for i, c := range fc.chunks() {
				select {
				case jobs <- c:
				case <-gctx.Done():
					fc.fail(gctx.Err())
					for range fc.n - i {
						if fc.remaining.Add(-1) == 0 {
							p.finishFile(fc)
						}
					}
					return gctx.Err()
				}
			}
		}
		return nil
	})
	// The manifest writer: records in walk order as files complete.
	g.Go(func() error {
		for fc := range ordered {
			select {
			case <-fc.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			switch {
			case errors.Is(fc.err, errVanished):
				continue
			case fc.err != nil:
				return fc.err
			}
			if err := mw.Add(&fc.rec); err != nil {
				return err
			}
		}
		return nil
	})
	err := g.Wait()
	cancel()
	workers.Wait()
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s pass %w", p.kind, ErrInterrupted)
	}
	return err
}

// oldManifest merges the previous manifest with the walk. A damaged
// manifest is not trusted from the damage on: the files after it are
// compared with the copy's own contents.
type oldManifest struct {
	p    *pass
	r    *manifest.Reader
	next *manifest.File
}

func (p *pass) openManifest() *oldManifest {
	om := &oldManifest{p: p}
	if p.dst.header == nil {
		if p.dst.manifestErr != nil && !errors.Is(p.dst.manifestErr, fs.ErrNotExist) {
			p.warn(manifest.DirName, "the manifest cannot be trusted (%v): the copy's contents are read to rebuild it", p.dst.manifestErr)
		} else if p.dst.exists && p.dst.manifestErr != nil {
			p.warn(manifest.DirName, "the copy has no manifest: its contents are read to rebuild it")
		}
		return om
	}
	r, err := manifest.Open(p.dst.manifestPath())
	if err != nil {
		p.warn(manifest.DirName, "the manifest cannot be read (%v): the copy's contents are read to rebuild it", err)
		return om
	}
	om.r = r
	om.advance()
	return om
}

func (om *oldManifest) advance() {
	f, err := om.r.Next()
	if err != nil {
		if err != io.EOF {
			om.p.warn(manifest.DirName, "the manifest is damaged (%v): the copy's contents are read for the files after the damage", err)
		}
		om.close()
		om.next = nil
		return
	}
	om.next = f
}

// find returns the record of rel, skipping records of files that are gone.
func (om *oldManifest) find(rel string) *manifest.File {
	for om.next != nil {
		switch c := manifest.ComparePaths(om.next.Path, rel); {
		case c < 0:
			om.advance()
		case c == 0:
			f := om.next
			om.advance()
			return f
		default:
			return nil
		}
	}
	return nil
}

func (om *oldManifest) close() {
	if om.r != nil {
		om.r.Close()
		om.r = nil
	}
}

// dryRun reports what a pass would read and delete, from stats alone.
func (p *pass) dryRun(entries []entry) error {
	old := p.openManifest()
	defer old.close()
	seen := make(map[string]bool, len(entries))
	for i := range entries {
		e := &entries[i]
		seen[e.rel] = true
		if !e.isRegular() {
			continue
		}
		rec := old.find(e.rel)
		fi, _ := os.Lstat(p.dstPath(e.rel))
		if p.trusted(rec, fi) && sameSource(rec, e) && (p.kind == manifest.Live || p.quick && p.pastHorizon(rec)) {
			p.skipped.Add(1)
			continue
		}
		p.examined.Add(1)
		p.read.Add(e.stat.Size)
		p.obs.Event(Event{Kind: FileChanged, Pass: p.kind, Path: e.rel, Msg: "would read"})
	}
	if !p.dst.exists {
		return nil
	}
	return filepath.WalkDir(p.dst.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(p.dst.dir, path)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == manifest.DirName:
			return filepath.SkipDir
		case rel == "." || seen[rel]:
			return nil
		}
		p.deleted.Add(1)
		p.obs.Event(Event{Kind: FileDeleted, Pass: p.kind, Path: rel, Msg: "would delete"})
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}
