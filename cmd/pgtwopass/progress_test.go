package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

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
	u := &progressUI{out: &out, force: true}
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
	var out lockedBuffer
	u := &progressUI{out: &out, force: true}
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopping})
	u.event(pgsync.Event{Kind: pgsync.Step, Server: pgsync.ServerStopped})
	u.close()
	u.close() // twice is harmless
	if got := out.String(); !strings.Contains(got, "it was not started again") {
		t.Errorf("a server left down is reported as such by the downtime line:\n%s", got)
	}
}

// TestProgressTexts pins the texts beside the bars.
func TestProgressTexts(t *testing.T) {
	start := time.Unix(1000, 0)
	pb := &passBar{kind: manifest.Live, n: 1, started: start, upperBound: true}
	pb.total.Store(100 << 20)
	pb.read.Store(25 << 20)
	pb.written.Store(1 << 20)
	if got, want := pb.text(start.Add(5*time.Second)), "25.0 MiB / ≤100.0 MiB  5.0 MiB/s  wrote 1.0 MiB  ETA ≤15.0s"; got != want {
		t.Errorf("a live pass shows bytes read of at most its total, the rate, what it wrote and an ETA that is an upper bound:\n got %q\nwant %q", got, want)
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
