package sync

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/human"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/destination"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/sync/remote"
	"github.com/pgtwopass/pgtwopass/pkg/sync/sender"
	"github.com/pgtwopass/pgtwopass/pkg/sync/walplan"
)

// Result is what a job did.
type Result struct {
	Passes []PassStats
	// Stopped is set when pgtwopass stopped the server, Restarted when it
	// started it again.
	Stopped   bool
	Restarted bool
	// Downtime runs from the stop until the restarted server accepts
	// connections (its postmaster.pid says so), or to the end of the cold
	// pass without --restart.
	Downtime time.Duration
	// Prediction is the downtime predicted before the stop; nil when
	// pgtwopass did not stop the server or had nothing to predict from.
	Prediction *Prediction
	Started    time.Time
	Finished   time.Time
	// ColdPassMode is the mode the cold pass ran in (checksum, quick, wal);
	// FallbackReason says why a WAL-guided one read everything.
	ColdPassMode   string
	FallbackReason string
	// BytesSent and BytesReceived count the traffic with a receiver on
	// another host (0 for a copy on this host).
	BytesSent     int64
	BytesReceived int64
	// Server is the source server as finish read it at its end (zero
	// after prepare).
	Server pgctl.ServerState
}

// Total adds up the passes.
func (r *Result) Total() PassStats {
	var t PassStats
	for _, p := range r.Passes {
		t.FilesExamined += p.FilesExamined
		t.FilesSkipped += p.FilesSkipped
		t.FilesChanged += p.FilesChanged
		t.FilesDeleted += p.FilesDeleted
		t.BytesRead += p.BytesRead
		t.BytesWritten += p.BytesWritten
		t.BlocksWritten += p.BlocksWritten
	}
	return t
}

// job holds a checked SRC and an open DEST.
type job struct {
	opts    *Options
	src     *source
	dst     pass.Destination
	header  *manifest.Header // the copy's manifest, as the last pass left it
	ids     pass.IDMap
	res     *Result
	timings pass.ServerTimings // of this job's stop and start
	// The WAL-guided cold pass: the WAL followed from the CHECKPOINT, the
	// read plan made of it, or why there is none.
	wal      *walGuide
	plan     *walplan.Plan
	fallback *fallback
}

// openJob checks SRC and DEST, runs check (if any), and only then opens
// DEST, which locks it and creates it if needed: a refusal touches nothing.
func openJob(ctx context.Context, o *Options, check func(*job) error) (*job, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	src, err := inspectSource(ctx, o.Source, o.TablespaceMap)
	if err != nil {
		return nil, err
	}
	if o.ColdPass == ColdQuick || o.ColdPass == ColdWAL {
		if err := pass.CheckQuickFS(src.dir); err != nil {
			return nil, err
		}
	}
	dst, err := newDest(ctx, o, src)
	if err != nil {
		return nil, err
	}
	j := &job{opts: o, src: src, dst: dst, res: &Result{Started: time.Now()}}
	if check != nil {
		if err := check(j); err != nil {
			dst.Close()
			return nil, err
		}
	}
	reads, err := src.readPlaces()
	if err != nil {
		dst.Close()
		return nil, err
	}
	rep, err := dst.Open(ctx, &pass.OpenRequest{BootID: pass.BootID(), Reads: reads, MkPath: o.MkPath, AllowStarted: o.AllowStarted,
		SystemIdentifier: src.control.SystemIdentifier, PGVersion: src.pgVersion, BlockSize: o.BlockSize,
		DryRun: o.DryRun, Quick: o.ColdPass == ColdQuick || o.ColdPass == ColdWAL, Owner: src.ownerIDs(), Tablespaces: sortedKeys(src.tablespaces),
	})
	if err != nil {
		dst.Close()
		return nil, err
	}
	j.header = rep.Header
	j.ids = pass.NewIDMap(src.ownerIDs(), rep.Owner)
	return j, nil
}

// newDest returns the destination o.Dest names: a directory on this host,
// or [user@]host:PATH on another. Its Open checks what it writes against
// what the job reads (src.readPlaces, pass.CheckPlaces).
func newDest(ctx context.Context, o *Options, src *source) (pass.Destination, error) {
	if _, ok := ParseRemote(o.Dest); ok {
		return remote.Dial(ctx, o.Dest, o.Remote, o.layout(src), o.Observer)
	}
	return destination.New(o.Dest, o.layout(src), o.Observer)
}

