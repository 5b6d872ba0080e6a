package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/pgtwopass/pgtwopass/internal/human"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// progressSetting is --progress, --no-progress or neither.
type progressSetting int

const (
	progressAuto progressSetting = iota // on a terminal only
	progressOn
	progressOff
)

// progressUI shows the progress of each pass (bytes, rate, what was
// written, ETA) and, from the stop of the source server to its restart, the
// downtime so far, on stderr. It is on when stderr is a terminal, or with
// --progress; --no-progress turns it off.
//
// On a terminal of known width it draws a bar per pass with mpb. Log lines
// and bars share stderr: while the container exists, log lines go through
// mpb's writer, which prints them above the bars at its next refresh (it
// erases the bars, prints the lines, draws the bars again), so neither
// garbles the other. The container is made at the first pass or stop and
// shut down by close, which flushes the log lines still pending, before
// anything is printed on stdout.
//
// Elsewhere (a pipe, a file, a terminal without a size as under script) it
// prints one plain line per second while a pass runs or the server is down.
type progressUI struct {
	// config
	out   io.Writer
	lines bool          // one plain line per second instead of bars
	every time.Duration // between plain lines
	quick bool          // --cold-pass quick: the cold pass skips files too

	// state
	mu     sync.Mutex // guards p, passes, down, ticker and writes to out; never held by a decorator
	p      *mpb.Progress
	passes int
	down   *downLine     // the downtime line, from the stop on
	ticker chan struct{} // closed to stop the plain lines
	closed bool

	cur atomic.Pointer[passBar] // the running pass, nil between passes
}

// passBar is one pass's bar; its decorator reads only atomics and the
// rate meter.
type passBar struct {
	bar        *mpb.Bar // nil for plain lines
	kind       manifest.PassKind
	n          int
	upperBound bool // the pass may skip files: the total and the ETA are upper bounds
	started    time.Time
	total      atomic.Int64
	read       atomic.Int64
	written    atomic.Int64
	finished   atomic.Bool
	elapsed    atomic.Int64 // ns the pass took, once finished
	meter      rateMeter
}

// downLine is the downtime line; its decorator reads only atomics.
type downLine struct {
	bar   *mpb.Bar     // nil for plain lines
	since time.Time    // when the stop command was issued: where the engine starts counting
	phase atomic.Int32 // a pgsync.ServerPhase
	until atomic.Int64 // Unix ns when the server was up again, or when pgtwopass ended; 0 before
}

// newProgressUI returns the progress display that the setting asks for on
// stderr, or nil for none.
func newProgressUI(stderr io.Writer, s progressSetting) *progressUI {
	tty := isTerminal(stderr)
	if s == progressOff || (s == progressAuto && !tty) {
		return nil
	}
	return &progressUI{out: stderr, lines: terminalWidth(stderr) == 0, every: time.Second}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// terminalWidth is w's width in columns, 0 when it is not a terminal or
// has no size.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		return 0
	}
	return width
}

// start makes the mpb container, or starts the plain lines, on first use.
// u.mu is held.
func (u *progressUI) start() {
	switch {
	case u.closed:
	case u.lines && u.ticker == nil:
		u.ticker = make(chan struct{})
		go u.tick(u.ticker)
	case !u.lines && u.p == nil:
		u.p = mpb.New(mpb.WithConsoleWriter(&terminalWriter{out: u.out}), mpb.WithRefreshRate(200*time.Millisecond))
	}
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
		u.passStarted(e.Pass, e.Total, time.Now())
	case pgsync.PassFinished:
		u.passFinished()
	case pgsync.Step:
		if e.Server != pgsync.ServerUnchanged {
			u.serverPhase(e.Server, time.Now())
		}
	}
}

