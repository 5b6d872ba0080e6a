package destination

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	sync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"

	"github.com/pgtwopass/pgtwopass/internal/faults"
	"github.com/pgtwopass/pgtwopass/internal/flow"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/ledger"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// writebackMin is the size of a run of written blocks from which the
// destination starts its writeback at once (sync_file_range): a first copy
// writes whole chunks.
const writebackMin = 1 << 20

// Pass is one pass on the destination side of a copy on this host.
type Pass struct {
	// config
	d       *Local
	req     pass.PassRequest
	entries []pass.Entry
	bs      int
	obs     pass.Observer

	// state
	led     *ledger.Ledger         // the manifest's records, old and new
	idx     int                    // the next entry merge looks at
	held    *destFile              // merged, waiting for room in the window
	ahead   *flow.Ahead[aheadStat] // the copy's stats, ahead of merge
	window  *flow.Window
	nextID  uint64
	mu      sync.Mutex
	files   map[uint64]*destFile   // files handed to the sender and not yet done
	pending []*destFile            // merged, not yet queued to the manifest writer
	ordered *flow.Queue[*destFile] // every regular file, in walk order, to the manifest writer
	stop    chan struct{}          // closed by abort: the manifest writer gives up
	halted  chan struct{}          // closed when the writer has ended, with halt
	halt    error
	syncs   *semaphore.Weighted // a token for each fsync under way
	written chan error          // the manifest writer's result
	dirsMu  sync.Mutex
	dirs    map[dirKey]*os.Root // see fileAt
	waited  bool
	werr    error

	destRead atomic.Int64 // bytes of the copy read to make a basis

	skipped, changed, deleted atomic.Int64
}

// destFile is one regular file of a pass on the destination side.
type destFile struct {
	// config
	id   uint64
	idx  int // in the entries
	e    *pass.Entry
	dfi  fs.FileInfo // the copy's stat before the pass; nil: new file
	name string      // in root
	root *os.Root
	size int64 // its source's, in the window once handed to the sender (id set)

	old     *manifest.Head   // the manifest's record (for a file handed out, kept only by a ledger that journals); nil: none
	basis   *manifest.Head   // the record that vouches for the copy's file, if any
	gone    []*manifest.Head // records of files gone, found before this one
	partial bool             // read in part: named are the blocks the WAL names
	named   []uint32
	// known are hashes of old that the basis gave (a ledger that writes a
	// journal tells the changed blocks by them): all, or knownBlocks'.
	known       []manifest.Hash
	knownBlocks []uint32

	// state
	openMu sync.Mutex
	f      *os.File // the copy, opened for writing at its first write
	wrote  atomic.Bool
	rec    manifest.File // the new record, once done
	blocks []uint32      // read in part: rec.Hashes are these blocks'
	keep   bool          // rec is set and needs nothing more (kept by its stat)
	skip   bool          // no record (vanished under a live pass)
	err    error
	done   chan struct{}
}

// BeginPass starts a pass over entries.
func (d *Local) BeginPass(ctx context.Context, req *pass.PassRequest, entries []pass.Entry) (pass.DestinationPass, error) {
	lp, err := d.Begin(ctx, req, entries)
	if err != nil {
		return nil, err
	}
	return lp, nil
}

