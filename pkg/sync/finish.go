package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/faults"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/sync/sender"
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
	// Controller, when set, stops and starts the server: a library user's
	// own way. Without it (and the three above) a cluster of Debian's
	// postgresql-common is stopped and started with pg_ctlcluster or its
	// systemd unit, any other with pg_ctl as the data directory's owner.
	Controller pgctl.Controller
	// Restart starts the source again after the cold pass, also when the
	// cold pass failed or was interrupted, once the server was stopped.
	Restart bool
	// DSN is where to send the CHECKPOINT; "" derives it from
	// postmaster.pid. As root, connections to a unix socket are made as
	// the data directory's owner (pgctl.SQL).
	DSN string
	// Checkpointer, when set, sends the CHECKPOINT instead (a library
	// user's, or a test's).
	Checkpointer pgctl.Checkpointer
	// NoCheckpoint stops the server without a CHECKPOINT first: the
	// shutdown checkpoint then writes every dirty page while the server
	// is down.
	NoCheckpoint bool
	// StartLog is pg_ctl's -l when pgtwopass starts the server with pg_ctl;
	// "" keeps the log where the server's stderr goes now.
	StartLog string
	// MaxDowntime, when set, is the downtime budget: if the prediction
	// exceeds it, the server is not stopped (BudgetError).
	MaxDowntime time.Duration
}

func (s *ServerOptions) validate() error {
	switch {
	case s.NoStop && (s.StopCommand != "" || s.SystemdUnit != "" || s.Controller != nil):
		return inputErr("drop --no-stop, or drop --stop-command and --systemd-unit", "--no-stop conflicts with --stop-command and --systemd-unit: with --no-stop nothing is stopped")
	case s.SystemdUnit != "" && (s.StopCommand != "" || s.StartCommand != ""):
		return inputErr("use either --systemd-unit or --stop-command/--start-command", "--systemd-unit conflicts with --stop-command and --start-command")
	case s.Controller != nil && (s.SystemdUnit != "" || s.StopCommand != "" || s.StartCommand != ""):
		return inputErr("give either a Controller or --systemd-unit, --stop-command, --start-command", "a Controller conflicts with --systemd-unit, --stop-command and --start-command")
	case s.Restart && s.StopCommand != "" && s.StartCommand == "":
		return inputErr("give --start-command too, so that pgtwopass can start the server it stopped", "--restart with --stop-command needs --start-command")
	case s.NoCheckpoint && (s.DSN != "" || s.Checkpointer != nil):
		return inputErr("drop --no-checkpoint, or drop --dsn", "--no-checkpoint conflicts with --dsn: with --no-checkpoint nothing connects to the server")
	case s.Checkpointer != nil && s.DSN != "":
		return inputErr("give either a Checkpointer or --dsn", "a Checkpointer conflicts with --dsn")
	}
	return nil
}

// finisher runs the server's part of Finish and Sync, in this order: the
// CHECKPOINT, a catch-up live pass, the downtime prediction (and the
// budget), the stop, the cold pass and its seal, and with Restart the start.
//
// The rules it keeps:
//   - whether the server runs is read from its postmaster.pid each time it
//     matters, never assumed; a postmaster.pid that cannot be read counts
//     as "a server may be running" (refused, exit status 2);
//   - a stop or a start, once begun, runs to its end: an interrupt cancels
//     ctx, and the job stops at the next clean point after it;
//   - with Restart, a server that is down once the job ends is started
//     again, whatever ended the job;
//   - every error says, as read at the end, in what state the server is.
type finisher struct {
	// config
	s *ServerOptions

	// state
	j         *job
	ctl       pgctl.Controller   // nil unless the job may stop or start the server
	ck        pgctl.Checkpointer // nil with NoCheckpoint, or for a stopped server
	stoppedAt time.Time          // when the stop began; zero if the server was not stopped
	readyAt   time.Time          // when the restarted server accepted connections
	stopping  chan error         // the stop command, still running once the server was down; nil if none
	announced bool               // "server started" was said when it did
	phase     string             // what runs, for an interruption's message
}