// passStarted adds the bar of a new pass; total is the bytes it reads at most.
func (u *progressUI) passStarted(kind manifest.PassKind, total int64, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.abortPass()
	u.passes++
	pb := &passBar{kind: kind, n: u.passes, started: now, upperBound: kind == manifest.Live || u.quick}
	pb.total.Store(total)
	u.start()
	if u.p != nil {
		pb.bar = u.p.New(0, mpb.BarStyle(),
			mpb.BarPriority(1+pb.n), // under the downtime line
			mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Name(pb.name())),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return pb.text(time.Now()) })),
		)
		pb.bar.SetTotal(max(total, 1), false)
	}
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
	grown := false
	if t := pb.total.Load(); r > t && pb.total.CompareAndSwap(t, r) {
		grown = true
	}
	if pb.bar != nil {
		if grown {
			pb.bar.SetTotal(r, false)
		}
		pb.bar.IncrInt64(read)
	}
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
	if pb.bar != nil {
		pb.bar.SetTotal(-1, true)
	}
}

// abortPass removes the bar of a pass that did not finish. u.mu is held.
func (u *progressUI) abortPass() {
	if pb := u.cur.Swap(nil); pb != nil && pb.bar != nil {
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
		u.start()
		if u.p != nil {
			d.bar = u.p.New(0, mpb.NopStyle(),
				mpb.BarPriority(0), // on top
				mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return d.text(time.Now()) })),
			)
		}
		u.down = d
		return
	}
	if d == nil || d.until.Load() != 0 {
		return // starting a server that pgtwopass did not stop: no downtime to count
	}
	d.phase.Store(int32(phase))
	if phase == pgsync.ServerStarted {
		u.endDown(d, at)
	}
}

// endDown freezes the downtime line at t: a bar stays drawn; as plain
// lines, the downtime is printed once. u.mu is held.
func (u *progressUI) endDown(d *downLine, t time.Time) {
	d.until.Store(t.UnixNano())
	if d.bar != nil {
		d.bar.SetTotal(-1, true)
	} else if u.lines {
		fmt.Fprintln(u.out, d.text(t))
	}
}

// tick prints a plain line every u.every while a pass runs or the server
// is down, until stop is closed.
func (u *progressUI) tick(stop chan struct{}) {
	t := time.NewTicker(u.every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			u.mu.Lock()
			if line := u.plainLine(now); line != "" && !u.closed {
				fmt.Fprintln(u.out, line)
			}
			u.mu.Unlock()
		}
	}
}

// plainLine is the running pass and the downtime so far, in one line, or
// "" when there is neither. u.mu is held.
func (u *progressUI) plainLine(now time.Time) string {
	s := ""
	if pb := u.cur.Load(); pb != nil {
		s = pb.name() + ": " + pb.text(now)
	}
	if d := u.down; d != nil && d.until.Load() == 0 {
		if s != "" {
			s += "; "
		}
		s += d.text(now)
	}
	return s
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
	if u.closed {
		return
	}
	u.closed = true
	u.abortPass()
	if d := u.down; d != nil && d.until.Load() == 0 {
		u.endDown(d, time.Now())
	}
	if u.ticker != nil {
		close(u.ticker)
	}
	if u.p == nil {
		return
	}
	// The last render happens when the last bar completes, and it flushes
	// the log lines written before it; the container renders nothing more
	// once shut down. A bar completed here makes sure that render comes
	// after every line written so far (u.mu keeps new ones out).
	last := u.p.New(0, mpb.NopStyle(), mpb.BarRemoveOnComplete(), mpb.BarPriority(1<<30))
	last.SetTotal(-1, true)
	u.p.Wait()
	u.p = nil
	// The cursor is on the line after the last frame, where the terminal
	// may have echoed ^C: clear it for what comes next.
	io.WriteString(u.out, "\r\x1b[K")
}

