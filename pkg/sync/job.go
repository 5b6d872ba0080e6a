package sync

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/faults"
	"github.com/pgtwopass/pgtwopass/internal/human"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/destination"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/sync/remote"
	"github.com/pgtwopass/pgtwopass/pkg/sync/sender"
	"github.com/pgtwopass/pgtwopass/pkg/sync/walplan"
)

// ServerOptions says how Finish stops and starts the source server.
type ServerOptions struct {
	// NoStop: the server must already be down; nothing is stopped.
	NoStop bool
	// StopCommand and StartCommand run through /bin/sh instead of pg_ctl.
	StopCommand  string
	StartCommand string
	// SystemdUnit stops and starts the server with systemctl.
	SystemdUnit string
	// Restart starts the source again after the cold pass, also when the
	// cold pass failed.
	Restart bool
	// DSN is where to send the CHECKPOINT; "" derives it from postmaster.pid.
	DSN string
	// StartLog is pg_ctl's -l when pgtwopass starts the server with pg_ctl.
	StartLog string
	// MaxDowntime, when set, is the downtime budget: if the prediction
	// exceeds it, the server is not stopped (BudgetError).
	MaxDowntime time.Duration
}

func (s *ServerOptions) validate() error {
	switch {
	case s.NoStop && (s.StopCommand != "" || s.SystemdUnit != ""):
		return inputErr("drop --no-stop, or drop --stop-command and --systemd-unit", "--no-stop conflicts with --stop-command and --systemd-unit: with --no-stop nothing is stopped")
	case s.SystemdUnit != "" && (s.StopCommand != "" || s.StartCommand != ""):
		return inputErr("use either --systemd-unit or --stop-command/--start-command", "--systemd-unit conflicts with --stop-command and --start-command")
	case s.Restart && s.StopCommand != "" && s.StartCommand == "":
		return inputErr("give --start-command too, so that pgtwopass can start the server it stopped", "--restart with --stop-command needs --start-command")
	}
	return nil
}

// controller returns how to stop and start the server on dataDir.
func (s *ServerOptions) controller(src *source) (pgctl.Controller, error) {
	switch {
	case s.SystemdUnit != "":
		return pgctl.NewSystemd(s.SystemdUnit), nil
	case s.StopCommand != "" || s.StartCommand != "":
		return pgctl.NewCommand(s.StopCommand, s.StartCommand), nil
	}
	dir, err := src.pgCtlDir()
	if err != nil {
		return nil, err
	}
	return pgctl.NewPgCtl(dir, src.dir, src.owner, s.StartLog)
}

// Result is what a job did.
type Result struct {
	Passes []PassStats
	// Stopped is set when pgtwopass stopped the server, Restarted when it
	// started it again.
	Stopped   bool
	Restarted bool
	// Downtime runs from the stop to the end of the restart, or to the end
	// of the cold pass without --restart.
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
	j, err := openJob(ctx, &o, s.checkServer)
	if err != nil {
		return nil, err
	}
	defer j.close()
	return j.res, j.finish(ctx, &s)
}

// Sync runs Prepare then Finish under one lock of DEST.
func Sync(ctx context.Context, o Options, s ServerOptions) (*Result, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	j, err := openJob(ctx, &o, s.checkServer)
	if err != nil {
		return nil, err
	}
	defer j.close()
	if err := j.livePasses(ctx); err != nil {
		return j.res, err
	}
	return j.res, j.finish(ctx, &s)
}

// checkServer refuses --no-stop while the server runs, a stopped source
// that was not shut down cleanly (unless AllowCrashed), and a server that
// must be stopped or started with no way to do it (no pg_ctl of its
// version), before DEST is created or locked.
func (s *ServerOptions) checkServer(j *job) error {
	running, _, _ := pgctl.ServerRunning(j.src.dir)
	if running && s.NoStop {
		return errNoStopRunning(j.src)
	}
	if !running && !j.opts.AllowCrashed && !j.src.control.CleanlyShutDown() {
		return errCrashed(j.src.control)
	}
	if running || s.Restart {
		if _, err := s.controller(j.src); err != nil {
			return err
		}
	}
	return nil
}

