package sync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/faults"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
)

// The order of Finish and Sync, without PostgreSQL: a fake cluster whose
// pg_control is a real one (PostgreSQL 15, shut down), a fake server that
// "runs" while SRC/postmaster.pid names this test's own process, a fake
// controller that removes and writes that file, and a fake CHECKPOINT. The
// job's steps are recorded in one journal, in the order they happen.

// journal records the job's steps, from the fakes and from the observer.
type journal struct {
	mu    stdsync.Mutex
	steps []string
	warns []string
	// at is called with each step as it is recorded (to interrupt there).
	at func(step string)
}

func (l *journal) add(step string) {
	l.mu.Lock()
	l.steps = append(l.steps, step)
	at := l.at
	l.mu.Unlock()
	if at != nil {
		at(step)
	}
}

func (l *journal) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.steps)
}

func (l *journal) Event(e Event) {
	switch e.Kind {
	case PassStarted:
		l.add(e.Pass.String() + " pass")
	case Step:
		switch {
		case strings.HasPrefix(e.Msg, "predicted downtime"):
			l.add("prediction")
		case strings.HasPrefix(e.Msg, "sealed the copy"):
			l.add("seal")
		}
	case Warning:
		l.mu.Lock()
		l.warns = append(l.warns, e.Msg)
		l.mu.Unlock()
	}
}

func (l *journal) Progress(int64, int64) {}

// fakeServer is a source server: it runs while SRC/postmaster.pid names
// this process.
type fakeServer struct {
	dir string
	t   *testing.T
}

func (s fakeServer) up() {
	s.t.Helper()
	pid := fmt.Sprintf("%d\n%s\n1700000000\n5432\n/run/fake\n\n  1 2\nready   \n", os.Getpid(), s.dir)
	must(s.t, os.WriteFile(filepath.Join(s.dir, "postmaster.pid"), []byte(pid), 0o600))
}