// check runs in openJob, before DEST is opened: it refuses what the job
// would refuse later, so that a refusal touches nothing. It connects to a
// running server for its CHECKPOINT, and says whether that works.
func (f *finisher) check(ctx context.Context) func(*job) error {
	return func(j *job) error {
		f.j = j
		st, err := f.server()
		if err != nil {
			return err
		}
		if st.Running && f.s.NoStop {
			return errNoStopRunning(j.src)
		}
		if !st.Running && !j.opts.AllowCrashed && !j.src.control.CleanlyShutDown() {
			return errCrashed(j.src.control)
		}
		// A server that must be stopped or started with no way to do it
		// (no pg_ctl of its version) is refused here.
		if st.Running || f.s.Restart {
			if f.ctl, err = f.controller(ctx); err != nil {
				return err
			}
		}
		if st.Running {
			return f.checkCheckpoint(ctx, st)
		}
		return nil
	}
}

// server reads the source server's state now; an unreadable
// postmaster.pid is refused.
func (f *finisher) server() (pgctl.ServerState, error) {
	st := pgctl.ReadServerState(f.j.src.dir)
	if st.Err != nil {
		return st, errServerUnknown(f.j.src.dir, st.Err)
	}
	return st, nil
}

func errServerUnknown(dir string, err error) error {
	return inputErr("check whether a server runs on it (pg_ctl status -D DIR, ps); a postmaster.pid a crash left damaged may be removed once no postgres process uses the directory",
		"cannot tell whether a server runs on %s: %v", dir, err)
}

func errCrashed(cf *pgctl.ControlFile) error {
	return inputErr("start the server and stop it cleanly, or pass --allow-crashed to copy it as it is (PostgreSQL then runs crash recovery on the copy)",
		"the cluster in SRC was not shut down cleanly (its pg_control says %q)", cf.State)
}

func errNoStopRunning(src *source) error {
	return inputErr("stop the server first, or leave out --no-stop and let pgtwopass stop it",
		"the server on SRC %s is running and --no-stop was given", src.dir)
}

// checkCheckpoint makes the Checkpointer of the server st describes and
// checks that it connects as a role that may CHECKPOINT.
func (f *finisher) checkCheckpoint(ctx context.Context, st pgctl.ServerState) error {
	j, s := f.j, f.s
	if s.NoCheckpoint {
		return nil
	}
	f.ck = s.Checkpointer
	if f.ck == nil {
		dsn := s.DSN
		if dsn == "" {
			dsn = pgctl.DefaultDSN(st.PM, j.src.owner.Name)
		}
		f.ck = pgctl.NewSQL(dsn, j.src.owner)
	}
	msg, err := f.ck.Check(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("the check of the connection for the CHECKPOINT %w", ErrInterrupted)
		}
		return f.errCheckpoint(st, err)
	}
	verb := "will"
	if j.opts.DryRun {
		verb = "would"
	}
	j.step("the CHECKPOINT before the stop %s run: %s", verb, msg)
	return nil
}

func (f *finisher) errCheckpoint(st pgctl.ServerState, err error) error {
	example := "host=/var/run/postgresql user=postgres"
	if st.PM != nil {
		example = pgctl.DefaultDSN(st.PM, f.j.src.owner.Name)
	}
	return inputErr(fmt.Sprintf("give --dsn to connect as a role that may CHECKPOINT (e.g. --dsn '%s'), or --no-checkpoint to stop the server without it (its shutdown checkpoint then writes every dirty page while it is down: a longer downtime)", example),
		"the CHECKPOINT before the stop cannot run, so the server was not stopped: %v", err)
}

// run finishes the job that check was given.
func (f *finisher) run(ctx context.Context) (err error) {
	j, s := f.j, f.s
	st, err := f.server()
	if err != nil {
		return err
	}
	if st.Running && s.NoStop {
		return errNoStopRunning(j.src)
	}
	if (st.Running || s.Restart) && f.ctl == nil {
		// The server was down, without --restart, when the job began.
		if f.ctl, err = f.controller(ctx); err != nil {
			return err
		}
	}
	if j.opts.DryRun {
		return f.dryRun(ctx, st)
	}
	defer func() { err = f.end(ctx, err) }()
	if st.Running {
		if f.ck == nil && !s.NoCheckpoint {
			// It was down when the job began.
			if err := f.checkCheckpoint(ctx, st); err != nil {
				return err
			}
		}
		if err := f.checkpoint(ctx, st); err != nil {
			return err
		}
		if j.opts.ColdPass == ColdWAL {
			// From the CHECKPOINT's redo point on, the WAL names every
			// block that changes.
			var flush flushSource
			if sql, ok := f.ck.(*pgctl.SQL); ok {
				flush = sql.FlushWatcher()
			}
			j.wal, j.fallback = j.startWAL(f.ck != nil, flush)
			defer j.wal.close()
		}
		f.phase = "the live pass after the CHECKPOINT"
		if err := j.pass(ctx, manifest.Live); err != nil {
			return err
		}
		f.phase = "the downtime prediction"
		if err := f.predictDowntime(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w before the stop", ErrInterrupted)
		}
		faults.BeforeStop()
		if err := f.stop(ctx); err != nil {
			return err
		}
	} else {
		j.step("the server on SRC is not running")
		if j.opts.ColdPass == ColdWAL {
			j.fallback = &fallback{"not_running", "the server was not running: no CHECKPOINT of this run marks where its WAL starts"}
		}
	}
	f.phase = "the cold pass"
	return f.coldPass(ctx)
}