func errCrashed(cf *pgctl.ControlFile) error {
	return inputErr("start the server and stop it cleanly, or pass --allow-crashed to copy it as it is (PostgreSQL then runs crash recovery on the copy)",
		"the cluster in SRC was not shut down cleanly (its pg_control says %q)", cf.State)
}

func errNoStopRunning(src *source) error {
	return inputErr("stop the server first, or leave out --no-stop and let pgtwopass stop it",
		"the server on SRC %s is running and --no-stop was given", src.dir)
}

func (j *job) step(format string, args ...any) {
	j.opts.Observer.Event(Event{Kind: Step, Msg: fmt.Sprintf(format, args...)})
}

func (j *job) warn(format string, args ...any) {
	j.opts.Observer.Event(Event{Kind: Warning, Msg: fmt.Sprintf(format, args...)})
}

func (j *job) finish(ctx context.Context, s *ServerOptions) (err error) {
	running, pm, err := pgctl.ServerRunning(j.src.dir)
	if err != nil {
		return err
	}
	if running && s.NoStop {
		return errNoStopRunning(j.src)
	}
	var ctl pgctl.Controller
	if running || s.Restart {
		if ctl, err = s.controller(j.src); err != nil {
			return err
		}
	}
	if j.opts.DryRun {
		if running {
			j.step("would CHECKPOINT and stop the server with %s", ctl)
		}
		if err := j.pass(ctx, manifest.Cold); err != nil {
			return err
		}
		if s.Restart {
			j.step("would start the server with %s", ctl)
		}
		return nil
	}

	var stoppedAt time.Time
	if running {
		// The CHECKPOINT writes out the pages that wait in shared buffers;
		// a live pass right after it copies them while the server still
		// runs, so the cold pass has little left to write, and its writes
		// are the dirty rate from which the downtime is predicted.
		checkpointed := j.checkpoint(ctx, s, pm)
		if j.opts.ColdPass == ColdWAL {
			// From its redo point, the WAL names every block that changes.
			dsn := s.DSN
			if dsn == "" {
				dsn = pgctl.DefaultDSN(pm, j.src.owner.Name)
			}
			j.wal, j.fallback = j.startWAL(checkpointed, func(ctx context.Context) (pgctl.LSN, error) {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				return pgctl.FlushLSN(ctx, dsn)
			})
			defer j.wal.close()
		}
		if err := j.pass(ctx, manifest.Live); err != nil {
			return err
		}
		if err := j.predictDowntime(ctx, s); err != nil {
			return err
		}
		faults.BeforeStop()
		j.serverStep(ServerStopping, "stopping the server with %s", ctl)
		stoppedAt = time.Now()
		if err := ctl.Stop(ctx); err != nil {
			if up, _, _ := pgctl.ServerRunning(j.src.dir); up {
				return fmt.Errorf("failed to stop the server (it is still running; nothing was copied): %w", err)
			}
			return j.restartAfter(s, ctl, stoppedAt, fmt.Errorf("failed to stop the server: %w", err))
		}
		j.timings.StopSeconds = time.Since(stoppedAt).Seconds()
		j.res.Stopped = true
		j.serverStep(ServerStopped, "server stopped")
	} else {
		j.step("the server on SRC is not running")
		if j.opts.ColdPass == ColdWAL {
			j.fallback = &fallback{"not_running", "the server was not running: no CHECKPOINT of this run marks where its WAL starts"}
		}
	}

	err = j.coldPass(ctx)
	return j.restartAfter(s, ctl, stoppedAt, err)
}