func (s fakeServer) down() {
	if err := os.Remove(filepath.Join(s.dir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.t.Fatal(err)
	}
}

func (s fakeServer) damage() {
	must(s.t, os.WriteFile(filepath.Join(s.dir, "postmaster.pid"), []byte("12"), 0o600))
}

func (s fakeServer) running() bool {
	st := pgctl.ReadServerState(s.dir)
	return st.Running
}

// fakeController stops and starts a fakeServer, as a library user's
// Controller would.
type fakeController struct {
	srv      fakeServer
	log      *journal
	stopErr  error
	startErr error
	stays    bool // the stop leaves the server running
	noStart  bool // the start does not bring it up
	damages  bool // the stop leaves a damaged postmaster.pid
	// during runs while the stop or the start runs; ctxErr records
	// whether the context they were given was cancelled after it.
	during func(what string)
	ctxErr []error
}

func (c *fakeController) Stop(ctx context.Context) error {
	c.log.add("stop")
	if c.during != nil {
		c.during("stop")
	}
	c.ctxErr = append(c.ctxErr, ctx.Err())
	switch {
	case c.damages:
		c.srv.damage()
	case !c.stays:
		c.srv.down()
	}
	return c.stopErr
}

func (c *fakeController) Start(ctx context.Context) error {
	c.log.add("start")
	if c.during != nil {
		c.during("start")
	}
	c.ctxErr = append(c.ctxErr, ctx.Err())
	if !c.noStart && c.startErr == nil {
		c.srv.up()
	}
	return c.startErr
}

func (c *fakeController) String() string { return "the fake controller" }

// ExpectedTimes: the prediction assumes these before it measured any.
func (c *fakeController) ExpectedTimes() (stop, start time.Duration) {
	return 300 * time.Millisecond, 700 * time.Millisecond
}

// fakeCheckpointer records the CHECKPOINT; checkErr fails its check, err
// the CHECKPOINT itself; during runs while it runs.
type fakeCheckpointer struct {
	log      *journal
	checkErr error
	err      error
	during   func()
	checked  int
}

func (c *fakeCheckpointer) Check(ctx context.Context) (string, error) {
	c.checked++
	return "connected the fake way", c.checkErr
}

func (c *fakeCheckpointer) Checkpoint(ctx context.Context) error {
	c.log.add("checkpoint")
	if c.during != nil {
		c.during()
	}
	if ctx.Err() != nil {
		return fmt.Errorf("failed to run CHECKPOINT: %w", ctx.Err())
	}
	return c.err
}

func (c *fakeCheckpointer) String() string { return "the fake checkpointer" }

// jobFixture is a fake cluster with a running fake server, a DEST, and the
// fakes of a job on them.
type jobFixture struct {
	t      *testing.T
	src    string
	dest   string
	srv    fakeServer
	log    *journal
	ctl    *fakeController
	ck     *fakeCheckpointer
	ctx    context.Context
	cancel context.CancelFunc
}

func newJobFixture(t *testing.T) *jobFixture {
	t.Helper()
	src := fakeCluster(t)
	control, err := os.ReadFile(filepath.Join("..", "pgctl", "testdata", "pgcontrol", "15-stopped"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(src, "global", "pg_control"), control, 0o600))
	f := &jobFixture{t: t, src: src, dest: filepath.Join(t.TempDir(), "copy"), srv: fakeServer{dir: src, t: t}, log: &journal{}}
	f.srv.up()
	f.ctl = &fakeController{srv: f.srv, log: f.log}
	f.ck = &fakeCheckpointer{log: f.log}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	t.Cleanup(f.cancel)
	return f
}

func (f *jobFixture) options() Options {
	return Options{Source: f.src, Dest: f.dest, Jobs: 2, Observer: f.log}
}

func (f *jobFixture) server(restart bool) ServerOptions {
	return ServerOptions{Controller: f.ctl, Checkpointer: f.ck, Restart: restart}
}

func (f *jobFixture) finish(s ServerOptions) (*Result, error) {
	return Finish(f.ctx, f.options(), s)
}

// interruptAt cancels the job's context when the journal records step.
func (f *jobFixture) interruptAt(step string) {
	f.log.at = func(s string) {
		if s == step {
			f.cancel()
		}
	}
}

func (f *jobFixture) steps(t *testing.T, what string, want ...string) {
	t.Helper()
	if got := f.log.list(); !slices.Equal(got, want) {
		t.Errorf("%s: the job's steps are %q, want %q", what, got, want)
	}
}

func (f *jobFixture) destSealed() bool { return sealed(f.dest) }

func (f *jobFixture) destExists() bool {
	_, err := os.Lstat(f.dest)
	return err == nil
}

// TestFinishOrder: CHECKPOINT, the live pass after it, the prediction, the
// stop, the cold pass and its seal, the start, in that order; the copy is
// sealed, the server runs again, the result says so.
func TestFinishOrder(t *testing.T) {
	f := newJobFixture(t)
	res, err := f.finish(f.server(true))
	if err != nil {
		t.Fatalf("finish --restart on a running server: %v", err)
	}
	f.steps(t, "finish --restart", "checkpoint", "live pass", "prediction", "stop", "cold pass", "seal", "start")
	if f.ck.checked != 1 {
		t.Errorf("the CHECKPOINT's connection is checked once, before DEST is touched; checked %d times", f.ck.checked)
	}
	if !res.Stopped || !res.Restarted || !f.srv.running() || !f.destSealed() {
		t.Errorf("stopped %v, restarted %v, server running %v, copy sealed %v: want all true", res.Stopped, res.Restarted, f.srv.running(), f.destSealed())
	}
	if !res.Server.Running || res.Server.PM.PID != os.Getpid() {
		t.Errorf("the result says the server's state as read at the end: %s", res.Server)
	}
	if p := res.Prediction; p == nil || p.Stop != 300*time.Millisecond || p.Start != 700*time.Millisecond {
		t.Errorf("before any stop was measured, the prediction assumes the controller's own times (0.3 s, 0.7 s): %+v", p)
	}
	if res.Downtime <= 0 {
		t.Errorf("the downtime is measured from the stop to the end of the start: %v", res.Downtime)
	}
	if !slices.Equal(f.ctl.ctxErr, []error{nil, nil}) {
		t.Errorf("the stop and the start get a context that nothing cancels: %v", f.ctl.ctxErr)
	}

	// Again, without --restart: the server stays down, and the timings of
	// the first run replace the controller's guesses.
	f.log.steps = nil
	f.srv.up()
	res, err = f.finish(f.server(false))
	if err != nil {
		t.Fatal(err)
	}
	f.steps(t, "finish", "checkpoint", "live pass", "prediction", "stop", "cold pass", "seal")
	if res.Restarted || f.srv.running() || res.Server.Running {
		t.Errorf("finish without --restart leaves the server stopped: restarted %v, running %v", res.Restarted, f.srv.running())
	}
	if p := res.Prediction; p == nil || p.Stop == 300*time.Millisecond || p.Start != 0 {
		t.Errorf("the second prediction uses the measured stop, and no start without --restart: %+v", p)
	}
}

// TestSyncOrder: sync's live passes come before the CHECKPOINT; a server
// that is down already is not stopped, and with --restart it is started.
func TestSyncOrder(t *testing.T) {
	f := newJobFixture(t)
	if _, err := Sync(f.ctx, f.options(), f.server(false)); err != nil {
		t.Fatal(err)
	}
	got := f.log.list()
	i := slices.Index(got, "checkpoint")
	if i < 1 || !slices.Equal(got[i:], []string{"checkpoint", "live pass", "prediction", "stop", "cold pass", "seal"}) || got[0] != "live pass" {
		t.Errorf("sync: live passes, then CHECKPOINT, live pass, prediction, stop, cold pass, seal; got %q", got)
	}

	f.log.steps = nil
	res, err := Sync(f.ctx, f.options(), f.server(true))
	if err != nil {
		t.Fatal(err)
	}
	f.steps(t, "sync --restart on a stopped server", "live pass", "cold pass", "seal", "start")
	if res.Stopped || !res.Restarted || !f.srv.running() {
		t.Errorf("sync --restart of a stopped server starts it, without stopping it: stopped %v, restarted %v", res.Stopped, res.Restarted)
	}
}

// TestFinishBudgetRefusal: a prediction over --max-downtime ends the job
// before the stop (BudgetError, exit status 3), the server running.
func TestFinishBudgetRefusal(t *testing.T) {
	f := newJobFixture(t)
	s := f.server(true)
	s.MaxDowntime = time.Nanosecond
	res, err := f.finish(s)
	var be *BudgetError
	if !errors.As(err, &be) || be.Prediction == nil {
		t.Fatalf("a predicted downtime over the budget is a BudgetError with the prediction: %v", err)
	}
	f.steps(t, "over the budget", "checkpoint", "live pass", "prediction")
	if res.Stopped || !f.srv.running() || f.destSealed() {
		t.Errorf("over the budget the server is not stopped and the copy stays unsealed: stopped %v, running %v, sealed %v", res.Stopped, f.srv.running(), f.destSealed())
	}
	if !strings.Contains(err.Error(), "the source server was not stopped: it runs, pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("the error says the server's state as read: %v", err)
	}
}

// TestFinishFailures: each way the stop, the cold pass and the start fail,
// with and without --restart: what runs after, the server's state, and
// what the error says of it, read from the server.
func TestFinishFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart bool
		setup   func(f *jobFixture)
		steps   []string
		errHas  []string
		running bool
		sealed  bool
	}{
		{name: "stop fails, the server still up", restart: true,
			setup: func(f *jobFixture) { f.ctl.stopErr, f.ctl.stays = errors.New("pg_ctl: boom"), true },
			steps: []string{"checkpoint", "live pass", "prediction", "stop"},
			errHas: []string{"failed to stop the server with the fake controller; nothing was copied: pg_ctl: boom",
				"(the source server was not stopped: it runs, pid"},
			running: true},
		{name: "stop says it succeeded, the server still up", restart: false,
			setup:   func(f *jobFixture) { f.ctl.stays = true },
			steps:   []string{"checkpoint", "live pass", "prediction", "stop"},
			errHas:  []string{"failed to stop the server", "the stop said it succeeded", "it runs, pid"},
			running: true},
		{name: "stop fails, the server down, --restart", restart: true,
			setup:   func(f *jobFixture) { f.ctl.stopErr = errors.New("systemctl: unit failed") },
			steps:   []string{"checkpoint", "live pass", "prediction", "stop", "start"},
			errHas:  []string{"though it is down; nothing was copied: systemctl: unit failed", "(the source server runs again: pid"},
			running: true},
		{name: "stop fails, the server down, no --restart", restart: false,
			setup:  func(f *jobFixture) { f.ctl.stopErr = errors.New("systemctl: unit failed") },
			steps:  []string{"checkpoint", "live pass", "prediction", "stop"},
			errHas: []string{"though it is down", "(the source server is stopped: start it yourself, or use --restart)"}},
		{name: "stop leaves a damaged postmaster.pid", restart: true,
			setup:  func(f *jobFixture) { f.ctl.damages = true },
			steps:  []string{"checkpoint", "live pass", "prediction", "stop"},
			errHas: []string{"cannot tell whether it is down", "did not start the server again: cannot tell whether one runs", "check it with pg_ctl status"}},
		{name: "cold pass fails, --restart", restart: true,
			setup:   func(f *jobFixture) { f.coldReadFails("pg_xact/0000") },
			steps:   []string{"checkpoint", "live pass", "prediction", "stop", "cold pass", "start"},
			errHas:  []string{"pg_xact/0000", "input/output error", "(the source server runs again: pid"},
			running: true},
		{name: "cold pass fails, no --restart", restart: false,
			setup:  func(f *jobFixture) { f.coldReadFails("pg_xact/0000") },
			steps:  []string{"checkpoint", "live pass", "prediction", "stop", "cold pass"},
			errHas: []string{"input/output error", "(the source server is stopped: start it yourself, or use --restart)"}},
		{name: "start fails", restart: true,
			setup:  func(f *jobFixture) { f.ctl.startErr = errors.New("pg_ctl: could not start server") },
			steps:  []string{"checkpoint", "live pass", "prediction", "stop", "cold pass", "seal", "start"},
			errHas: []string{"failed to start the server again: pg_ctl: could not start server", "(the source server is stopped: start it yourself)"},
			sealed: true},
		{name: "start says it succeeded, no server runs", restart: true,
			setup:  func(f *jobFixture) { f.ctl.noStart = true },
			steps:  []string{"checkpoint", "live pass", "prediction", "stop", "cold pass", "seal", "start"},
			errHas: []string{"started the server again with the fake controller, but it does not run: stopped", "start it yourself"},
			sealed: true},
		{name: "CHECKPOINT fails", restart: true,
			setup:   func(f *jobFixture) { f.ck.err = errors.New("FATAL: terminating connection") },
			steps:   []string{"checkpoint"},
			errHas:  []string{"the CHECKPOINT before the stop cannot run, so the server was not stopped: FATAL", "(the source server was not stopped: it runs"},
			running: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newJobFixture(t)
			tc.setup(f)
			res, err := f.finish(f.server(tc.restart))
			if err == nil {
				t.Fatalf("%s: finish must fail", tc.name)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s: the error says %q:\n%v", tc.name, s, err)
				}
			}
			f.steps(t, tc.name, tc.steps...)
			if f.srv.running() != tc.running {
				t.Errorf("%s: afterwards the server runs: %v, want %v", tc.name, f.srv.running(), tc.running)
			}
			if f.destSealed() != tc.sealed {
				t.Errorf("%s: the copy is sealed: %v, want %v", tc.name, f.destSealed(), tc.sealed)
			}
			if res.Restarted && !f.srv.running() {
				t.Errorf("%s: the result says restarted, but the server is down", tc.name)
			}
		})
	}
}

