package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/pgtwopass/pgtwopass/internal/human"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// progressUI draws a progress bar per pass on stderr (bytes, rate, what
// was written, ETA), and, from the stop of the source server to its
// restart, a line that counts the downtime. It is used when stderr is a
// terminal, or with --progress; --no-progress turns it off.
//
// Log lines and bars share stderr: while the container exists, log lines
// go through mpb's writer, which prints them above the bars at its next
// refresh (it erases the bars, prints the lines, draws the bars again), so
// neither garbles the other. The container is made at the first pass or
// stop and shut down by close, which flushes the log lines still pending,
// before anything is printed on stdout.
type progressUI struct {
	// config
	out   io.Writer
	force bool // --progress on a non-terminal: draw anyway
	quick bool // --cold-pass quick: the cold pass skips files too

	// state
	mu     sync.Mutex // guards p, passes and down; never held by a decorator
	p      *mpb.Progress
	passes int
	down   *downLine // the downtime line, from the stop on

	cur atomic.Pointer[passBar] // the running pass, nil between passes
}

// passBar is one pass's bar; its decorator reads only atomics.
type passBar struct {
	bar        *mpb.Bar
	kind       manifest.PassKind
	n          int
	upperBound bool // the pass may skip files: the total and the ETA are upper bounds
	started    time.Time
	total      atomic.Int64
	read       atomic.Int64
	written    atomic.Int64
	finished   atomic.Bool
	elapsed    atomic.Int64 // ns the pass took, once finished
}

// downLine is the downtime line; its decorator reads only atomics.
type downLine struct {
	bar   *mpb.Bar
	since time.Time    // when the stop command was issued: where the engine starts counting
	phase atomic.Int32 // a pgsync.ServerPhase
	until atomic.Int64 // Unix ns when the server was up again, or when pgtwopass ended; 0 before
}

// newProgressUI returns the progress display that --progress and
// --no-progress ask for, or nil for none. Without either flag it draws only
// when stderr is a terminal.
func newProgressUI(c *cli.Context) (*progressUI, error) {
	on, off := c.Bool("progress"), c.Bool("no-progress")
	if on && off {
		return nil, usagef("--progress and --no-progress contradict each other: give one")
	}
	tty := isTerminal(c.App.ErrWriter)
	if off || (!on && !tty) {
		return nil, nil
	}
	return &progressUI{out: c.App.ErrWriter, force: !tty, quick: c.String("cold-pass") == pgsync.ColdQuick}, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressWidth is the width of the display when stderr is not a terminal.
const progressWidth = 100

// container returns the mpb container, making it on first use. u.mu is held.
func (u *progressUI) container() *mpb.Progress {
	if u.p == nil {
		opts := []mpb.ContainerOption{mpb.WithOutput(u.out), mpb.WithRefreshRate(200 * time.Millisecond)}
		if u.force {
			// Not a terminal: draw anyway, at a fixed width. ForceTTY alone
			// does not refresh (mpb v8.16 would then buffer the log lines
			// and never print them): WithAutoRefresh is needed too.
			opts = append(opts, mpb.ForceTTY(), mpb.WithAutoRefresh(), mpb.WithWidth(progressWidth))
		}
		u.p = mpb.New(opts...)
	}
	return u.p
}

// Write prints a log line: above the bars while the container exists,
// else straight to the output. zap writes one entry per call.
func (u *progressUI) Write(b []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.p != nil {
		if n, err := u.p.Write(b); err == nil {
			return n, nil
		}
		// The container stopped by itself (a render error): write directly.
	}
	return u.out.Write(b)
}

// Sync is for zapcore.WriteSyncer; lines are flushed by the container.
func (u *progressUI) Sync() error { return nil }

// event follows the engine's events.
func (u *progressUI) event(e pgsync.Event) {
	switch e.Kind {
	case pgsync.PassStarted:
		u.passStarted(e.Pass, e.Total)
	case pgsync.PassFinished:
		u.passFinished()
	case pgsync.Step:
		if e.Server != pgsync.ServerUnchanged {
			u.serverPhase(e.Server, time.Now())
		}
	}
}

// passStarted adds the bar of a new pass; total is the bytes it reads at most.
func (u *progressUI) passStarted(kind manifest.PassKind, total int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.abortPass()
	u.passes++
	pb := &passBar{kind: kind, n: u.passes, started: time.Now(), upperBound: kind == manifest.Live || u.quick}
	pb.total.Store(total)
	pb.bar = u.container().New(0, mpb.BarStyle(),
		mpb.BarPriority(1+pb.n), // under the downtime line
		mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(decor.Name(fmt.Sprintf("%s pass %d", kind, pb.n))),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return pb.text(time.Now()) })),
	)
	pb.bar.SetTotal(max(total, 1), false)
	u.cur.Store(pb)
}

