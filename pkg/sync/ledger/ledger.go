// Package ledger is the destination's account of the copy in one pass,
// against the copy's manifest: which records still vouch for the copy's
// files (their stat, past the safe horizon), what the copy holds of a file
// that the sender must read (the record's hashes, all or those of chosen
// blocks), and the records the pass leaves, committed as a new manifest or,
// in a WAL-guided cold pass, as a journal of what changed.
//
// [Open] opens one; the destination calls [Ledger.Find] for each regular
// file in walk order, [Ledger.Put] for each file's new record in walk
// order, and [Ledger.Commit] once every file is durable.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// Options say how a pass reads and writes the manifest.
type Options struct {
	// Trust: the manifest may vouch for the copy. Without it the pass
	// finds no record (after a crash of the copy's host during a pass, or
	// with a manifest known to be missing or damaged).
	Trust bool
	// Partial (a WAL-guided cold pass): read the heads of the records and
	// only the hashes asked for, and commit a journal of the changes
	// (manifest.Index, manifest.JournalWriter). Without it, read every
	// record whole and commit a new manifest.
	Partial bool
	// Write: commit what the pass leaves (not a dry run).
	Write     bool
	BlockSize int
	// Clock knows the timestamp granularity of the copy's file systems.
	Clock *pass.FSClock
	// OnDamage is told of damage found part way through the manifest: it
	// vouches for no file after it.
	OnDamage func(error)
}

// Ledger is one pass's account of the copy. Find, Hashes and Trusts are
// called from one goroutine, Put from one (another), in walk order.
type Ledger struct {
	// config
	path string
	o    Options

	// state
	ix         *manifest.Index // nil: no records
	unreadable error           // why ix is nil although the pass may trust
	horizon    int64           // the last commit's time: see Trusts
	mw         *manifest.Writer
	jw         *manifest.JournalWriter
	newest     newest
}

