package destination

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/pgtwopass/pgtwopass/internal/flow"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// The merge of the walk with the old manifest is the one serial part of a
// pass: it goes through every regular file in walk order, finds its record,
// and either keeps the record (a file the pass may trust by its stat) or
// hands the file to the sender. What it needs of the copy, the stat of each
// file, is taken ahead of it by several goroutines (statAhead), and a file
// handed to the sender is opened only when a block of it is written: a file
// whose bytes do not change costs one fstatat here, whatever the pass.

// Next merges up to the next files the sender must read, at most max, and
// waits for room in the window only for the first.
func (lp *Pass) Next(ctx context.Context, max int) ([]*pass.Basis, error) {
	var out []*pass.Basis
	for len(out) < max {
		if lp.held == nil {
			h, err := lp.merge(ctx)
			if err != nil {
				return nil, err
			}
			if h == nil {
				break
			}
			lp.held = h
		}
		if !lp.req.DryRun && !lp.window.TryTake(lp.held.size) {
			if len(out) > 0 {
				break
			}
			// The files in flight must reach the writer before room can
			// come back.
			if err := lp.flush(ctx); err != nil {
				return nil, err
			}
			select {
			case <-lp.window.Freed():
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-lp.halted: // a failed fsync, or abort
				return nil, cmp.Or(lp.halt, flow.ErrStopped)
			}
		}
		df := lp.held
		lp.held = nil
		b, err := lp.handOut(ctx, df)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, lp.flush(ctx)
}

// merge goes through the walk up to the next file the sender must read and
// returns it (nil at the end), not yet handed out. A file the pass may trust
// by its stat keeps its record on the way.
func (lp *Pass) merge(ctx context.Context) (*destFile, error) {
	for lp.idx < len(lp.entries) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		i := lp.idx
		e := &lp.entries[i]
		lp.idx++
		if !e.IsRegular() {
			continue
		}
		rec, gone := lp.led.Find(e.Rel)
		var rf *manifest.File // the record, for the rules of trust
		if rec != nil {
			rf = &rec.File
		}
		st, err := lp.ahead.Get(ctx, i)
		if err != nil {
			return nil, err // a pass aborted meanwhile gets no stat
		} else if st.err != nil {
			return nil, st.err
		}
		trust := lp.led.Trusts(rec, st.fi)
		walKind, partial := lp.walKind(i, rf, e, trust)
		if !(trust && sameSource(rf, e) && (lp.req.Kind == manifest.Live || lp.req.Quick && pastHorizon(rf, lp.req.QuickMargin)) ||
			partial && walKind == pass.WALNone && rf.Source.Size == e.Stat.Size ||
			// What the WAL does not cover, the quick cold pass's rule does:
			// a file not written since a read that began safely after its
			// last write.
			lp.req.WAL != nil && trust && sameSource(rf, e) && pastHorizon(rf, lp.req.WAL.Margin)) {
			df := &destFile{idx: i, e: e, dfi: st.fi, root: st.root, name: st.name, size: e.Stat.Size, gone: gone, partial: partial}
			if trust {
				df.basis = rec
			}
			if lp.led.Journal() {
				df.old = rec // a new manifest needs nothing of the old record
			}
			return df, nil
		}
		lp.skipped.Add(1)
		if lp.req.DryRun {
			continue
		}
		df, err := lp.keep(e, rec, st.root, st.name, st.fi)
		if err != nil {
			return nil, err
		}
		df.gone = gone
		if err := lp.queue(ctx, df); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// handOut makes the basis of df, a file the sender must read.
func (lp *Pass) handOut(ctx context.Context, df *destFile) (*pass.Basis, error) {
	lp.nextID++
	df.id, df.done = lp.nextID, make(chan struct{})
	b := &pass.Basis{ID: df.id, Rel: df.e.Rel, Index: df.idx, Size: -1, Partial: df.partial}
	if df.dfi != nil {
		b.Size = df.dfi.Size()
	}
	switch {
	case lp.req.DryRun:
		return b, nil
	case df.partial:
		// Of the record's hashes, those of the blocks the sender reads.
		if df.idx < len(lp.req.WAL.Blocks) {
			df.named = lp.req.WAL.Blocks[df.idx]
		}
		b.Blocks = pass.PartialBlocks(df.named, df.basis.Dest.Size, df.basis.Dest.Size, lp.bs)
		if err := lp.basisOf(df, b, b.Blocks); err != nil {
			return nil, fmt.Errorf("failed to read %s in the copy: %w", df.e.Rel, err)
		}
	case df.basis != nil:
		if err := lp.basisOf(df, b, nil); err != nil {
			return nil, fmt.Errorf("failed to read %s in the copy: %w", df.e.Rel, err)
		}
	case df.dfi != nil:
		// No record vouches for the copy: its own contents are the basis,
		// so that nothing unchanged is rewritten.
		f, err := df.file()
		if err == nil {
			b.Hashes, _, err = pass.HashFile(ctx, f, lp.bs, func(c []byte) { lp.destRead.Add(int64(len(c))) })
		}
		if err != nil {
			df.close()
			return nil, fmt.Errorf("failed to read %s in the copy: %w", df.e.Rel, err)
		}
	}
	lp.mu.Lock()
	lp.files[df.id] = df
	lp.mu.Unlock()
	return b, lp.queue(ctx, df)
}

// basisOf gives b the hashes of df's record of blocks (nil: all); a ledger
// that writes a journal keeps them to tell the blocks that change.
func (lp *Pass) basisOf(df *destFile, b *pass.Basis, blocks []uint32) error {
	hs, err := lp.led.Hashes(df.basis, blocks)
	if err != nil {
		return err
	}
	b.Hashes = hs
	if lp.led.Journal() {
		df.known, df.knownBlocks = hs, blocks
	}
	return nil
}

// queueBatch is how many files the merge hands the manifest writer at once.
const queueBatch = 256

// queue hands df to the manifest writer, in walk order, in batches.
func (lp *Pass) queue(ctx context.Context, df *destFile) error {
	if lp.pending = append(lp.pending, df); len(lp.pending) < queueBatch {
		return nil
	}
	return lp.flush(ctx)
}

// flush hands the files queued to the manifest writer.
func (lp *Pass) flush(ctx context.Context) (err error) {
	if len(lp.pending) > 0 && lp.ordered != nil {
		if err = lp.ordered.Push(ctx, lp.halted, lp.pending); err == nil {
			lp.pending = nil
		} else if err == flow.ErrStopped {
			err = cmp.Or(lp.halt, err)
		}
	}
	return err
}

// Flush: the calls of a pass on this host hold nothing back.
func (lp *Pass) Flush() error { return nil }

// file returns the copy of df open for writing, opening (or creating) it
// at the first call.
func (df *destFile) file() (*os.File, error) {
	df.openMu.Lock()
	defer df.openMu.Unlock()
	if df.f != nil {
		return df.f, nil
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if df.dfi != nil {
		flags = os.O_RDWR
	}
	f, err := df.root.OpenFile(df.name, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s in the copy for writing: %w", df.e.Rel, err)
	}
	df.f = f
	return f, nil
}

func (df *destFile) close() {
	df.openMu.Lock()
	defer df.openMu.Unlock()
	if df.f != nil {
		df.f.Close()
	}
	df.f = nil
}

// The copy's stats are taken ahead of the merge in blocks of aheadBlock
// entries, at most aheadBlocks blocks ahead, from a goroutine per CPU.
const (
	aheadBlock  = 128
	aheadBlocks = 32
)

// statAhead starts taking the stats of the copy's regular files.
func (lp *Pass) statAhead() *flow.Ahead[aheadStat] {
	return flow.NewAhead(len(lp.entries), aheadBlock, aheadBlocks, runtime.GOMAXPROCS(0), func(i int) aheadStat {
		e := &lp.entries[i]
		if !e.IsRegular() {
			return aheadStat{}
		}
		root, name, err := lp.fileAt(e.Rel)
		if err != nil {
			return aheadStat{err: err}
		}
		fi, err := lstat(root, name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return aheadStat{err: fmt.Errorf("failed to stat %s in the copy: %w", e.Rel, err)}
		}
		return aheadStat{root: root, name: name, fi: fi}
	})
}

// aheadStat is where a regular file is in the copy, and its stat (fi nil:
// the copy has no such file; err: it could not tell).
type aheadStat struct {
	root *os.Root
	name string
	fi   fs.FileInfo
	err  error
}
