package main

import (
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// TestInterruptReports: each signal is logged with what pgtwopass does
// about it, from the server's phase the engine last reported; while finish
// or sync may hold the server a second signal is held (reported, not
// obeyed), in other commands it is obeyed.
func TestInterruptReports(t *testing.T) {
	var lines []string
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(zapcore.EncoderConfig{MessageKey: "msg"}),
		zapcore.AddSync(writerFunc(func(p []byte) (int, error) {
			lines = append(lines, strings.TrimSpace(string(p)))
			return len(p), nil
		})), zap.DebugLevel)
	for _, tc := range []struct {
		phase   pgsync.ServerPhase
		holds   bool
		restart bool
		first   string
		again   string
		hold    bool
	}{
		{pgsync.ServerUnchanged, false, false, "interrupted by SIGINT: stopping at a clean point", "SIGINT again: exiting at once", false},
		{pgsync.ServerUnchanged, true, true, "interrupted by SIGINT: stopping at a clean point", "SIGINT again: stopping at a clean point (kill -9 would not wait)", true},
		{pgsync.ServerStopping, true, true, "interrupted by SIGINT: the server is stopping: waiting for the stop to complete; then nothing is copied, and the server is started again", "SIGINT again: the server is stopping", true},
		{pgsync.ServerStopping, true, false, "interrupted by SIGINT: the server is stopping: waiting for the stop to complete; then nothing is copied", "", true},
		{pgsync.ServerStopped, true, true, "interrupted by SIGINT: the cold pass stops at its next clean point (a seal that has begun completes); then the server is started again", "", true},
		{pgsync.ServerStopped, true, false, "interrupted by SIGINT: the cold pass stops at its next clean point (a seal that has begun completes); the server stays stopped", "", true},
		{pgsync.ServerStarting, true, true, "interrupted by SIGINT: already starting the server again; waiting for it", "SIGINT again: already starting the server again; waiting for it", true},
	} {
		lines = nil
		o := newLogObserver(zap.New(core), nil)
		o.holds.Store(tc.holds)
		o.restart.Store(tc.restart)
		if tc.phase != pgsync.ServerUnchanged {
			o.Event(pgsync.Event{Kind: pgsync.Step, Server: tc.phase, Msg: "step"})
		}
		if !o.interrupted(syscall.SIGINT, 1) {
			t.Errorf("phase %v: the first signal is always handled (the run's context is cancelled)", tc.phase)
		}
		hold := o.interrupted(syscall.SIGINT, 2)
		if hold != tc.hold {
			t.Errorf("phase %v, holds %v: a second signal held %v, want %v", tc.phase, tc.holds, hold, tc.hold)
		}
		got := strings.Join(lines, "\n")
		if !strings.Contains(got, tc.first) || !strings.Contains(got, tc.again) {
			t.Errorf("phase %v: the log says %q and %q; got\n%s", tc.phase, tc.first, tc.again, got)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