// controller returns how to stop and start the server, and logs which way
// it chose and where the restarted server logs.
func (f *finisher) controller(ctx context.Context) (pgctl.Controller, error) {
	j, s := f.j, f.s
	var ctl pgctl.Controller
	switch {
	case s.Controller != nil:
		ctl = s.Controller
	case s.SystemdUnit != "":
		ctl = pgctl.NewSystemd(s.SystemdUnit)
	case s.StopCommand != "" || s.StartCommand != "":
		ctl = pgctl.NewCommand(s.StopCommand, s.StartCommand)
	default:
		c, err := pgctl.FindDebianCluster(j.src.dir)
		if err != nil {
			j.warn("could not tell whether SRC is a cluster of postgresql-common (%v): using pg_ctl", err)
		}
		if c != nil {
			var why string
			var warn bool
			ctl, why, warn = pgctl.NewDebian(ctx, c)
			if warn {
				j.warn("SRC is %s of postgresql-common: stopping and starting it with %s, as %s", c, ctl, why)
			} else {
				j.step("SRC is %s of postgresql-common: stopping and starting it with %s, as %s", c, ctl, why)
			}
			if s.StartLog != "" {
				j.warn("--start-log is left unused: %s logs where the cluster's configuration says", ctl)
			}
			break
		}
		dir, err := j.src.pgCtlDir()
		if err != nil {
			return nil, err
		}
		if ctl, err = pgctl.NewPgCtl(dir, j.src.dir, j.src.owner, s.StartLog); err != nil {
			return nil, err
		}
	}
	if n, ok := ctl.(pgctl.LogNoter); ok && s.Restart {
		if note, warn := n.LogNote(); warn {
			j.warn("the restarted server: %s", note)
		} else {
			j.step("the restarted server: %s", note)
		}
	}
	return ctl, nil
}

func (f *finisher) dryRun(ctx context.Context, st pgctl.ServerState) error {
	j := f.j
	if st.Running {
		if f.ck != nil {
			j.step("would CHECKPOINT and stop the server with %s", f.ctl)
		} else {
			j.step("would stop the server with %s, without a CHECKPOINT", f.ctl)
		}
	}
	if err := j.pass(ctx, manifest.Cold); err != nil {
		return err
	}
	if f.s.Restart {
		j.step("would start the server with %s", f.ctl)
	}
	return nil
}

// checkpoint runs the CHECKPOINT: the pages that wait in shared buffers
// are written out while the server runs, a live pass right after it copies
// them, so the cold pass has little left to write, and its writes are the
// dirty rate from which the downtime is predicted. One that cannot run
// stops the job before the stop.
func (f *finisher) checkpoint(ctx context.Context, st pgctl.ServerState) error {
	j := f.j
	if f.ck == nil {
		j.step("no CHECKPOINT (--no-checkpoint): the server's shutdown checkpoint writes what waits in shared buffers")
		return nil
	}
	f.phase = "the CHECKPOINT"
	j.step("CHECKPOINT, so that the pages in shared buffers are on disk before the last live pass")
	if err := f.ck.Checkpoint(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("CHECKPOINT %w", ErrInterrupted)
		}
		return f.errCheckpoint(st, err)
	}
	return nil
}

