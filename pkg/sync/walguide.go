package sync

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	gosync "sync"
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/sync/sender"
	"github.com/pgtwopass/pgtwopass/pkg/sync/walplan"
	"github.com/pgtwopass/pgtwopass/pkg/wal"
)

// The WAL-guided cold pass (--cold-pass=wal) reads, of the relation files
// whose records it can trust, only the blocks that the WAL between the
// redo point of the CHECKPOINT that finish issues and the shutdown
// checkpoint names, and everything else whole. docs/design.md, "The
// WAL-guided cold pass", gives the argument exception by exception. Every
// premise that fails makes it the checksum cold pass, which reads
// everything, never less: the reason goes to the log, the summary and
// --json (cold_pass_mode, fallback_reason).

// walGuide follows the WAL of one finish, from the CHECKPOINT's redo point.
type walGuide struct {
	// config
	since   time.Time // when the CHECKPOINT returned
	redo    pgctl.LSN
	tli     uint32
	segSize uint32
	sysID   uint64
	version uint32 // pg_control's data checksum version at the redo point

	// state
	keeper  *wal.Keeper
	mu      gosync.Mutex // guards reader, sum and flushed while follow runs
	reader  *wal.Reader
	sum     *wal.Summarizer
	flushed pgctl.LSN // the server's flush position when last asked
	stop    context.CancelFunc
	done    chan struct{}
	err     error // why following the WAL failed (set before done is closed)
}

// fallback is why a WAL-guided cold pass reads everything.
type fallback struct {
	reason string // stable, for --json: wal.Reason values, and those below
	detail string // for people: what failed, and what to do
}

// startWAL checks the premises of a WAL-guided cold pass right after the
// CHECKPOINT returned, notes its redo point, and starts holding every WAL
// segment from it on as it appears (the shutdown checkpoint removes or
// recycles the segments before its own redo point: wal.Keeper). A failed
// premise returns the fallback instead.
func (j *job) startWAL(checkpointed bool, flush flushSource) (g *walGuide, fb *fallback) {
	if flush != nil {
		defer func() {
			if g == nil {
				flush.Close()
			}
		}()
	}
	if !checkpointed {
		return nil, &fallback{"no_checkpoint", "the CHECKPOINT before the last live pass did not run: no redo point to read the WAL from"}
	}
	since := time.Now()
	cf, err := pgctl.ReadControlFile(j.src.dir)
	if err != nil {
		return nil, &fallback{"control_file", fmt.Sprintf("cannot read SRC's pg_control after the CHECKPOINT: %v", err)}
	}
	switch {
	case !cf.DataChecksums() && !cf.WALLogHints:
		return nil, &fallback{string(wal.ReasonHintBits), "the cluster has neither data checksums nor wal_log_hints = on, so hint-bit changes do not reach the WAL; set wal_log_hints = on (and restart the server) to use --cold-pass=wal"}
	case cf.WALLevel == pgctl.WALLevelMinimal:
		return nil, &fallback{string(wal.ReasonWALLevelMinimal), "wal_level is minimal: relations created or truncated in a transaction skip the WAL; set wal_level = replica"}
	case cf.BlockSize != 8192 || cf.XLogBlockSize != 8192:
		return nil, &fallback{"block_size", fmt.Sprintf("the cluster's blocks are %d bytes and its WAL pages %d: the WAL reader reads 8 KiB ones", cf.BlockSize, cf.XLogBlockSize)}
	}
	walDir, err := filepath.EvalSymlinks(filepath.Join(j.src.dir, pass.WalkedDir))
	if err != nil {
		return nil, &fallback{"wal_directory", fmt.Sprintf("cannot resolve SRC's pg_wal: %v", err)}
	}
	k, err := wal.NewKeeper(walDir, cf.TimeLineID, cf.XLogSegSize, wal.LSN(cf.Redo))
	if err != nil {
		return nil, &fallback{string(wal.ReasonMissingSegment), fmt.Sprintf("cannot hold the WAL from the redo point %s: %v", cf.Redo, err)}
	}
	g = &walGuide{since: since, redo: cf.Redo, tli: cf.TimeLineID, segSize: cf.XLogSegSize, sysID: cf.SystemIdentifier,
		version: cf.DataChecksumVersion, keeper: k, done: make(chan struct{})}
	g.reader, err = wal.NewReader(wal.ReaderOptions{Source: k, Start: wal.LSN(cf.Redo), TLI: cf.TimeLineID, SegmentSize: cf.XLogSegSize,
		SystemID: cf.SystemIdentifier, Limit: wal.LSN(cf.Redo)})
	if err != nil {
		k.Close()
		return nil, &fallback{string(wal.ReasonUnparsable), err.Error()}
	}
	// The first shutdown checkpoint ends the summary; the plan checks that
	// it is the one pg_control names after the stop.
	g.sum = wal.NewSummarizer(wal.SummaryOptions{DataChecksums: cf.DataChecksums()})
	ctx, stop := context.WithCancel(context.Background())
	g.stop = stop
	go func() {
		defer close(g.done)
		g.err = g.follow(ctx, flush)
	}()
	return g, nil
}

// flushSource tells a running server's WAL flush position
// (pgctl.FlushWatcher).
type flushSource interface {
	FlushLSN(ctx context.Context) (pgctl.LSN, error)
	Close()
}