// coldReadFails makes reads of rel fail with EIO in the cold pass only
// (from the stop on).
func (f *jobFixture) coldReadFails(rel string) {
	var cold bool
	var mu stdsync.Mutex
	prev := f.log.at
	f.log.at = func(s string) {
		if s == "stop" {
			mu.Lock()
			cold = true
			mu.Unlock()
		}
		if prev != nil {
			prev(s)
		}
	}
	faults.Hooks.BeforeRead = func(path string) error {
		mu.Lock()
		defer mu.Unlock()
		if cold && strings.HasSuffix(path, rel) {
			return syscall.EIO
		}
		return nil
	}
	f.t.Cleanup(func() { faults.Hooks.BeforeRead = nil })
}

// TestFinishInterrupts: an interrupt (the context cancelled) at each step.
// Before the stop the server keeps running; a stop or a start in progress
// runs to its end with a context nothing cancels; from the stop on, with
// --restart, the server is started again; after the seal has begun the job
// completes. The error is ErrInterrupted and says the server's state.
func TestFinishInterrupts(t *testing.T) {
	for _, tc := range []struct {
		at      string // the step during which the interrupt comes
		restart bool
		steps   []string
		errHas  string // "" when the job completes
		running bool
		sealed  bool
	}{
		{"checkpoint", true, []string{"checkpoint"}, "CHECKPOINT interrupted (the source server was not stopped: it runs", true, false},
		{"live pass", true, []string{"checkpoint", "live pass"}, "live pass after the CHECKPOINT interrupted (the source server was not stopped: it runs", true, false},
		{"stop", true, []string{"checkpoint", "live pass", "prediction", "stop", "start"}, "interrupted while the server was stopping: the stop was let finish, and nothing was copied (the source server runs again: pid", true, false},
		{"stop", false, []string{"checkpoint", "live pass", "prediction", "stop"}, "interrupted while the server was stopping: the stop was let finish, and nothing was copied (the source server is stopped: start it yourself, or use --restart)", false, false},
		{"cold pass", true, []string{"checkpoint", "live pass", "prediction", "stop", "cold pass", "start"}, "cold pass interrupted (the source server runs again: pid", true, false},
		{"cold pass", false, []string{"checkpoint", "live pass", "prediction", "stop", "cold pass"}, "cold pass interrupted (the source server is stopped: start it yourself, or use --restart)", false, false},
		{"seal", true, []string{"checkpoint", "live pass", "prediction", "stop", "cold pass", "seal", "start"}, "", true, true},
		{"seal", false, []string{"checkpoint", "live pass", "prediction", "stop", "cold pass", "seal"}, "", false, true},
		{"start", true, []string{"checkpoint", "live pass", "prediction", "stop", "cold pass", "seal", "start"}, "", true, true},
	} {
		name := tc.at
		if tc.restart {
			name += " --restart"
		}
		t.Run(name, func(t *testing.T) {
			f := newJobFixture(t)
			switch tc.at {
			case "checkpoint":
				f.ck.during = f.cancel
			case "stop", "start":
				f.ctl.during = func(what string) {
					if what == tc.at {
						f.cancel()
					}
				}
			case "seal":
				faults.Hooks.Phase = func(p string) {
					if p == "seal" {
						f.cancel()
					}
				}
				t.Cleanup(func() { faults.Hooks.Phase = nil })
			default:
				f.interruptAt(tc.at)
			}
			res, err := f.finish(f.server(tc.restart))
			f.steps(t, name, tc.steps...)
			if tc.errHas == "" {
				if err != nil {
					t.Errorf("%s: an interrupt once the seal has begun lets the job complete: %v", name, err)
				}
				if tc.at == "seal" && !slices.ContainsFunc(f.log.warns, func(w string) bool { return strings.Contains(w, "the seal completed") }) {
					t.Errorf("%s: a warning says the interrupt came too late: %q", name, f.log.warns)
				}
			} else {
				if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("%s: the error is ErrInterrupted and says %q:\n%v", name, tc.errHas, err)
				}
			}
			for i, e := range f.ctl.ctxErr {
				if e != nil {
					t.Errorf("%s: the stop or start %d ran with a cancelled context (%v): it must run to its end", name, i, e)
				}
			}
			if f.srv.running() != tc.running || f.destSealed() != tc.sealed {
				t.Errorf("%s: server running %v (want %v), copy sealed %v (want %v)", name, f.srv.running(), tc.running, f.destSealed(), tc.sealed)
			}
			if res == nil || res.Restarted != (tc.restart && slices.Contains(tc.steps, "start")) {
				t.Errorf("%s: the result says restarted=%v", name, res != nil && res.Restarted)
			}
		})
	}
}