// predictDowntime predicts the downtime before the stop and refuses to
// stop when it exceeds the budget.
func (f *finisher) predictDowntime(ctx context.Context) error {
	j, s := f.j, f.s
	cfg := j.senderConfig(manifest.Cold)
	cfg.DryRun, cfg.Quiet, cfg.Observer = true, true, pass.NopObserver{}
	// A WAL-guided cold pass reads what the WAL names so far (the blocks
	// changed until the stop add to it) and the WAL it has yet to read.
	var walLeft, blocks int64
	if j.wal != nil && j.fallback == nil {
		if es, err := pass.Walk(j.src.dir, j.opts.excluder()); err == nil {
			if plan, left := j.wal.estimate(es, j.src.control.RelSegSize); plan != nil {
				cfg.WAL, walLeft, blocks = j.wal.senderWAL(plan, j.opts.QuickMargin), left, plan.BlocksPlanned
			}
		}
	}
	est, _, err := sender.Run(ctx, cfg, j.dst, j.header)
	if err != nil {
		return err
	}
	est.BytesRead += walLeft
	timings := j.dst.Timings(ctx)
	if et, ok := f.ctl.(pgctl.ExpectedTimes); ok && timings.StopSeconds == 0 && timings.StartSeconds == 0 {
		stop, start := et.ExpectedTimes()
		timings.StopSeconds, timings.StartSeconds = stop.Seconds(), start.Seconds()
	}
	pred, perr := predict(j.header, est.BytesRead, timings, s.Restart)
	if perr == nil && cfg.WAL != nil {
		pred.WALBlocks, pred.WALBytes = blocks, walLeft
	}
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

// stop stops the server and reads whether it went down. An interrupt
// during the stop lets it finish, then ends the job before the cold pass.
func (f *finisher) stop(ctx context.Context) error {
	j := f.j
	f.phase = "the stop"
	j.serverStep(ServerStopping, "stopping the server with %s", f.ctl)
	f.stoppedAt = time.Now()
	err := f.stopAndWatch(ctx)
	took := time.Since(f.stoppedAt)
	st := pgctl.ReadServerState(j.src.dir)
	switch {
	case !st.Known():
		if err == nil {
			err = errors.New("it said it stopped")
		}
		return fmt.Errorf("stopped the server with %s (%w), but cannot tell whether it is down: %v; nothing was copied", f.ctl, err, st.Err)
	case st.Running:
		f.stoppedAt = time.Time{}
		j.serverStep(ServerStarted, "the server did not stop: it runs (pid %d)", st.PM.PID)
		if err == nil {
			err = errors.New("the stop said it succeeded")
		}
		return fmt.Errorf("failed to stop the server with %s; nothing was copied: %w", f.ctl, err)
	}
	j.res.Stopped = true
	j.serverStep(ServerStopped, "server stopped")
	if err != nil {
		return fmt.Errorf("failed to stop the server with %s, though it is down; nothing was copied: %w", f.ctl, err)
	}
	j.timings.StopSeconds = took.Seconds()
	if ctx.Err() != nil {
		return fmt.Errorf("%w while the server was stopping: the stop was let finish, and nothing was copied", ErrInterrupted)
	}
	return nil
}

// coldPass checks that the server is down and was shut down cleanly, and
// runs the cold pass, which seals the copy.
func (f *finisher) coldPass(ctx context.Context) error {
	j := f.j
	st, err := f.server()
	if err != nil {
		return err
	}
	if st.Running {
		return fmt.Errorf("a server (pid %d) is still running on SRC: the cold pass needs it stopped", st.PM.PID)
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
	j.planColdPass(ctx)
	return j.pass(ctx, manifest.Cold)
}

// end runs after the job, whatever ended it: the restart, the downtime,
// the timings for the next prediction, and the server's state in the error.
func (f *finisher) end(ctx context.Context, err error) error {
	j := f.j
	if err != nil && ctx.Err() != nil && !errors.Is(err, ErrInterrupted) && errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%s %w", f.phase, ErrInterrupted)
	}
	if serr := f.waitStop(); serr != nil {
		err = errors.Join(err, serr)
	}
	if f.s.Restart && f.ctl != nil {
		err = f.restart(ctx, err)
	}
	if !f.stoppedAt.IsZero() {
		j.res.Downtime = time.Since(f.stoppedAt)
		if j.res.Restarted {
			j.res.Downtime = f.readyAt.Sub(f.stoppedAt)
		}
		if p := j.res.Prediction; p != nil {
			j.step("downtime %.2fs, predicted %.2fs", j.res.Downtime.Seconds(), p.Downtime.Seconds())
		}
	}
	if err == nil && ctx.Err() != nil {
		j.warn("interrupted after the cold pass had begun to seal the copy: the seal completed, nothing was left to stop")
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
	j.res.Server = pgctl.ReadServerState(j.src.dir)
	if err != nil {
		err = fmt.Errorf("%w (%s)", err, f.stateNote(j.res.Server))
	}
	return err
}

// restart starts the server again if it is down, also after a failure or
// an interrupt; a start, once begun, runs to its end.
func (f *finisher) restart(ctx context.Context, err error) error {
	j := f.j
	st := pgctl.ReadServerState(j.src.dir)
	switch {
	case !st.Known():
		return errors.Join(err, fmt.Errorf("did not start the server again: cannot tell whether one runs on SRC: %v", st.Err))
	case st.Running && j.res.Stopped:
		j.serverStep(ServerStarted, "the server runs again (pid %d), started by someone else: not starting it", st.PM.PID)
		return err
	case st.Running:
		return err // it was never stopped
	}
	f.phase = "the start"
	faults.BeforeRestart()
	j.serverStep(ServerStarting, "starting the server with %s", f.ctl)
	t := time.Now()
	serr := f.startAndWatch(ctx)
	took := f.readyAt.Sub(t)
	after := pgctl.ReadServerState(j.src.dir)
	switch {
	case serr != nil:
		return errors.Join(err, fmt.Errorf("failed to start the server again: %w", serr))
	case !after.Running:
		return errors.Join(err, fmt.Errorf("started the server again with %s, but it does not run: %s", f.ctl, after))
	}
	j.timings.StartSeconds = took.Seconds()
	j.res.Restarted = true
	if !f.announced {
		j.serverStep(ServerStarted, "server started")
	}
	return err
}

// stopAndWatch stops the server and, for a way whose stop ends with the
// server (pgctl.StopsWithServer), watches its postmaster.pid meanwhile:
// the server is down when that is gone, which pg_ctl -w looks for every 100
// ms, and this every 10 ms. The stop command then left running is waited for
// before anything else runs on the server (waitStop).
func (f *finisher) stopAndWatch(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- f.ctl.Stop(context.WithoutCancel(ctx)) }()
	if _, ok := f.ctl.(pgctl.StopsWithServer); !ok {
		return <-done
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			// Gone, as a clean shutdown leaves it; a postmaster that died
			// and left it is pg_ctl's to judge.
			if st := pgctl.ReadServerState(f.j.src.dir); st.Known() && st.PM == nil {
				f.stopping = done
				return nil
			}
		}
	}
}