// Open opens the manifest at path for a pass. A manifest that cannot be
// read leaves a ledger that finds nothing: Unreadable says why.
func Open(path string, o Options) (*Ledger, error) {
	l := &Ledger{path: path, o: o}
	if o.Trust {
		ix, err := manifest.OpenIndex(path, o.Partial, o.OnDamage)
		if err != nil {
			l.unreadable = err
		} else {
			l.ix, l.horizon = ix, ix.Mtime()
		}
	}
	if !o.Write {
		return l, nil
	}
	var err error
	if o.Partial && l.ix != nil {
		l.jw, err = l.ix.CreateJournal()
	} else {
		l.mw, err = manifest.Create(path, o.BlockSize)
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Unreadable says why the ledger finds no record although the pass may
// trust the manifest: it could not be read.
func (l *Ledger) Unreadable() error { return l.unreadable }

// Journal reports whether the pass commits a journal (Partial, and the
// manifest could be read).
func (l *Ledger) Journal() bool { return l.jw != nil }

// Find returns the record of rel, or nil, and the records of the files the
// pass no longer has, found before it. Paths come in walk order.
func (l *Ledger) Find(rel string) (rec *manifest.Head, gone []*manifest.Head) {
	if l.ix == nil {
		return nil, nil
	}
	rec = l.ix.Find(rel)
	return rec, l.ix.Gone()
}

// Hashes returns the hashes of rec's blocks (sorted; nil: all).
func (l *Ledger) Hashes(rec *manifest.Head, blocks []uint32) ([]manifest.Hash, error) {
	return l.ix.Hashes(rec, blocks)
}

// Close closes the manifest the ledger reads.
func (l *Ledger) Close() {
	if l.ix != nil {
		l.ix.Close()
	}
}

// Record is what the pass leaves of one file.
type Record struct {
	// Gone are the records of files the pass no longer has, found before
	// this one (Find).
	Gone []*manifest.Head
	// Old is the manifest's record of the file (nil: none).
	Old *manifest.Head
	// Skip: the file gets no record (it vanished under a live pass).
	Skip bool
	// Kept: New is Old's record as the pass trusts it (its copy's stat
	// may have moved: owner or mode set again); in a ledger of heads, New
	// has no hashes.
	Kept bool
	// New is the file's new record: with all its hashes, or, for a file
	// read in part, those of Blocks (the record stands for the others).
	New    manifest.File
	Blocks []uint32
	// Known are hashes of Old the pass had, to tell which blocks changed:
	// all of them, or those of KnownBlocks; nil when it had none of Old's
	// (its basis was the copy's own contents).
	Known       []manifest.Hash
	KnownBlocks []uint32
}

// Put adds the record of one file, in walk order.
func (l *Ledger) Put(r *Record) error {
	if l.jw == nil {
		if r.Skip {
			return nil
		}
		if r.Blocks != nil {
			return fmt.Errorf("%s: a file read in part in a new manifest", r.New.Path)
		}
		return l.mw.Add(&r.New)
	}
	for _, g := range r.Gone {
		if err := l.jw.Delete(g); err != nil {
			return err
		}
	}
	if r.Skip {
		if r.Old != nil {
			return l.jw.Delete(r.Old)
		}
		return nil
	}
	runs, err := l.changed(r)
	if err != nil {
		return err
	}
	if r.Old != nil && runs == nil && sameHead(&r.Old.File, &r.New) {
		return nil // as the manifest has it
	}
	return l.jw.Put(r.Old, &r.New, runs)
}

func sameHead(a, b *manifest.File) bool {
	return a.Path == b.Path && a.Flags == b.Flags && a.CRC32C == b.CRC32C && a.Source == b.Source && a.Dest == b.Dest && a.ReadStart == b.ReadStart
}

// changed returns the runs of the blocks of r.New whose hashes differ from
// r.Old's: the blocks past Old's, and those whose hash is not Old's known
// one (all of them when none is known).
func (l *Ledger) changed(r *Record) ([]manifest.Run, error) {
	nb := manifest.NumBlocks(r.New.Dest.Size, l.o.BlockSize)
	oldN := 0
	if r.Old != nil {
		oldN = r.Old.NumBlocks()
	}
	same := func(i uint32, h manifest.Hash) bool {
		if int(i) >= oldN || r.Known == nil {
			return false
		}
		if r.KnownBlocks == nil {
			return int(i) < len(r.Known) && r.Known[i] == h
		}
		k, ok := slices.BinarySearch(r.KnownBlocks, i)
		return ok && k < len(r.Known) && r.Known[k] == h
	}
	var runs []manifest.Run
	switch {
	case r.Blocks == nil && len(r.New.Hashes) == nb:
		for i, h := range r.New.Hashes {
			if !same(uint32(i), h) {
				runs = manifest.AddHash(runs, uint32(i), h)
			}
		}
	case r.Blocks == nil && r.New.Hashes == nil && r.Old != nil && nb <= oldN:
		// Kept: the record's head alone may have moved.
	case r.Blocks != nil && len(r.Blocks) == len(r.New.Hashes):
		for k, i := range r.Blocks {
			if int(i) >= nb || k > 0 && i <= r.Blocks[k-1] {
				return nil, fmt.Errorf("%s: block %d read out of order or past its end", r.New.Path, i)
			}
			if !same(i, r.New.Hashes[k]) {
				runs = manifest.AddHash(runs, i, r.New.Hashes[k])
			}
		}
	default:
		return nil, fmt.Errorf("%s: %d hashes for %d bytes", r.New.Path, len(r.New.Hashes), r.New.Dest.Size)
	}
	return runs, nil
}

// Commit makes the pass's records durable: a new manifest, or the journal.
// A live pass first waits out the granule of the files it wrote last (see
// Trusts). A journal of a manifest found damaged is folded at once into a
// new manifest, salvaged (manifest.Compact): the damaged one must not
// stay behind the copy the pass leaves.
func (l *Ledger) Commit(ctx context.Context, h manifest.Header, live bool) error {
	if live {
		l.newest.waitPast(ctx, l.o.Clock)
	}
	if err := ctx.Err(); err != nil {
		l.Abort()
		return err
	}
	if l.mw != nil {
		err := l.mw.Commit(h)
		l.mw = nil
		return err
	}
	if l.jw == nil {
		return errors.New("ledger: nothing to commit")
	}
	l.ix.Rest()
	for _, g := range l.ix.Gone() {
		if err := l.jw.Delete(g); err != nil {
			l.Abort()
			return err
		}
	}
	err := l.jw.Commit(h)
	l.jw = nil
	if err != nil || l.ix.Err() == nil {
		return err
	}
	l.ix.Close()
	return manifest.Compact(l.path, nil)
}

// Abort discards what the pass would have committed: the manifest and its
// journal stay as they were.
func (l *Ledger) Abort() {
	if l.mw != nil {
		l.mw.Abort()
		l.mw = nil
	}
	if l.jw != nil {
		l.jw.Abort()
		l.jw = nil
	}
	l.Close()
}