// TestFinishFailsClosed: a postmaster.pid that cannot be read is "a server
// may be running": finish refuses it (InputError, exit status 2) before
// DEST is created, stops nothing and connects to nothing.
func TestFinishFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  string
	}{
		{"half-written", "12"},
		{"empty", ""},
		{"garbage", "postgres\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newJobFixture(t)
			must(t, os.WriteFile(filepath.Join(f.src, "postmaster.pid"), []byte(tc.pid), 0o600))
			_, err := f.finish(f.server(true))
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), "cannot tell whether a server runs on "+f.src) || !strings.Contains(ie.Hint, "pg_ctl status") {
				t.Errorf("%s postmaster.pid: an InputError that says it cannot tell, with a hint: %v", tc.name, err)
			}
			if f.destExists() || len(f.log.list()) > 0 || f.ck.checked > 0 {
				t.Errorf("%s postmaster.pid: nothing is created, stopped or connected to: dest %v, steps %q, checks %d", tc.name, f.destExists(), f.log.list(), f.ck.checked)
			}
			_, err = Verify(f.ctx, f.options())
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), "cannot tell whether a server runs") {
				t.Errorf("%s postmaster.pid: verify refuses it too: %v", tc.name, err)
			}
		})
	}
}

// TestFinishRefusals: refusals before DEST is touched: --no-stop while
// the server runs, and a CHECKPOINT that cannot connect, with the hint of
// --dsn and --no-checkpoint; --no-checkpoint then stops without one.
func TestFinishRefusals(t *testing.T) {
	f := newJobFixture(t)
	s := f.server(true)
	s.NoStop, s.Controller = true, nil
	_, err := f.finish(s)
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "--no-stop was given") || f.destExists() {
		t.Errorf("--no-stop on a running server is refused before DEST is made: %v", err)
	}

	f.ck.checkErr = errors.New(`FATAL: Peer authentication failed for user "postgres"`)
	_, err = f.finish(f.server(true))
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "Peer authentication failed") ||
		!strings.Contains(ie.Hint, "--dsn") || !strings.Contains(ie.Hint, "--no-checkpoint") || f.destExists() {
		t.Errorf("a CHECKPOINT that cannot connect is refused before DEST is made, with the hint of --dsn and --no-checkpoint: %v (hint %q)", err, hintOf(err))
	}
	if len(f.log.list()) > 0 {
		t.Errorf("nothing ran: %q", f.log.list())
	}

	s = f.server(true)
	s.Checkpointer, s.NoCheckpoint = nil, true
	if _, err := f.finish(s); err != nil {
		t.Fatal(err)
	}
	f.steps(t, "--no-checkpoint", "live pass", "prediction", "stop", "cold pass", "seal", "start")

	for _, bad := range []ServerOptions{
		{NoCheckpoint: true, DSN: "host=/x"},
		{Controller: f.ctl, SystemdUnit: "postgresql@15-main"},
		{Checkpointer: f.ck, DSN: "host=/x"},
	} {
		if _, err := f.finish(bad); !errors.As(err, &ie) {
			t.Errorf("%+v: conflicting options are refused: %v", bad, err)
		}
	}
}