// progress adds bytes read and written by the running pass.
func (u *progressUI) progress(read, written int64) {
	pb := u.cur.Load()
	if pb == nil {
		return
	}
	r := pb.read.Add(read)
	pb.written.Add(written)
	// Reads of the copy (when the manifest cannot answer) count too, so a
	// pass may read more than its total: grow the total, never overflow it.
	if t := pb.total.Load(); r > t && pb.total.CompareAndSwap(t, r) {
		pb.bar.SetTotal(r, false)
	}
	pb.bar.IncrInt64(read)
}

// passFinished completes the running pass's bar: drawn full once, then
// removed (the log line says what the pass did).
func (u *progressUI) passFinished() {
	pb := u.cur.Swap(nil)
	if pb == nil {
		return
	}
	pb.elapsed.Store(int64(time.Since(pb.started)))
	pb.finished.Store(true)
	pb.bar.SetTotal(-1, true)
}

// abortPass removes the bar of a pass that did not finish. u.mu is held.
func (u *progressUI) abortPass() {
	if pb := u.cur.Swap(nil); pb != nil {
		pb.bar.Abort(true)
	}
}

// serverPhase follows the source server through a stop and a start. The
// downtime line appears when the stop command is issued (where the engine
// starts counting the downtime); once the server runs again it stays, with
// the downtime it measured.
func (u *progressUI) serverPhase(phase pgsync.ServerPhase, at time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	d := u.down
	if phase == pgsync.ServerStopping && (d == nil || d.until.Load() != 0) {
		d = &downLine{since: at}
		d.phase.Store(int32(phase))
		d.bar = u.container().New(0, mpb.NopStyle(),
			mpb.BarPriority(0), // on top
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return d.text(time.Now()) })),
		)
		u.down = d
		return
	}
	if d == nil || d.until.Load() != 0 {
		return // starting a server that pgtwopass did not stop: no downtime to count
	}
	d.phase.Store(int32(phase))
	if phase == pgsync.ServerStarted {
		d.end(at)
	}
}

// end freezes the downtime line at t and completes it: it stays drawn.
func (d *downLine) end(t time.Time) {
	d.until.Store(t.UnixNano())
	d.bar.SetTotal(-1, true)
}

// close draws the last frame, flushes the log lines still pending and
// stops drawing; log lines go straight to the output from then on. A
// server still down keeps its line, with the downtime so far. Safe to call
// more than once, and on nil.
func (u *progressUI) close() {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.p == nil {
		return
	}
	u.abortPass()
	if d := u.down; d != nil && d.until.Load() == 0 {
		d.end(time.Now())
	}
	// The last render happens when the last bar completes, and it flushes
	// the log lines written before it; the container renders nothing more
	// once shut down. A bar completed here makes sure that render comes
	// after every line written so far (u.mu keeps new ones out).
	last := u.p.New(0, mpb.NopStyle(), mpb.BarRemoveOnComplete(), mpb.BarPriority(1<<30))
	last.SetTotal(-1, true)
	u.p.Wait()
	u.p = nil
}

// text is what follows a pass's bar: bytes read, rate, bytes written, ETA.
func (pb *passBar) text(now time.Time) string {
	read, total, written := pb.read.Load(), pb.total.Load(), pb.written.Load()
	elapsed := now.Sub(pb.started)
	if pb.finished.Load() {
		elapsed = time.Duration(pb.elapsed.Load())
	}
	bound := ""
	if pb.upperBound {
		bound = "≤"
	}
	s := fmt.Sprintf("%s / %s%s", human.Bytes(read), bound, human.Bytes(total))
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(read) / secs
	}
	s += fmt.Sprintf("  %s/s  wrote %s", human.Bytes(int64(rate)), human.Bytes(written))
	switch {
	case pb.finished.Load():
		s += "  done in " + shortDuration(elapsed)
	case rate <= 0 || elapsed < 500*time.Millisecond:
		s += "  ETA --"
	default:
		eta := time.Duration(float64(max(total-read, 0)) / rate * float64(time.Second))
		s += "  ETA " + bound + shortDuration(eta)
	}
	return s
}

// text is the downtime line.
func (d *downLine) text(now time.Time) string {
	if u := d.until.Load(); u != 0 {
		until := time.Unix(0, u)
		if pgsync.ServerPhase(d.phase.Load()) == pgsync.ServerStarted {
			return fmt.Sprintf("server was down %s (stopped %s, running again %s)",
				shortDuration(until.Sub(d.since)), d.since.Format("15:04:05"), until.Format("15:04:05"))
		}
		return fmt.Sprintf("server down since %s (%s so far); it was not started again",
			d.since.Format("15:04:05"), shortDuration(until.Sub(d.since)))
	}
	s := fmt.Sprintf("server down %s (since %s)", shortDuration(now.Sub(d.since)), d.since.Format("15:04:05"))
	switch pgsync.ServerPhase(d.phase.Load()) {
	case pgsync.ServerStopping:
		s += ": stopping"
	case pgsync.ServerStopped:
		s += ": cold pass"
	case pgsync.ServerStarting:
		s += ": starting"
	}
	return s
}

// shortDuration prints 0.4s, 12.3s, 4m05s, 2h03m.
func shortDuration(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