// restartAfter starts the server again when asked to, also after a failure,
// and accounts the downtime.
func (j *job) restartAfter(s *ServerOptions, ctl pgctl.Controller, stoppedAt time.Time, err error) error {
	if s.Restart {
		// A cancelled job must still bring the server back.
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		faults.BeforeRestart()
		j.serverStep(ServerStarting, "starting the server with %s", ctl)
		t := time.Now()
		if serr := ctl.Start(ctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("failed to start the server again: %w", serr))
		} else {
			j.timings.StartSeconds = time.Since(t).Seconds()
			j.res.Restarted = true
			j.serverStep(ServerStarted, "server started")
		}
	} else if err != nil && j.res.Stopped {
		err = fmt.Errorf("%w (the source server is stopped: start it yourself, or use --restart)", err)
	}
	if !stoppedAt.IsZero() {
		j.res.Downtime = time.Since(stoppedAt)
		if p := j.res.Prediction; p != nil {
			j.step("downtime %.2fs, predicted %.2fs", j.res.Downtime.Seconds(), p.Downtime.Seconds())
		}
	}
	if err == nil && j.res.Stopped {
		// The next prediction starts from these.
		old := j.dst.Timings(context.Background())
		if j.timings.StartSeconds == 0 {
			j.timings.StartSeconds = old.StartSeconds
		}
		j.timings.When = time.Now()
		if werr := j.dst.SaveTimings(context.Background(), j.timings); werr != nil {
			j.warn("could not record the server's stop and start times: %v", werr)
		}
	}
	return err
}

// predictDowntime predicts the downtime before the stop and refuses to
// stop when it exceeds the budget.
func (j *job) predictDowntime(ctx context.Context, s *ServerOptions) error {
	cfg := j.senderConfig(manifest.Cold)
	cfg.DryRun, cfg.Quiet, cfg.Observer = true, true, pass.NopObserver{}
	est, _, err := sender.Run(ctx, cfg, j.dst, j.header)
	if err != nil {
		return err
	}
	pred, perr := predict(j.header, est.BytesRead, j.dst.Timings(ctx), s.Restart)
	if perr == nil {
		j.res.Prediction = pred
		j.step("predicted downtime %s", pred)
	}
	switch {
	case s.MaxDowntime <= 0:
		return nil
	case perr != nil:
		return &BudgetError{Budget: s.MaxDowntime}
	case pred.Downtime > s.MaxDowntime:
		return &BudgetError{Budget: s.MaxDowntime, Prediction: pred}
	}
	return nil
}

func (j *job) checkpoint(ctx context.Context, s *ServerOptions, pm *pgctl.Postmaster) bool {
	dsn := s.DSN
	if dsn == "" {
		dsn = pgctl.DefaultDSN(pm, j.src.owner.Name)
	}
	j.step("CHECKPOINT, so that the pages in shared buffers are on disk before the last live pass")
	if err := pgctl.Checkpoint(ctx, dsn); err != nil {
		j.warn("CHECKPOINT skipped, the shutdown may take longer: %v (give --dsn to connect as a superuser)", err)
		return false
	}
	return true
}

func (j *job) coldPass(ctx context.Context) error {
	if up, pm, err := pgctl.ServerRunning(j.src.dir); err != nil {
		return err
	} else if up {
		return fmt.Errorf("a server (pid %d) is still running on SRC: the cold pass needs it stopped", pm.PID)
	}
	cd, err := readControl(j.src.dir, j.src.pgVersion)
	if err != nil {
		return err
	}
	if !cd.CleanlyShutDown() {
		if !j.opts.AllowCrashed {
			return errCrashed(cd)
		}
		j.warn("copying a cluster that was not shut down cleanly (its pg_control says %q): the copy will run crash recovery when it starts", cd.State)
	}
	j.src.control = cd
	if j.opts.ColdPass == ColdWAL && j.fallback == nil {
		plan, fb := j.wal.plan(ctx, cd, func() ([]pass.Entry, error) { return pass.Walk(j.src.dir, j.opts.excluder()) })
		if fb != nil {
			j.fallback = fb
		} else {
			j.plan = plan
			j.step("WAL-guided cold pass: the WAL from %s to the shutdown checkpoint names %d blocks", j.wal.redo, plan.BlocksPlanned)
		}
	}
	j.res.ColdPassMode = j.opts.ColdPass
	if j.opts.ColdPass == ColdWAL {
		if fb := j.fallback; fb != nil {
			j.res.ColdPassMode, j.res.FallbackReason = ColdChecksum, fb.reason
			j.warn("the cold pass reads every block (--cold-pass=wal falls back to checksum): %s", fb.detail)
		}
	}
	return j.pass(ctx, manifest.Cold)
}