// waitStop waits for a stop command left running by stopAndWatch, and
// returns its error.
func (f *finisher) waitStop() error {
	if f.stopping == nil {
		return nil
	}
	err := <-f.stopping
	f.stopping = nil
	if err != nil {
		return fmt.Errorf("the stop with %s failed after the server went down: %w", f.ctl, err)
	}
	return nil
}

// startAndWatch starts the server and watches its postmaster.pid meanwhile,
// to note when it accepts connections (readyAt), the end of the downtime for
// its clients, and say so then. pg_ctl -w returns at that moment;
// pg_ctlcluster checks for two seconds more that it keeps accepting them.
func (f *finisher) startAndWatch(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- f.ctl.Start(context.WithoutCancel(ctx)) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	f.readyAt, f.announced = time.Time{}, false
	for {
		select {
		case err := <-done:
			if f.readyAt.IsZero() {
				f.readyAt = time.Now()
			}
			return err
		case <-tick.C:
			if f.readyAt.IsZero() && accepting(pgctl.ReadServerState(f.j.src.dir)) {
				f.readyAt, f.announced = time.Now(), true
				f.j.serverStep(ServerStarted, "server started")
			}
		}
	}
}

// accepting reports whether the server accepts connections: its
// postmaster.pid says "ready" (or "standby", a hot standby's).
func accepting(st pgctl.ServerState) bool {
	return st.Running && (st.PM.Status == "ready" || st.PM.Status == "standby")
}

// stateNote says, for an error, in what state the source server is, as
// read in st.
func (f *finisher) stateNote(st pgctl.ServerState) string {
	j := f.j
	switch {
	case !st.Known():
		return fmt.Sprintf("cannot tell whether the source server runs: %v; check it with pg_ctl status -D %s", st.Err, j.src.dir)
	case st.Running && j.res.Restarted:
		return fmt.Sprintf("the source server runs again: pid %d", st.PM.PID)
	case st.Running && j.res.Stopped:
		return fmt.Sprintf("the source server runs: pid %d", st.PM.PID)
	case st.Running:
		return fmt.Sprintf("the source server was not stopped: it runs, pid %d", st.PM.PID)
	case !j.res.Stopped:
		return "the source server is stopped"
	case f.s.Restart:
		return "the source server is stopped: start it yourself"
	}
	return "the source server is stopped: start it yourself, or use --restart"
}