// Begin is BeginPass that returns the pass as it is: the receiver serves it
// over the wire.
func (d *Local) Begin(ctx context.Context, req *pass.PassRequest, entries []pass.Entry) (*Pass, error) {
	for i := range entries {
		if !pass.ValidRel(entries[i].Rel) || (i == 0) != (entries[i].Rel == "") {
			return nil, fmt.Errorf("refusing entry %q: not a path below the data directory", entries[i].Rel)
		}
		if i > 0 && manifest.ComparePaths(entries[i-1].Rel, entries[i].Rel) >= 0 {
			return nil, fmt.Errorf("refusing entry %q after %q: entries must come in walk order", entries[i].Rel, entries[i-1].Rel)
		}
	}
	if len(entries) == 0 || !entries[0].IsDir() {
		return nil, errors.New("the entries of a pass start with the data directory")
	}
	if !manifest.ValidBlockSize(req.BlockSize) {
		return nil, fmt.Errorf("invalid block size %d", req.BlockSize)
	}
	lp := &Pass{d: d, req: *req, entries: entries, bs: req.BlockSize, obs: d.obs,
		files: map[uint64]*destFile{}, stop: make(chan struct{}), written: make(chan error, 1),
		halted: make(chan struct{}), syncs: semaphore.NewWeighted(maxSyncs), dirs: map[dirKey]*os.Root{}}
	if req.Quiet {
		lp.obs = pass.NopObserver{}
	}
	if !req.DryRun {
		if err := d.probeClocks(); err != nil {
			return nil, err
		}
		if err := d.markPass(); err != nil {
			return nil, err
		}
		if err := lp.unseal(); err != nil {
			return nil, err
		}
	}
	if err := lp.deleteExtras(ctx); err != nil {
		return nil, err
	}
	if !req.DryRun {
		if err := lp.makeDirsAndLinks(); err != nil {
			return nil, err
		}
		if err := d.openRoots(); err != nil {
			return nil, err
		}
	}
	led, err := lp.openLedger()
	if err != nil {
		return nil, err
	}
	lp.led = led
	lp.window = flow.NewWindow(req.InFlight, pass.MaxInFlightBytes)
	if !req.DryRun {
		// The queue holds the files in flight and a few batches of kept
		// ones, so that the records a pass holds stay bounded while the
		// writer waits for a large file.
		lp.ordered = flow.NewQueue[*destFile](req.InFlight + 4*queueBatch)
		go func() {
			err := lp.writeRecords()
			lp.written <- err
			lp.halt = err
			close(lp.halted)
		}()
	}
	lp.ahead = lp.statAhead()
	return lp, nil
}