func hintOf(err error) string {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie.Hint
	}
	return ""
}

// TestFinishDryRun: --dry-run checks the CHECKPOINT's connection and says
// so, stops and starts nothing, and seals nothing.
func TestFinishDryRun(t *testing.T) {
	f := newJobFixture(t)
	var said []string
	o := f.options()
	o.DryRun = true
	o.Observer = observerFunc(func(e Event) {
		if e.Kind == Step {
			said = append(said, e.Msg)
		}
	})
	if _, err := Finish(f.ctx, o, f.server(true)); err != nil {
		t.Fatal(err)
	}
	if f.ck.checked != 1 || len(f.log.list()) != 0 || f.destSealed() {
		t.Errorf("a dry run checks the connection once and runs nothing: checks %d, steps %q", f.ck.checked, f.log.list())
	}
	want := []string{"the CHECKPOINT before the stop would run: connected the fake way", "would CHECKPOINT and stop the server with the fake controller", "would start the server with the fake controller"}
	for _, w := range want {
		if !slices.Contains(said, w) {
			t.Errorf("a dry run says %q; it said %q", w, said)
		}
	}
	f.ck.checkErr = errors.New("connection refused")
	if _, err := Finish(f.ctx, o, f.server(true)); hintOf(err) == "" {
		t.Errorf("a dry run whose connection fails is refused as the real run would be: %v", err)
	}
}