// terminalWriter is mpb's ConsoleWriter for a terminal. mpb's own writes a
// frame, then moves the cursor up to the frame's first line and erases
// from there, ready for the next frame: the last frame is erased too, and
// a ^C that the terminal echoes (two columns right of the cursor) shifts
// the next frame, which leaves fragments such as "lilive pass". This one
// erases the previous frame just before it writes the next one, from a
// carriage return: the last frame stays on the screen, with the cursor on
// the line after it.
type terminalWriter struct {
	bytes.Buffer
	out     io.Writer
	pending int // lines of the frame on the screen, to erase before the next
}

func (w *terminalWriter) IsTerminal() bool { return true }

func (w *terminalWriter) GetTermSize() (int, int, error) {
	f, ok := w.out.(*os.File)
	if !ok {
		return progressWidth, 40, nil
	}
	return term.GetSize(int(f.Fd()))
}

func (w *terminalWriter) Flush(lines int) error {
	frame := make([]byte, 0, 16+w.Len())
	frame = append(frame, '\r')
	if w.pending > 0 {
		frame = fmt.Appendf(frame, "\x1b[%dA\x1b[J", w.pending)
	}
	frame = append(frame, w.Bytes()...)
	w.Reset()
	w.pending = lines
	_, err := w.out.Write(frame)
	return err
}

// progressWidth is the width of the bars when the output is not a file
// (in tests).
const progressWidth = 100

func (pb *passBar) name() string { return fmt.Sprintf("%s pass %d", pb.kind, pb.n) }

// etaWarmup is how long a pass runs before it shows an ETA: its first
// moment (listing files, opening them, the page cache) says little about
// its rate.
const etaWarmup = 2 * time.Second

// text is what follows a pass's bar: bytes read, rate, bytes written, ETA.
// The rate is measured over the last rateWindow; the ETA is the bytes left
// at that rate, shown after etaWarmup.
func (pb *passBar) text(now time.Time) string {
	read, total, written := pb.read.Load(), pb.total.Load(), pb.written.Load()
	elapsed := now.Sub(pb.started)
	finished := pb.finished.Load()
	if finished {
		elapsed = time.Duration(pb.elapsed.Load())
	}
	bound := ""
	if pb.upperBound {
		bound = "≤"
	}
	s := fmt.Sprintf("%s / %s%s", human.Bytes(read), bound, human.Bytes(total))
	rate, measured := pb.meter.rate(now, read)
	if finished || !measured {
		rate = 0
		if secs := elapsed.Seconds(); secs > 0 {
			rate = float64(read) / secs
		}
	}
	s += fmt.Sprintf("  %s/s  wrote %s", human.Bytes(int64(rate)), human.Bytes(written))
	switch {
	case finished:
		s += "  done in " + shortDuration(elapsed)
	case !measured || rate <= 0 || elapsed < etaWarmup:
		s += "  ETA --"
	default:
		eta := time.Duration(float64(max(total-read, 0)) / rate * float64(time.Second))
		s += "  ETA " + bound + shortDuration(eta)
	}
	return s
}

// rateWindow is the span over which the rate of a pass is measured.
const rateWindow = 5 * time.Second

// rateMeter measures a rate over the last rateWindow from samples of a
// growing count.
type rateMeter struct {
	mu      sync.Mutex
	samples []rateSample // oldest first
}

type rateSample struct {
	t time.Time
	n int64
}

// rate records n at now and returns the rate per second since the oldest
// sample within rateWindow (or just before it); measured is false until
// the samples span a second.
func (m *rateMeter) rate(now time.Time, n int64) (perSecond float64, measured bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := len(m.samples); k == 0 || now.Sub(m.samples[k-1].t) >= 100*time.Millisecond {
		m.samples = append(m.samples, rateSample{now, n})
	}
	// Keep one sample at or before the window's start.
	for len(m.samples) > 2 && now.Sub(m.samples[1].t) >= rateWindow {
		m.samples = m.samples[1:]
	}
	first := m.samples[0]
	span := now.Sub(first.t)
	if span < time.Second {
		return 0, false
	}
	return float64(n-first.n) / span.Seconds(), true
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
