package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// lockedBuffer is a bytes.Buffer safe for mpb's render goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ansi matches the cursor-up and erase sequences between frames.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// TestProgressKeepsEveryLogLine: log lines written while bars are drawn
// (even the last one, just before the display ends, and after the last bar
// completed) all reach the output, whole and in order.
func TestProgressKeepsEveryLogLine(t *testing.T) {
	var out lockedBuffer
	u := &progressUI{out: &out}
	var want []string
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		want = append(want, line)
		fmt.Fprintln(u, line)
	}
	logf("before any bar") // no container yet: straight to the output
	u.event(pgsync.Event{Kind: pgsync.PassStarted, Pass: manifest.Live, Total: 1 << 20})
	for i := range 20 {
		u.progress(1<<15, 1<<14)
		logf("log line %d during the live pass", i)
	}
	u.event(pgsync.Event{Kind: pgsync.PassFinished, Pass: manifest.Live})
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopping})
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopped})
	u.event(pgsync.Event{Kind: pgsync.PassStarted, Pass: manifest.Cold, Total: 1 << 20})
	u.progress(1<<20, 0)
	logf("during the cold pass")
	u.event(pgsync.Event{Kind: pgsync.PassFinished, Pass: manifest.Cold})
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStarting})
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStarted})
	logf("the last line, after every bar completed")
	u.close()
	logf("after the display ended")

	got := ansi.ReplaceAllString(out.String(), "")
	pos := 0
	for _, w := range want {
		i := strings.Index(got[pos:], w+"\n")
		if i < 0 {
			t.Fatalf("log lines are never lost nor garbled by the progress display: %q missing (or out of order) in\n%s", w, got)
		}
		pos += i + len(w)
	}
	if !strings.Contains(got, "live pass 1") || !strings.Contains(got, "cold pass 2") {
		t.Errorf("a bar is drawn for each pass (\"live pass 1\", \"cold pass 2\"):\n%s", got)
	}
	if !strings.Contains(got, "server was down ") {
		t.Errorf("after the restart the downtime line stays, with the downtime (\"server was down\"):\n%s", got)
	}
}

// TestProgressServerLeftDown: without a restart the downtime line ends
// with the server still down, and says so.
func TestProgressServerLeftDown(t *testing.T) {
	for _, lines := range []bool{false, true} {
		var out lockedBuffer
		u := &progressUI{out: &out, lines: lines, every: time.Hour}
		u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopping})
		u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopped})
		u.close()
		u.close() // twice is harmless
		if got := out.String(); !strings.Contains(got, "it was not started again") {
			t.Errorf("lines=%v: a server left down is reported as such by the downtime line:\n%s", lines, got)
		}
	}
}

// TestProgressTexts pins the texts beside the bars: no ETA during the
// warm-up, then one from the rate of the last seconds, not from the
// average since the start.
func TestProgressTexts(t *testing.T) {
	start := time.Unix(1000, 0)
	pb := &passBar{kind: manifest.Live, n: 1, started: start, upperBound: true}
	pb.total.Store(100 << 20)
	at := func(d time.Duration, read int64) string {
		pb.read.Store(read)
		return pb.text(start.Add(d))
	}
	pb.written.Store(1 << 20)
	// A slow start (listing and opening files): 1 MiB in the first second.
	if got := at(0, 0); !strings.HasSuffix(got, "ETA --") {
		t.Errorf("no ETA at the start of a pass: %q", got)
	}
	if got := at(time.Second, 1<<20); !strings.HasSuffix(got, "ETA --") {
		t.Errorf("no ETA during the warm-up (%v): %q", etaWarmup, got)
	}
	// Then 10 MiB/s.
	for s := 2; s <= 6; s++ {
		at(time.Duration(s)*time.Second, int64(1<<20+(s-1)*10<<20))
	}
	got := at(7*time.Second, 61<<20)
	if want := "61.0 MiB / ≤100.0 MiB  10.0 MiB/s  wrote 1.0 MiB  ETA ≤3.9s"; got != want {
		t.Errorf("after the warm-up, the rate of the last seconds and the ETA at that rate (an upper bound for a live pass):\n got %q\nwant %q", got, want)
	}
	pb.elapsed.Store(int64(8 * time.Second))
	pb.finished.Store(true)
	if got := at(8*time.Second, 100<<20); got != "100.0 MiB / ≤100.0 MiB  12.5 MiB/s  wrote 1.0 MiB  done in 8.0s" {
		t.Errorf("a finished pass shows its average rate and its time: %q", got)
	}

	d := &downLine{since: start}
	d.phase.Store(int32(pgsync.ServerStopped))
	if got := d.text(start.Add(1500 * time.Millisecond)); !strings.HasPrefix(got, "server down 1.5s (since ") || !strings.HasSuffix(got, ": cold pass") {
		t.Errorf("while the server is down the line counts the downtime and names the step: %q", got)
	}
	for d, want := range map[time.Duration]string{400 * time.Millisecond: "0.4s", 245 * time.Second: "4m05s", 2*time.Hour + 3*time.Minute: "2h03m"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestProgressPlainLines: without a terminal size, --progress prints one
// plain line per tick while a pass runs or the server is down, and the
// downtime once the server runs again; no control sequences.
func TestProgressPlainLines(t *testing.T) {
	var out lockedBuffer
	u := &progressUI{out: &out, lines: true, every: 20 * time.Millisecond}
	u.event(pgsync.Event{Kind: pgsync.PassStarted, Pass: manifest.Cold, Total: 1 << 20})
	u.progress(1<<19, 1<<10)
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopping})
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopped})
	fmt.Fprintln(u, "a log line")
	time.Sleep(150 * time.Millisecond)
	u.event(pgsync.Event{Kind: pgsync.PassFinished, Pass: manifest.Cold})
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStarted})
	u.close()
	got := out.String()
	if strings.Contains(got, "\x1b") || strings.Contains(got, "\r") {
		t.Errorf("plain lines have no control sequences: %q", got)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "cold pass 1: 512.0 KiB / 1.0 MiB  ") && strings.Contains(l, "; server down ") {
			n++
		}
	}
	if n < 2 || n > 8 {
		t.Errorf("one line per tick (20ms) for 150ms, with the pass and the downtime so far; got %d:\n%s", n, got)
	}
	if !slicesContainsFunc(lines, func(l string) bool { return l == "a log line" }) {
		t.Errorf("log lines are printed whole:\n%s", got)
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "server was down ") {
		t.Errorf("the last line is the downtime, once the server runs again: %q", last)
	}
}