func (lp *Pass) warn(path, format string, args ...any) {
	lp.obs.Event(pass.Event{Kind: pass.Warning, Pass: lp.req.Kind, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// unseal moves an installed pg_control of the copy aside before anything
// else is written, so that the copy cannot be started until a cold pass
// completes.
func (lp *Pass) unseal() error {
	root := lp.d.root
	if _, err := lstat(root, pass.ControlFile); err != nil {
		return nil
	}
	if err := root.Rename(pass.ControlFile, pass.HeldControl); err != nil {
		return fmt.Errorf("failed to unseal the copy: %w", err)
	}
	for _, dir := range []string{path.Dir(pass.ControlFile), path.Dir(pass.HeldControl)} {
		if err := manifest.SyncDirIn(root, dir); err != nil {
			return err
		}
	}
	lp.obs.Event(pass.Event{Kind: pass.Step, Pass: lp.req.Kind, Msg: "unsealed the copy: its pg_control is held in " + manifest.DirName + " until a cold pass completes"})
	return nil
}

// deleteExtras removes from the copy every entry that SRC does not have, or
// has with another type. Deleting first frees space before anything is
// written. A dry run counts and reports them.
func (lp *Pass) deleteExtras(ctx context.Context) error {
	want := make(map[string]fs.FileMode, len(lp.entries))
	for i := range lp.entries {
		want[lp.entries[i].Rel] = lp.entries[i].Mode.Type()
	}
	verb := "deleted"
	if lp.req.DryRun {
		verb = "would delete"
	}
	// visit lists dir of root, the copy of rel. An entry is in the same
	// root as its directory, but for the copy of a tablespace, below NEW.
	var visit func(rel string, root *os.Root, dir string) error
	visit = func(rel string, root *os.Root, dir string) error {
		ents, err := pass.ReadDirAt(root, dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a copy, or a tablespace's copy, not made yet
		}
		if err != nil {
			return fmt.Errorf("failed to list %s in the copy: %w", cmp.Or(rel, "."), err)
		}
		for _, ent := range ents {
			name := ent.Name
			if err := ctx.Err(); err != nil {
				return err
			}
			crel := path.Join(rel, name)
			cname := path.Join(dir, name)
			if crel == manifest.DirName || pass.IsMarker(crel) {
				continue
			}
			typ, ok := want[crel]
			if pt := lp.d.part(crel); ok && pt != nil {
				// The link is made by makeDirsAndLinks; the part is below
				// its own directory.
				if err := visit(crel, pt.root, "."); err != nil {
					return err
				}
				continue
			}
			// The type from the directory listing: an lstat of each entry
			// through the root would walk its path again (1000 files, 10 ms).
			if ok && typ == ent.Type {
				if ent.Type.IsDir() {
					if err := visit(crel, root, cname); err != nil {
						return err
					}
				}
				continue
			}
			if !lp.req.DryRun {
				if err := root.RemoveAll(cname); err != nil {
					return fmt.Errorf("failed to delete %s from the copy: %w", crel, err)
				}
			}
			lp.deleted.Add(1)
			lp.obs.Event(pass.Event{Kind: pass.FileDeleted, Pass: lp.req.Kind, Path: crel, Msg: verb})
		}
		return nil
	}
	return visit("", lp.d.root, ".")
}

// makeDirsAndLinks creates the missing directories (owner-only until
// finishDirs gives them their modes) and the symlinks.
func (lp *Pass) makeDirsAndLinks() error {
	for i := range lp.entries {
		e := &lp.entries[i]
		if pt := lp.d.part(e.Rel); pt != nil {
			if err := lp.linkPart(e, pt); err != nil {
				return err
			}
			continue
		}
		root, name := lp.d.at(e.Rel, true)
		switch {
		case e.IsDir():
			if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("failed to create directory %s in the copy: %w", e.Rel, err)
			}
		case e.IsSymlink():
			if target, err := root.Readlink(name); err == nil && target == e.Target {
				if _, err := lp.d.applyMeta(root, name, e, nil); err != nil {
					return err
				}
				continue
			}
			root.Remove(name)
			if err := root.Symlink(e.Target, name); err != nil {
				return fmt.Errorf("failed to create symlink %s in the copy: %w", e.Rel, err)
			}
			if _, err := lp.d.applyMeta(root, name, e, nil); err != nil {
				return err
			}
			lp.changed.Add(1)
			lp.obs.Event(pass.Event{Kind: pass.FileChanged, Pass: lp.req.Kind, Path: e.Rel})
		}
	}
	return nil
}

// linkPart makes the link in the copy to a part's directory (the copy of a
// tablespace, the WAL directory), which Open created. What the copy had
// there before (the WAL in DEST/pg_wal, before --waldir moved it) goes.
func (lp *Pass) linkPart(e *pass.Entry, pt *part) error {
	new := pt.given
	root := lp.d.root
	if target, err := root.Readlink(e.Rel); err == nil && (target == new || target == pt.dir) {
		return nil
	}
	if err := root.RemoveAll(e.Rel); err != nil {
		return fmt.Errorf("failed to replace %s in the copy with a link to %s: %w", e.Rel, new, err)
	}
	if err := root.Symlink(new, e.Rel); err != nil {
		return fmt.Errorf("failed to link %s in the copy to %s: %w", e.Rel, new, err)
	}
	if lp.d.asRoot {
		root.Lchown(e.Rel, int(e.UID), int(e.GID))
	}
	lp.changed.Add(1)
	lp.obs.Event(pass.Event{Kind: pass.FileChanged, Pass: lp.req.Kind, Path: e.Rel, Msg: "linked to " + new})
	return nil
}

// applyMeta gives name in root e's owner (as root), mode and times, where
// they differ from fi (nil: lstat it), and reports whether it changed
// anything.
func (d *Local) applyMeta(root *os.Root, name string, e *pass.Entry, fi fs.FileInfo) (bool, error) {
	if fi == nil {
		var err error
		if fi, err = root.Lstat(name); err != nil {
			return false, fmt.Errorf("failed to stat %s in the copy: %w", e.Rel, err)
		}
	}
	st := pass.NewEntry(e.Rel, fi)
	changed := false
	if d.asRoot && (st.UID != e.UID || st.GID != e.GID) {
		if err := root.Lchown(name, int(e.UID), int(e.GID)); err != nil {
			return changed, fmt.Errorf("failed to set the owner of %s in the copy: %w", e.Rel, err)
		}
		changed = true
	}
	if e.IsSymlink() {
		if !d.clock.SameMtime(fi, st.Stat.Mtime, e.Stat.Mtime) {
			if err := lutimesAt(root, name, e.Atime, e.Stat.Mtime); err != nil {
				return changed, fmt.Errorf("failed to set the times of %s in the copy: %w", e.Rel, err)
			}
			changed = true
		}
		return changed, nil
	}
	// chown clears set-uid bits: set the mode after the owner.
	if changed || st.Mode.Perm() != e.Mode.Perm() || st.Mode&pass.ModeSpecial != e.Mode&pass.ModeSpecial {
		if err := root.Chmod(name, e.Mode.Perm()|e.Mode&pass.ModeSpecial); err != nil {
			return changed, fmt.Errorf("failed to set the mode of %s in the copy: %w", e.Rel, err)
		}
		changed = true
	}
	if !d.clock.SameMtime(fi, st.Stat.Mtime, e.Stat.Mtime) {
		if err := root.Chtimes(name, time.Unix(0, e.Atime), time.Unix(0, e.Stat.Mtime)); err != nil {
			return changed, fmt.Errorf("failed to set the times of %s in the copy: %w", e.Rel, err)
		}
		changed = true
	}
	return changed, nil
}

// openLedger opens the old manifest's records and starts the new ones. A
// manifest that cannot vouch for the copy (a crash of its host mid-pass,
// damage, none at all) finds nothing: the files are compared with the
// copy's own contents. A WAL-guided cold pass reads the heads and chosen
// hashes of the records, and commits a journal (package ledger).
func (lp *Pass) openLedger() (*ledger.Ledger, error) {
	d := lp.d
	trust := true
	switch {
	case d.crashed:
		lp.warn(manifest.DirName, "the copy's host went down while a pass was writing it: the manifest cannot vouch for the copy's files, whose contents are read to rebuild it")
		trust = false
	case d.header == nil:
		if d.manifestErr != nil && !errors.Is(d.manifestErr, fs.ErrNotExist) {
			lp.warn(manifest.DirName, "the manifest cannot be trusted (%v): the copy's contents are read to rebuild it", d.manifestErr)
		} else if d.exists && d.manifestErr != nil {
			lp.warn(manifest.DirName, "the copy has no manifest: its contents are read to rebuild it")
		}
		trust = false
	}
	led, err := ledger.Open(d.manifestPath(), ledger.Options{Trust: trust, Partial: lp.req.WAL != nil, Write: !lp.req.DryRun,
		BlockSize: lp.bs, Clock: &d.clock, OnDamage: func(err error) {
			lp.warn(manifest.DirName, "the manifest is damaged (%v): the copy's contents are read for the files after the damage", err)
		}})
	if err != nil {
		return nil, err
	}
	if err := led.Unreadable(); err != nil {
		lp.warn(manifest.DirName, "the manifest cannot be read (%v): the copy's contents are read to rebuild it", err)
	}
	return led, nil
}

// sameSource reports whether the source's stat is what it was when rec's
// contents were read: size, mtime, ctime and inode.
func sameSource(rec *manifest.File, e *pass.Entry) bool {
	return rec.Flags&manifest.FlagChangedWhileCopied == 0 && rec.Source == e.Stat
}

// walKind says, in a WAL-guided cold pass, what the WAL says of entry i
// (pass.WALNone, WALBlocks, WALWhole), and whether rec may stand for the
// blocks the WAL does not name: the copy still holds what rec says
// (trusted), and rec describes the source as it was at the WAL's redo point
// or later (goodAtRedo). partial is false outside a WAL-guided pass.
func (lp *Pass) walKind(i int, rec *manifest.File, e *pass.Entry, trusted bool) (kind byte, partial bool) {
	w := lp.req.WAL
	if w == nil || i >= len(w.Kinds) {
		return pass.WALWhole, false
	}
	kind = w.Kinds[i]
	return kind, trusted && kind != pass.WALWhole && goodAtRedo(rec, e, w)
}

// goodAtRedo reports whether rec describes the source file e as it was at
// the redo point of the WAL of a WAL-guided cold pass, or later: its read
// began after the CHECKPOINT returned, or the file has not been written
// since a read that began safely after its last write (the quick cold
// pass's rule). Every block written after the redo point is then named by
// the WAL, so the record stands for every other block.
func goodAtRedo(rec *manifest.File, e *pass.Entry, w *pass.WALRequest) bool {
	return rec.ReadStart > w.Since || sameSource(rec, e) && pastHorizon(rec, w.Margin)
}

// pastHorizon reports whether rec's source stat was already old when the
// read that produced rec began: no write can hide behind the same stat.
func pastHorizon(rec *manifest.File, margin int64) bool {
	return rec.ReadStart > 0 && rec.Source.Ctime < rec.ReadStart-margin
}

// keep carries the record of a file the pass trusts by its stat, fixing the
// copy's owner and mode if someone changed them.
func (lp *Pass) keep(e *pass.Entry, rec *manifest.Head, root *os.Root, name string, dfi fs.FileInfo) (*destFile, error) {
	df := &destFile{e: e, old: rec, rec: rec.File, keep: true, done: closedDone}
	changed, err := lp.d.applyMeta(root, name, e, dfi)
	if err != nil || !changed {
		return df, err
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("failed to fsync %s in the copy: %w", e.Rel, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	df.rec.Dest = pass.StatOf(fi)
	lp.led.Saw(fi)
	lp.changed.Add(1)
	lp.obs.Event(pass.Event{Kind: pass.FileChanged, Pass: lp.req.Kind, Path: e.Rel, Msg: "owner or mode"})
	return df, nil
}

var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (lp *Pass) file(id uint64) (*destFile, error) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	df := lp.files[id]
	if df == nil {
		return nil, fmt.Errorf("no file %d in flight", id)
	}
	return df, nil
}

func (lp *Pass) Write(id uint64, off int64, data []byte) error {
	df, err := lp.file(id)
	if err != nil {
		return err
	}
	if off < 0 || off%int64(lp.bs) != 0 {
		return fmt.Errorf("write to %s at offset %d: not at a block boundary", df.e.Rel, off)
	}
	if err := faults.BeforeWrite(filepath.Join(lp.d.dir, df.e.Rel), int64(manifest.NumBlocks(int64(len(data)), lp.bs))); err != nil {
		return fmt.Errorf("failed to write %s: %w", filepath.Join(lp.d.dir, df.e.Rel), err)
	}
	f, err := df.file()
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, off); err != nil {
		return fmt.Errorf("failed to write %s: %w", filepath.Join(lp.d.dir, df.e.Rel), err)
	}
	df.wrote.Store(true)
	if len(data) >= writebackMin {
		// Start writing large runs to the disk now, while the pass reads
		// on: the fsync at the end of the file then waits for less.
		_ = unix.SyncFileRange(int(f.Fd()), off, int64(len(data)), unix.SYNC_FILE_RANGE_WRITE)
	}
	return nil
}

// done completes a file once all its writes are in: size and metadata,
// then, if the pass changed it, the fsync and the copy's stat for the
// record. The fsync waits for the disk: it runs in the background, up to
// maxSyncs at a time, so that the sender's worker reads on meanwhile; the
// writer records the file once it is durable, and a failed fsync fails the
// pass there.
func (lp *Pass) Done(res *pass.FileResult) error {
	df, err := lp.file(res.ID)
	if err != nil {
		return err
	}
	lp.mu.Lock()
	delete(lp.files, res.ID)
	lp.mu.Unlock()
	if df.skip = res.Vanished; !df.skip {
		if sync, err := lp.complete(df, res); err != nil || sync {
			if df.err = err; err == nil {
				lp.syncs.Acquire(context.Background(), 1)
				go func() {
					df.err = lp.durable(df, res)
					df.close()
					close(df.done)
					lp.syncs.Release(1)
				}()
			}
			return err
		}
	}
	df.close()
	close(df.done)
	return nil
}

// maxSyncs bounds the fsyncs of a pass under way at once.
const maxSyncs = 16

// complete gives the copy of a file its size and metadata, and says whether
// it must be made durable (durable); a file the pass did not change gets its
// record at once.
func (lp *Pass) complete(df *destFile, res *pass.FileResult) (sync bool, err error) {
	e := &res.Entry
	if e.Rel != df.e.Rel || !e.IsRegular() {
		return false, fmt.Errorf("file %d: the end of %q for %q", res.ID, e.Rel, df.e.Rel)
	}
	size := e.Stat.Size
	switch {
	case df.partial:
		if want := pass.PartialBlocks(df.named, df.dfi.Size(), size, lp.bs); !slices.Equal(res.Blocks, want) || len(res.Hashes) != len(want) {
			return false, fmt.Errorf("%s: %d hashes of %d blocks, read in part: not the blocks to read", e.Rel, len(res.Hashes), len(res.Blocks))
		}
	case res.Blocks != nil || len(res.Hashes) != manifest.NumBlocks(size, lp.bs):
		return false, fmt.Errorf("%s: %d hashes for %d bytes", e.Rel, len(res.Hashes), size)
	}
	// A file the pass did not change costs no system call here: its stat
	// before the pass is its stat now. One it changed is opened (if its
	// blocks did not already) and fstat'ed, not lstat'ed through the
	// root, which would walk the path again.
	dfi := df.dfi
	changed := df.wrote.Load() || dfi == nil
	if dfi == nil || dfi.Size() != size {
		f, err := df.file()
		if err != nil {
			return false, err
		}
		if err := f.Truncate(size); err != nil {
			return false, fmt.Errorf("failed to set the size of %s: %w", filepath.Join(lp.d.dir, e.Rel), err)
		}
		changed = true
	}
	if changed {
		if dfi, err = df.f.Stat(); err != nil {
			return false, fmt.Errorf("failed to stat %s: %w", filepath.Join(lp.d.dir, e.Rel), err)
		}
	}
	metaChanged, err := lp.d.applyMeta(df.root, df.name, e, dfi)
	if err != nil || changed || metaChanged {
		return err == nil, err
	}
	lp.record(df, res, dfi)
	return false, nil
}

// durable fsyncs a file the pass changed and records it.
func (lp *Pass) durable(df *destFile, res *pass.FileResult) error {
	e := &res.Entry
	f, err := df.file()
	if err != nil {
		return err
	}
	if err := cmp.Or(faults.BeforeSync(f.Name()), f.Sync()); err != nil {
		return fmt.Errorf("failed to fsync %s: %w", filepath.Join(lp.d.dir, e.Rel), err)
	}
	lp.changed.Add(1)
	lp.obs.Event(pass.Event{Kind: pass.FileChanged, Pass: lp.req.Kind, Path: e.Rel})
	// Writes, chown, chmod and utimes moved the copy's stat.
	dfi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("failed to stat %s: %w", filepath.Join(lp.d.dir, e.Rel), err)
	}
	lp.record(df, res, dfi)
	return nil
}

// record makes the record of a file done, its copy's stat dfi.
func (lp *Pass) record(df *destFile, res *pass.FileResult, dfi fs.FileInfo) {
	e := &res.Entry
	lp.led.Saw(dfi)
	df.rec = manifest.File{Path: e.Rel, Flags: res.Flags, CRC32C: res.CRC32C, Source: e.Stat, Dest: pass.StatOf(dfi),
		ReadStart: res.ReadStart, Hashes: res.Hashes}
	df.blocks = res.Blocks
	faults.AfterFile(e.Rel)
}

// writeRecords adds the records to the new manifest in walk order as the
// files complete, and takes them out of the window.
func (lp *Pass) writeRecords() error {
	for {
		batch, err := lp.ordered.Take(lp.stop)
		if err != nil || batch == nil {
			return err
		}
		for _, df := range batch {
			select {
			case <-df.done:
			case <-lp.stop:
				return errors.New("pass aborted")
			}
			if df.id != 0 {
				lp.window.Release(df.size)
			}
			if df.err != nil {
				return df.err
			}
			if err := lp.led.Put(&ledger.Record{Gone: df.gone, Old: df.old, Skip: df.skip, Kept: df.keep, New: df.rec, Blocks: df.blocks,
				Known: df.known, KnownBlocks: df.knownBlocks}); err != nil {
				return err
			}
		}
	}
}

// commit makes the pass durable: the records, the directories, the
// manifest; after a cold pass, the backup_manifest and the seal.
func (lp *Pass) Commit(ctx context.Context, c *pass.CommitRequest) (*pass.CommitReply, error) {
	rep := &pass.CommitReply{FilesSkipped: lp.skipped.Load(), FilesDeleted: lp.deleted.Load()}
	lp.ahead.Stop()
	if lp.req.DryRun {
		lp.led.Close()
		lp.closeDirs()
		rep.FilesChanged = lp.changed.Load()
		return rep, nil
	}
	if err := lp.flush(ctx); err != nil {
		lp.Abort()
		return nil, err
	}
	lp.ordered.Close()
	if err := lp.waitWriter(); err != nil {
		lp.Abort()
		return nil, err
	}
	lp.closeDirs()
	if err := ctx.Err(); err != nil {
		lp.Abort()
		return nil, err
	}
	if err := lp.finishDirs(); err != nil {
		lp.Abort()
		return nil, err
	}
	d := lp.d
	h := manifest.Header{Created: c.Pass.Started}
	if d.header != nil {
		h = *d.header
	}
	h.BlockSize = uint32(lp.bs)
	h.SystemIdentifier = d.sysID
	h.PGVersion = d.pgVersion
	h.Flags = 0
	if lp.req.Kind == manifest.Cold {
		h.Flags |= manifest.FlagColdComplete
	}
	pass := c.Pass
	pass.Kind = lp.req.Kind
	pass.FilesChanged = lp.changed.Load()
	pass.FilesDeleted = lp.deleted.Load()
	h.AddPass(pass)
	// A live pass waits out the granule of the files it wrote last, so that
	// the next pass, the cold one above all, trusts their records (package
	// ledger, the safe horizon).
	if err := lp.led.Commit(ctx, h, lp.req.Kind == manifest.Live); err != nil {
		return nil, err
	}
	d.giveState()
	d.header, d.manifestErr, d.exists = &h, nil, true
	if err := d.unmarkPass(); err != nil {
		return nil, err
	}
	rep.Header = &h
	rep.FilesChanged = lp.changed.Load()
	rep.BytesRead = lp.destRead.Load()
	if lp.req.Kind != manifest.Cold {
		return rep, nil
	}
	// A copy the server's user cannot reach could not start: say so rather
	// than seal it.
	if err := d.checkReachable(); err != nil {
		return nil, err
	}
	// What the seal installs, recorded before the backup_manifest lists
	// pgtwopass's own files.
	if err := d.recordSeal(); err != nil {
		return nil, err
	}
	if c.BackupManifest {
		if err := lp.writeBackupManifest(c.Timeline, c.CheckpointLSN); err != nil {
			return nil, err
		}
		d.backupTLI, d.backupLSN = c.Timeline, c.CheckpointLSN
	}
	faults.Phase("seal")
	return rep, lp.seal()
}

// waitWriter returns the manifest writer's result, once it has ended.
func (lp *Pass) waitWriter() error {
	if !lp.waited {
		lp.waited = true
		lp.werr = <-lp.written
	}
	return lp.werr
}

// abort ends the pass without a new manifest: the old one stays, and
// vouches for no file this pass wrote (their stat moved). The queue to the
// manifest writer is left open: next may still be sending to it, and gives
// up when it sees stop.
func (lp *Pass) Abort() {
	select {
	case <-lp.stop:
		return
	default:
	}
	close(lp.stop)
	lp.ahead.Stop()
	if lp.ordered != nil {
		lp.waitWriter()
	}
	// The fsyncs under way end before the pass does.
	lp.syncs.Acquire(context.Background(), maxSyncs)
	lp.syncs.Release(maxSyncs)
	lp.led.Abort()
	lp.mu.Lock()
	for id, df := range lp.files {
		df.close()
		delete(lp.files, id)
	}
	lp.mu.Unlock()
	lp.closeDirs()
}

// finishDirs gives every directory its owner, mode and mtime, children
// before parents (creating entries moves a directory's mtime), then fsyncs
// them all, so that every entry created or removed is durable.
func (lp *Pass) finishDirs() error {
	for i := len(lp.entries) - 1; i >= 0; i-- {
		if e := &lp.entries[i]; e.IsDir() {
			root, name := lp.d.at(e.Rel, true)
			if _, err := lp.d.applyMeta(root, name, e, nil); err != nil {
				return err
			}
		}
	}
	for i := range lp.entries {
		if e := &lp.entries[i]; e.IsDir() {
			root, name := lp.d.at(e.Rel, true)
			if err := manifest.SyncDirIn(root, name); err != nil {
				return err
			}
		}
	}
	for _, pt := range lp.d.parts {
		if err := manifest.SyncDir(filepath.Dir(pt.dir)); err != nil {
			return err
		}
	}
	return manifest.SyncDir(filepath.Dir(lp.d.dir))
}

// seal installs global/pg_control, the last file, once everything else and
// the manifest are durable.
func (lp *Pass) seal() error {
	root := lp.d.root
	if err := root.Rename(pass.HeldControl, pass.ControlFile); err != nil {
		return fmt.Errorf("failed to seal the copy: %w", err)
	}
	if err := manifest.SyncDirIn(root, path.Dir(pass.HeldControl)); err != nil {
		return err
	}
	// The rename moved global's mtime: give it the source's again.
	for i := range lp.entries {
		if e := &lp.entries[i]; e.Rel == path.Dir(pass.ControlFile) {
			if _, err := lp.d.applyMeta(root, e.Rel, e, nil); err != nil {
				return err
			}
		}
	}
	if err := manifest.SyncDirIn(root, path.Dir(pass.ControlFile)); err != nil {
		return err
	}
	lp.obs.Event(pass.Event{Kind: pass.Step, Pass: lp.req.Kind, Msg: "sealed the copy: global/pg_control installed"})
	return nil
}

// dirKey names a directory of the copy: its path in a root.
type dirKey struct {
	root *os.Root
	dir  string
}

// fileAt returns where the file rel is in the copy as a root and a name,
// like Local.at, but with the root of the file's own directory, opened
// once per pass, so that finding a file costs one lookup of its name rather
// than a walk of its whole path through os.Root (an openat per component,
// for each lstat, open and chmod). The pass changes no directory while it
// reads files: deletions and new directories come before, in beginPass, and
// the roots are closed when the pass ends.
func (lp *Pass) fileAt(rel string) (*os.Root, string, error) {
	root, name := lp.d.at(rel, true)
	dir, base := path.Split(name)
	if root == nil || dir == "" {
		return root, name, nil
	}
	key := dirKey{root, strings.TrimSuffix(dir, "/")}
	lp.dirsMu.Lock()
	defer lp.dirsMu.Unlock()
	if sub, ok := lp.dirs[key]; ok {
		return sub, base, nil
	}
	sub, err := root.OpenRoot(key.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return root, name, nil // a dry run on a new copy: nothing there
	}
	if err != nil {
		return nil, "", fmt.Errorf("failed to open the directory of %s in the copy: %w", rel, err)
	}
	lp.dirs[key] = sub
	return sub, base, nil
}

// closeDirs closes the roots of fileAt.
func (lp *Pass) closeDirs() {
	lp.dirsMu.Lock()
	defer lp.dirsMu.Unlock()
	for k, r := range lp.dirs {
		r.Close()
		delete(lp.dirs, k)
	}
}