func (j *job) close() {
	j.res.BytesSent, j.res.BytesReceived = j.dst.Traffic()
	if err := j.dst.Close(); err != nil {
		j.warn("%v", err)
	}
	j.res.Finished = time.Now()
}

// senderConfig is the sender's configuration of a pass of kind.
func (j *job) senderConfig(kind manifest.PassKind) *sender.Config {
	o := j.opts
	cfg := &sender.Config{Kind: kind, Source: j.src.dir, Excluder: o.excluder(), BlockSize: o.BlockSize, Jobs: o.Jobs,
		DryRun: o.DryRun, Quick: kind == manifest.Cold && o.ColdPass == ColdQuick, QuickMargin: o.QuickMargin,
		BackupManifest: o.BackupManifest, IDs: j.ids, Observer: o.Observer, Note: j.res == nil || len(j.res.Passes) == 0}
	if kind == manifest.Cold && j.plan != nil && !o.DryRun {
		cfg.WAL = j.wal.senderWAL(j.plan, o.QuickMargin)
	}
	if kind == manifest.Cold && o.BackupManifest {
		cfg.Timeline = strconv.FormatUint(uint64(j.src.control.TimeLineID), 10)
		cfg.CheckpointLSN = j.src.control.CheckPoint.String()
	}
	return cfg
}

func (j *job) pass(ctx context.Context, kind manifest.PassKind) error {
	st, rep, err := sender.Run(ctx, j.senderConfig(kind), j.dst, j.header)
	if err != nil {
		return err
	}
	j.res.Passes = append(j.res.Passes, st)
	if rep.Header != nil {
		// The next pass starts from the manifest this one wrote.
		j.header = rep.Header
	}
	return nil
}

// Prepare runs a live pass: the server may keep running, and the copy is
// left unsealed. It is safe to repeat.
func Prepare(ctx context.Context, o Options) (*Result, error) {
	j, err := openJob(ctx, &o, nil)
	if err != nil {
		return nil, err
	}
	defer j.close()
	return j.res, j.livePasses(ctx)
}

// livePasses repeats live passes while each writes fewer bytes than the one
// before (the copy converges), up to MaxPasses.
func (j *job) livePasses(ctx context.Context) error {
	var last int64 = -1
	for i := 0; i < j.opts.MaxPasses; i++ {
		if err := j.pass(ctx, manifest.Live); err != nil {
			return err
		}
		w := j.res.Passes[len(j.res.Passes)-1].BytesWritten
		switch {
		case j.opts.DryRun || w == 0:
			return nil
		case last >= 0 && w >= last:
			j.step("live passes stopped converging (%s written, %s the pass before)", human.Bytes(w), human.Bytes(last))
			return nil
		}
		last = w
	}
	return nil
}

// Finish checkpoints and stops the source server (unless it is down
// already), runs the cold pass, seals the copy and, with Restart, starts the
// server again.
func Finish(ctx context.Context, o Options, s ServerOptions) (*Result, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	f := &finisher{s: &s}
	j, err := openJob(ctx, &o, f.check(ctx))
	if err != nil {
		return nil, err
	}
	defer j.close()
	return j.res, f.run(ctx)
}

// Sync runs Prepare then Finish under one lock of DEST.
func Sync(ctx context.Context, o Options, s ServerOptions) (*Result, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	f := &finisher{s: &s}
	j, err := openJob(ctx, &o, f.check(ctx))
	if err != nil {
		return nil, err
	}
	defer j.close()
	if err := j.livePasses(ctx); err != nil {
		return j.res, err
	}
	return j.res, f.run(ctx)
}

func (j *job) step(format string, args ...any) {
	j.opts.Observer.Event(Event{Kind: Step, Msg: fmt.Sprintf(format, args...)})
}

func (j *job) warn(format string, args ...any) {
	j.opts.Observer.Event(Event{Kind: Warning, Msg: fmt.Sprintf(format, args...)})
}