func slicesContainsFunc(s []string, f func(string) bool) bool {
	for _, x := range s {
		if f(x) {
			return true
		}
	}
	return false
}

// TestProgressModes: bars on a terminal with a size; plain lines with
// --progress into a pipe, and on a terminal without a size (under script);
// nothing into a pipe without --progress, nor with --no-progress.
func TestProgressModes(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if u := newProgressUI(w, progressAuto); u != nil {
		t.Errorf("into a pipe, no progress without --progress")
	}
	if u := newProgressUI(w, progressOn); u == nil || !u.lines {
		t.Errorf("into a pipe, --progress prints plain lines: %+v", u)
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if u := newProgressUI(tty, progressAuto); u == nil || !u.lines {
		t.Errorf("on a terminal without a size, plain lines: %+v", u)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	if u := newProgressUI(tty, progressAuto); u == nil || u.lines {
		t.Errorf("on a terminal with a size, bars: %+v", u)
	}
	if u := newProgressUI(tty, progressOff); u != nil {
		t.Errorf("--no-progress shows nothing, also on a terminal")
	}
}

// screen is a terminal as far as the progress display needs one: text,
// carriage return, newline, cursor up (CSI n A), erase below (CSI J) and
// erase to the end of the line (CSI K). The tty echoes ^C with echo.
type screen struct {
	mu       sync.Mutex
	rows     [][]rune
	row, col int
}

var csi = regexp.MustCompile(`^\x1b\[([0-9]*)([A-Za-z])`)

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	str := string(p)
	for len(str) > 0 {
		if m := csi.FindStringSubmatch(str); m != nil {
			n, _ := strconv.Atoi(m[1])
			switch m[2] {
			case "A":
				s.row = max(0, s.row-max(n, 1))
			case "J":
				s.line()
				s.rows[s.row] = s.rows[s.row][:min(s.col, len(s.rows[s.row]))]
				s.rows = s.rows[:s.row+1]
			case "K":
				s.line()
				s.rows[s.row] = s.rows[s.row][:min(s.col, len(s.rows[s.row]))]
			}
			str = str[len(m[0]):]
			continue
		}
		r := []rune(str)[0]
		str = str[len(string(r)):]
		switch r {
		case '\r':
			s.col = 0
		case '\n':
			s.row++
			s.col = 0
		default:
			s.line()
			for len(s.rows[s.row]) < s.col {
				s.rows[s.row] = append(s.rows[s.row], ' ')
			}
			if s.col < len(s.rows[s.row]) {
				s.rows[s.row][s.col] = r
			} else {
				s.rows[s.row] = append(s.rows[s.row], r)
			}
			s.col++
		}
	}
	return len(p), nil
}

// line makes the cursor's row exist. s.mu is held.
func (s *screen) line() {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
}

// echo is what the terminal does when the user types Ctrl-C.
func (s *screen) echo(text string) { s.Write([]byte(text)) }

func (s *screen) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.rows {
		if l := strings.TrimRight(string(r), " "); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestProgressCtrlC: the user presses Ctrl-C during a pass (the terminal
// echoes ^C where the cursor is); the pass ends with an error and the
// display is closed. What stays on the screen is whole lines: the log
// lines, the downtime, then the error; no fragment of a bar ("lilive
// pass", "^Clive pass") and no ^C before the error message.
func TestProgressCtrlC(t *testing.T) {
	scr := &screen{}
	u := &progressUI{out: scr}
	fmt.Fprintln(u, "12:00:00.000\tINFO\tlive pass started")
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopping})
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopped})
	u.event(pgsync.Event{Kind: pgsync.PassStarted, Pass: manifest.Cold, Total: 100 << 20})
	for range 5 {
		u.progress(1<<20, 0)
		time.Sleep(100 * time.Millisecond) // a few frames
	}
	scr.echo("^C")
	time.Sleep(450 * time.Millisecond) // frames drawn after the echo
	scr.echo("^C")
	u.close()
	fmt.Fprintln(scr, "pgtwopass: error: interrupted")

	got := scr.lines()
	want := []*regexp.Regexp{
		regexp.MustCompile(`^12:00:00\.000\tINFO\tlive pass started$`),
		regexp.MustCompile(`^server down since [0-9:]+ \([0-9.]+s so far\); it was not started again$`),
		regexp.MustCompile(`^pgtwopass: error: interrupted$`),
	}
	if len(got) != len(want) {
		t.Fatalf("after Ctrl-C the screen holds the log line, the downtime and the error, whole:\n%s", strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !w.MatchString(got[i]) {
			t.Errorf("line %d of the screen after Ctrl-C: %q, want %s\n%s", i+1, got[i], w, strings.Join(got, "\n"))
		}
	}
}