type observerFunc func(Event)

func (f observerFunc) Event(e Event)       { f(e) }
func (observerFunc) Progress(int64, int64) {}

// fakePrograms writes shell scripts into a directory of their own, put
// first on PATH, and returns the file their calls are appended to.
func fakePrograms(t *testing.T, scripts map[string]string) (bin, calls string) {
	t.Helper()
	bin = t.TempDir()
	calls = filepath.Join(t.TempDir(), "calls")
	for name, body := range scripts {
		script := "#!/bin/sh\necho \"" + name + " $*\" >> " + calls + "\n" + body
		must(t, os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755))
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	return bin, calls
}

// serverScript is the body of a fake pg_ctl or pg_ctlcluster: stop removes
// SRC/postmaster.pid, start writes one that names this test's process.
func serverScript(src string) string {
	return fmt.Sprintf(`for a in "$@"; do
  case "$a" in
  --version) echo "pg_ctl (PostgreSQL) 15.4"; exit 0;;
  stop) rm -f %[1]s/postmaster.pid; exit 0;;
  start) printf '%[2]d\n%[1]s\n1700000000\n5432\n/run/fake\n\n  1 2\nready   \n' > %[1]s/postmaster.pid; exit 0;;
  esac
done
exit 1
`, src, os.Getpid())
}