// follow reads the WAL while the server runs, up to its flush position,
// holding the segments from the redo point on: a checkpoint in the range
// (max_wal_size reached) recycles the segments before its own redo point by
// renaming them to future names, and a recycled file is written again when
// the WAL reaches its new name, so each segment is read soon after it is
// written, and released once read.
// Without a flush position (flush is nil, or the server stops) it only
// holds the segments: the plan reads the rest after the stop.
func (g *walGuide) follow(ctx context.Context, flush flushSource) error {
	if flush != nil {
		defer flush.Close()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := g.keeper.Scan(); err != nil {
			return err
		}
		if flush == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				continue
			}
		}
		lsn, err := flush.FlushLSN(ctx)
		if err != nil {
			// Stopped, or the server is stopping: the plan reads the rest.
			flush.Close()
			flush = nil
			continue
		}
		done, err := g.feed(ctx, lsn)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// feed summarizes the WAL up to the flush position lsn and releases the
// segments read.
func (g *walGuide) feed(ctx context.Context, lsn pgctl.LSN) (done bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.flushed = lsn
	g.reader.SetLimit(wal.LSN(lsn))
	if err := g.sum.Feed(ctx, g.reader); err != nil && !errors.Is(err, wal.ErrLimit) {
		return false, err
	}
	g.keeper.Release(g.reader.NextLSN())
	return g.sum.Done(), nil
}

// estimate is, for the prediction while the server runs, a read plan of
// the WAL followed so far (the blocks named up to now; the shutdown adds
// those changed until the stop) and the bytes of WAL that the plan after
// the stop has still to read, or nil when the WAL is not followed.
func (g *walGuide) estimate(entries []pass.Entry, relSegSize uint32) (*walplan.Plan, int64) {
	g.mu.Lock()
	sum := g.sum.Summary().Clone()
	flushed := g.flushed
	left := int64(flushed) - int64(g.reader.NextLSN())
	g.mu.Unlock()
	if flushed == 0 {
		return nil, 0
	}
	return walplan.Build(sum, entries, relSegSize), max(left, 0)
}

// close stops holding the WAL.
func (g *walGuide) close() {
	if g == nil {
		return
	}
	g.stop()
	<-g.done
	g.reader.Close()
	g.keeper.Close()
}

// plan reads the WAL from the redo point to the shutdown checkpoint of the
// stopped cluster cf and returns the read plan, or why it cannot.
func (g *walGuide) plan(ctx context.Context, cf *pgctl.ControlFile, entries func() ([]pass.Entry, error)) (*walplan.Plan, *fallback) {
	switch {
	case !cf.CleanlyShutDown():
		return nil, &fallback{"not_shut_down", fmt.Sprintf("the cluster was not shut down cleanly (%s): no shutdown checkpoint ends the WAL", cf.State)}
	case cf.TimeLineID != g.tli:
		return nil, &fallback{string(wal.ReasonTimeline), fmt.Sprintf("the timeline changed from %d to %d", g.tli, cf.TimeLineID)}
	case cf.DataChecksumVersion != g.version:
		return nil, &fallback{"data_checksum_version", "the data checksum version changed (pg_checksums --enable or --disable rewrites every page without WAL)"}
	}
	g.stop()
	<-g.done
	if g.err != nil {
		return nil, &fallback{string(wal.ReasonReadError), fmt.Sprintf("following the WAL: %v", g.err)}
	}
	if _, err := g.keeper.Scan(); err != nil {
		return nil, &fallback{string(wal.ReasonReadError), fmt.Sprintf("cannot hold the last WAL segments: %v", err)}
	}
	// The rest, to the shutdown checkpoint and the end of the WAL.
	g.reader.SetLimit(0)
	err := g.sum.Feed(ctx, g.reader)
	sum := g.sum.Summary()
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, &fallback{"interrupted", err.Error()}
	case err != nil:
		return nil, &fallback{string(wal.ReasonReadError), err.Error()}
	case sum.Fallback != nil:
		return nil, &fallback{string(sum.Fallback.Reason), sum.Fallback.String()}
	case sum.Checkpoint == nil || sum.Checkpoint.LSN != wal.LSN(cf.CheckPoint):
		return nil, &fallback{string(wal.ReasonEndNotFound), fmt.Sprintf("the WAL's shutdown checkpoint is not the one pg_control names (%s)", cf.CheckPoint)}
	case !sum.StartIsRedo:
		return nil, &fallback{"not_a_redo_point", fmt.Sprintf("no checkpoint in the WAL has the redo point %s", g.redo)}
	}
	es, err := entries()
	if err != nil {
		return nil, &fallback{string(wal.ReasonReadError), err.Error()}
	}
	return walplan.Build(sum, es, cf.RelSegSize), nil
}

// senderWAL is the sender's part of a plan.
func (g *walGuide) senderWAL(p *walplan.Plan, margin time.Duration) *sender.WAL {
	return &sender.WAL{Plan: p, Since: g.since, Margin: margin}
}

// planColdPass makes the WAL-guided cold pass's read plan from the WAL of
// the stopped cluster, or notes why the cold pass reads everything.
func (j *job) planColdPass(ctx context.Context) {
	j.res.ColdPassMode = j.opts.ColdPass
	if j.opts.ColdPass != ColdWAL {
		return
	}
	if j.fallback == nil {
		plan, fb := j.wal.plan(ctx, j.src.control, func() ([]pass.Entry, error) { return pass.Walk(j.src.dir, j.opts.excluder()) })
		if fb != nil {
			j.fallback = fb
		} else {
			j.plan = plan
			j.step("WAL-guided cold pass: the WAL from %s to the shutdown checkpoint names %d blocks", j.wal.redo, plan.BlocksPlanned)
		}
	}
	if fb := j.fallback; fb != nil {
		j.res.ColdPassMode, j.res.FallbackReason = ColdChecksum, fb.reason
		j.warn("the cold pass reads every block (--cold-pass=wal falls back to checksum): %s", fb.detail)
	}
}
