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

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// progressUI draws a progress bar per pass on stderr, and a line that counts
// the downtime while the source server is down. It is used only when stderr
// is a terminal, or with --progress.
//
// Log lines and bars share the terminal: while bars are drawn, log lines go
// through mpb's writer, which prints them above the bars at its next refresh
// (it erases the bars, prints the lines, draws the bars again), so neither
// garbles the other. The bars live in one mpb container, made at the first
// pass or stop and shut down by close, before anything is printed on stdout.
type progressUI struct {
	out   io.Writer
	force bool // --progress: draw on out even when it is not a terminal
	quick bool // --cold-pass quick: the cold pass skips files too

	mu      sync.Mutex // guards p, passes and downBar; never held by a decorator
	p       *mpb.Progress
	passes  int
	downBar *mpb.Bar

	cur       atomic.Pointer[passBar] // the running pass, nil between passes
	downSince atomic.Int64            // Unix ns when the stop was issued; 0 while up
	phase     atomic.Int32            // phaseUp, phaseStopping, phaseDown, phaseStarting
}

// passBar is the state of one pass's bar; its decorators read only atomics.
type passBar struct {
	bar            *mpb.Bar
	kind           manifest.PassKind
	n              int
	upperBound     bool // Total counts files the pass may skip: the ETA is an upper bound
	started        time.Time
	total          atomic.Int64
	read, written  atomic.Int64
	finished       atomic.Bool
	elapsed        atomic.Int64 // ns the pass took, once finished
}

// newProgressUI returns the progress display that --progress and
// --no-progress ask for, or nil for none. Without either flag it draws only
// when stderr is a terminal.
func newProgressUI(c *cli.Context) (*progressUI, error) {
	on, off := c.Bool("progress"), c.Bool("no-progress")
	if on && off {
		return nil, usagef("--progress and --no-progress contradict each other: give one")
	}
	if off {
		return nil, nil
	}
	if !on && !isTerminal(c.App.ErrWriter) {
		return nil, nil
	}
	return &progressUI{out: c.App.ErrWriter, force: on && !isTerminal(c.App.ErrWriter), quick: c.String("cold-pass") == "quick"}, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// container returns the mpb container, making it on first use. u.mu is held.
func (u *progressUI) container() *mpb.Progress {
	if u.p == nil {
		opts := []mpb.ContainerOption{mpb.WithOutput(u.out), mpb.WithRefreshRate(200 * time.Millisecond)}
		if u.force {
			// Not a terminal: draw anyway, as on a terminal of 100 columns.
			opts = append(opts, mpb.ForceTTY(), mpb.WithWidth(100))
		}
		u.p = mpb.New(opts...)
	}
	return u.p
}

// Write prints a log line: above the bars while they are drawn, else
// straight to the output.
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

// Sync is for zapcore.WriteSyncer.
func (u *progressUI) Sync() error { return nil }

// passStarted adds the bar of a new pass; total is the bytes it reads at most.
func (u *progressUI) passStarted(kind manifest.PassKind, total int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.abortPass()
	u.passes++
	pb := &passBar{kind: kind, n: u.passes, started: time.Now(), upperBound: kind == manifest.Live || u.quick}
	pb.total.Store(total)
	name := fmt.Sprintf("%s pass %d ", kind, pb.n)
	pb.bar = u.container().New(0, mpb.BarStyle(),
		mpb.BarPriority(pb.n), // under the downtime line
		mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(decor.Name(name)),
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

// passFinished completes the running pass's bar: drawn full once, then removed.
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

// Phases of the downtime line.
const (
	phaseUp int32 = iota
	phaseStopping
	phaseDown
	phaseStarting
)

// serverPhase follows the server through a stop and a start. The downtime
// line appears when the stop command is issued (where the engine starts
// counting the downtime) and goes away once the server has started again.
func (u *progressUI) serverPhase(phase int32, at time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if phase == phaseUp {
		u.downSince.Store(0)
		u.phase.Store(phaseUp)
		if u.downBar != nil {
			u.downBar.Abort(true)
			u.downBar = nil
		}
		return
	}
	if u.downSince.Load() == 0 {
		if phase == phaseStarting {
			return // starting a server that pgtwopass did not stop: no downtime to count
		}
		u.downSince.Store(at.UnixNano())
	}
	u.phase.Store(phase)
	if u.downBar == nil {
		u.downBar = u.container().New(0, mpb.NopStyle(),
			mpb.BarPriority(0), // on top
			mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return u.downText(time.Now()) })),
		)
	}
}

// close erases the bars and stops drawing; log lines go straight to the
// output from then on. Safe to call more than once.
func (u *progressUI) close() {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.abortPass()
	if u.downBar != nil {
		u.downBar.Abort(true)
		u.downBar = nil
	}
	if u.p != nil {
		u.p.Wait()
		u.p = nil
	}
}

// text is what follows the bar: bytes, rate, written, ETA.
func (pb *passBar) text(now time.Time) string {
	read, total, written := pb.read.Load(), pb.total.Load(), pb.written.Load()
	elapsed := now.Sub(pb.started)
	if pb.finished.Load() {
		elapsed = time.Duration(pb.elapsed.Load())
	}
	s := fmt.Sprintf(" %s / %s", bytesHuman(read), bytesHuman(total))
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(read) / secs
	}
	s += fmt.Sprintf("  %s/s  wrote %s", bytesHuman(int64(rate)), bytesHuman(written))
	switch {
	case pb.finished.Load():
		s += "  done in " + shortDuration(elapsed)
	case rate <= 0 || elapsed < 500*time.Millisecond:
		s += "  ETA --"
	default:
		eta := time.Duration(float64(max(total-read, 0)) / rate * float64(time.Second))
		if pb.upperBound {
			s += "  ETA ≤" + shortDuration(eta)
		} else {
			s += "  ETA " + shortDuration(eta)
		}
	}
	return s
}

// downText is the downtime line.
func (u *progressUI) downText(now time.Time) string {
	ns := u.downSince.Load()
	if ns == 0 {
		return ""
	}
	since := time.Unix(0, ns)
	s := fmt.Sprintf("server down %s (since %s)", shortDuration(now.Sub(since)), since.Format("15:04:05"))
	switch u.phase.Load() {
	case phaseStopping:
		s += ": stopping"
	case phaseStarting:
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