func readCalls(t *testing.T, calls string) []string {
	t.Helper()
	b, err := os.ReadFile(calls)
	must(t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestFinishWithPgCtl: a cluster that no postgresql-common manages is
// stopped with pg_ctl stop -m fast and started with the options of
// postmaster.opts, its log where the running server's stderr went (never a
// file of pgtwopass's choosing), pg_ctl being the one of the cluster's
// version (a fake here, found through PGTWOPASS_BINDIR).
func TestFinishWithPgCtl(t *testing.T) {
	f := newJobFixture(t)
	t.Setenv("PG_CLUSTER_CONF_ROOT", t.TempDir()) // no Debian cluster
	bin, calls := fakePrograms(t, map[string]string{"pg_ctl": serverScript(f.src), "pg_lsclusters": "exit 1\n"})
	t.Setenv("PGTWOPASS_BINDIR", bin)
	must(t, os.WriteFile(filepath.Join(f.src, "postmaster.opts"), []byte(`/usr/lib/postgresql/15/bin/postgres "-D" "`+f.src+`" "-p" "5433" "-c" "work_mem=8MB"`+"\n"), 0o600))
	var said []string
	o := f.options()
	o.Observer = observerFunc(func(e Event) {
		if e.Kind == Step || e.Kind == Warning {
			said = append(said, e.Msg)
		}
	})
	res, err := Finish(f.ctx, o, ServerOptions{Checkpointer: f.ck, Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	got := readCalls(t, calls)
	var stop, start string
	for _, c := range got {
		switch {
		case strings.HasPrefix(c, "pg_ctl stop"):
			stop = c
		case strings.HasPrefix(c, "pg_ctl start"):
			start = c
		}
	}
	if stop != "pg_ctl stop -D "+f.src+" -m fast -w -t 3600" {
		t.Errorf("the stop is pg_ctl stop -m fast, waiting up to an hour: %q", got)
	}
	if !strings.HasPrefix(start, "pg_ctl start -D "+f.src+" -w -t 3600 -l ") || !strings.HasSuffix(start, ` -o '-p' '5433' '-c' 'work_mem=8MB'`) ||
		strings.Contains(start, "pgtwopass-server") {
		t.Errorf("the start reuses postmaster.opts and logs where the server did: %q", start)
	}
	if !res.Stopped || !res.Restarted || !f.srv.running() || !f.destSealed() {
		t.Errorf("stopped %v, restarted %v, running %v, sealed %v", res.Stopped, res.Restarted, f.srv.running(), f.destSealed())
	}
	if !slices.ContainsFunc(said, func(s string) bool { return strings.HasPrefix(s, "the restarted server: its ") }) {
		t.Errorf("the log says where the restarted server logs: %q", said)
	}
}

// TestFinishDebianCluster: a cluster of postgresql-common (its
// postgresql.conf's data_directory is SRC) is stopped and started with
// pg_ctlcluster VERSION NAME, and the log says which way and why.
func TestFinishDebianCluster(t *testing.T) {
	f := newJobFixture(t)
	root := t.TempDir()
	conf := filepath.Join(root, "15", "main")
	must(t, os.MkdirAll(conf, 0o755))
	must(t, os.WriteFile(filepath.Join(conf, "postgresql.conf"), []byte("data_directory = '"+f.src+"'\n"), 0o644))
	t.Setenv("PG_CLUSTER_CONF_ROOT", root)
	_, calls := fakePrograms(t, map[string]string{
		"pg_ctlcluster": serverScript(f.src),
		"pg_lsclusters": "exit 1\n", // too old for --json: the configuration is read
		"systemctl":     "exit 3\n", // where systemd runs, the unit is not active
	})
	var said []string
	o := f.options()
	o.Observer = observerFunc(func(e Event) {
		if e.Kind == Step || e.Kind == Warning {
			said = append(said, e.Msg)
		}
	})
	s := ServerOptions{Checkpointer: f.ck, Restart: true, StartLog: "/x.log"}
	if _, err := Finish(f.ctx, o, s); err != nil {
		t.Fatal(err)
	}
	var ctl []string
	for _, c := range readCalls(t, calls) {
		if strings.HasPrefix(c, "pg_ctlcluster") {
			ctl = append(ctl, c)
		}
	}
	want := []string{"pg_ctlcluster --skip-systemctl-redirect -m fast 15 main stop", "pg_ctlcluster --skip-systemctl-redirect -m fast 15 main start"}
	if !slices.Equal(ctl, want) {
		t.Errorf("a Debian cluster is stopped and started with pg_ctlcluster: %q, want %q", ctl, want)
	}
	for _, w := range []string{
		"SRC is Debian cluster 15/main of postgresql-common: stopping and starting it with pg_ctlcluster 15 main (Debian cluster 15/main), as ",
		"--start-log is left unused: pg_ctlcluster 15 main (Debian cluster 15/main) logs where the cluster's configuration says",
		"the restarted server: its log where the cluster's configuration says: /var/log/postgresql/postgresql-15-main.log",
	} {
		if !slices.ContainsFunc(said, func(s string) bool { return strings.HasPrefix(s, w) }) {
			t.Errorf("the log says %q; it said %q", w, said)
		}
	}
}

// lingeringStop is a way to stop the server whose stop has nothing left to
// do once postmaster.pid is gone (pgctl.StopsWithServer, as pg_ctl's), but
// returns only when released (or after 5 s), as pg_ctl -w returns up to
// 100 ms after the server is down; err is what it returns then.
type lingeringStop struct {
	*fakeController
	release chan struct{}
	err     error
}

func (c *lingeringStop) StopsWithServer() {}

func (c *lingeringStop) Stop(ctx context.Context) error {
	c.log.add("stop")
	c.srv.down()
	select {
	case <-c.release:
	case <-time.After(5 * time.Second):
	}
	c.log.add("stop returned")
	return c.err
}

// TestFinishGoesOnOnceTheServerIsDown: with a way whose stop ends with the
// server, the cold pass begins once postmaster.pid is gone, without waiting
// for the stop command to return; the start, and the end of the job, wait
// for it, and its failure is reported.
func TestFinishGoesOnOnceTheServerIsDown(t *testing.T) {
	for _, restart := range []bool{true, false} {
		f := newJobFixture(t)
		ctl := &lingeringStop{fakeController: f.ctl, release: make(chan struct{})}
		f.log.at = func(s string) {
			if s == "seal" {
				close(ctl.release)
			}
		}
		s := f.server(restart)
		s.Controller = ctl
		res, err := f.finish(s)
		if err != nil {
			t.Fatalf("finish (restart %v): %v", restart, err)
		}
		want := []string{"checkpoint", "live pass", "prediction", "stop", "cold pass", "seal", "stop returned"}
		if restart {
			want = append(want, "start")
		}
		f.steps(t, fmt.Sprintf("the cold pass runs once the server is down, the start after the stop returned (restart %v)", restart), want...)
		if !res.Stopped || res.Restarted != restart || !f.destSealed() {
			t.Errorf("stopped %v, restarted %v, sealed %v", res.Stopped, res.Restarted, f.destSealed())
		}
	}

	// A stop that fails after the server went down: the copy is sealed (the
	// server was down), and the failure is the job's error.
	f := newJobFixture(t)
	ctl := &lingeringStop{fakeController: f.ctl, release: make(chan struct{}), err: errors.New("pg_ctl: exit status 1")}
	f.log.at = func(s string) {
		if s == "seal" {
			close(ctl.release)
		}
	}
	s := f.server(true)
	s.Controller = ctl
	if _, err := f.finish(s); err == nil || !strings.Contains(err.Error(), "failed after the server went down") || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("a stop that fails once the server is down is reported: %v", err)
	}
	if !f.srv.running() || !f.destSealed() {
		t.Errorf("with --restart the server runs again after a stop that failed (%v), and the copy made while it was down is sealed (%v)", f.srv.running(), f.destSealed())
	}
}
