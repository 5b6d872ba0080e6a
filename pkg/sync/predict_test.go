package sync

import (
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// near fails unless got is within 1 ms of want.
func near(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if d := got - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("%s: predicted %v, want %v", what, got, want)
	}
}

func TestPredictFromLivePasses(t *testing.T) {
	s := int64(time.Second)
	ms := s / 1000
	t0 := int64(1_000_000) * s
	h := &manifest.Header{Passes: []manifest.Pass{
		// A first copy: 1000 MB read and written; its read rate is held up
		// by the writes and is not used.
		{Kind: manifest.Live, Started: t0, Finished: t0 + 7*s, BytesRead: 1e9, BytesWritten: 1e9, ReadNs: 2 * s, WriteNs: 4 * s},
		// Back-to-back live passes: 500 MB read at 1 GB/s and 2 GB/s; they
		// wrote 20 MB in the 7.1 s since the first copy started, then 10 MB
		// in the 2 s since the pass before started.
		{Kind: manifest.Live, Started: t0 + 7*s + 100*ms, Finished: t0 + 9*s, BytesRead: 5e8, BytesWritten: 2e7, ReadNs: s / 2, WriteNs: 50 * ms},
		{Kind: manifest.Live, Started: t0 + 9*s + 100*ms, Finished: t0 + 10*s, BytesRead: 5e8, BytesWritten: 1e7, ReadNs: s / 4, WriteNs: 20 * ms},
		// The catch-up pass after the CHECKPOINT: its 200 MB are the
		// checkpoint's backlog, written at 400 MB/s.
		{Kind: manifest.Live, Started: t0 + 11*s, Finished: t0 + 12*s, BytesRead: 6e8, BytesWritten: 2e8, ReadNs: 400 * ms, WriteNs: 500 * ms},
	}}
	now = func() time.Time { return time.Unix(0, t0+12*s) }
	defer func() { now = time.Now }()

	p, err := predict(h, 1e9, pass.ServerTimings{StopSeconds: 1.5, StartSeconds: 0.5}, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.ReadRate != 2e9 {
		t.Errorf("the read rate is the best of the recent passes that mostly read (2 GB/s), got %v", p.ReadRate)
	}
	// Dirty rate: 30 MB over the 7.1 s + 2 s between the starts of the back-to-back passes.
	if want := 3e7 / 9.1; p.DirtyRate < want*0.999 || p.DirtyRate > want*1.001 {
		t.Errorf("the dirty rate comes from back-to-back live passes, the catch-up pass left out: %v, want %v", p.DirtyRate, want)
	}
	// Writes: that rate over the 1 s since the catch-up pass started plus the 1.5 s stop.
	if want := int64(p.DirtyRate * 2.5); p.WriteBytes < want-1000 || p.WriteBytes > want+1000 {
		t.Errorf("the cold pass writes what changes from the catch-up pass to the end of the stop: %d, want %d", p.WriteBytes, want)
	}
	// stop 1.5 + read 1e9 at 2e9 (0.5) + writes at the catch-up's 400 MB/s + the least write time
	// (20 ms) + the least overhead (catch-up: 1 s - 0.9 s = 100 ms; the pass before: 900 ms - 270 ms)
	// + the checks + start 0.5
	write := time.Duration(float64(p.WriteBytes) / 4e8 * 1e9)
	want := 1500*time.Millisecond + 500*time.Millisecond + write + 20*time.Millisecond + 100*time.Millisecond + coldChecks + 500*time.Millisecond
	near(t, "stop + read + write + fsyncs + overhead + checks + start", p.Downtime, want)

	if p, _ := predict(h, 1e9, pass.ServerTimings{StopSeconds: 1.5, StartSeconds: 0.5}, false); p.Start != 0 {
		t.Error("without --restart the start is not part of the downtime")
	}
	if p, _ := predict(h, 1e9, pass.ServerTimings{}, true); p.Stop != defaultStop || p.Start != defaultStart {
		t.Errorf("without a measured stop and start, pg_ctl's least times are assumed: stop %v, start %v", p.Stop, p.Start)
	}

	// A last cold pass is the best basis for the read rate and the overhead.
	h.Passes = append(h.Passes,
		manifest.Pass{Kind: manifest.Cold, Started: t0 + 20*s, Finished: t0 + 21*s + 10*ms, BytesRead: 1e9, BytesWritten: 1e6, ReadNs: s, WriteNs: 5 * ms},
		manifest.Pass{Kind: manifest.Live, Started: t0 + 30*s, Finished: t0 + 31*s, BytesRead: 6e8, BytesWritten: 5e7, ReadNs: 200 * ms, WriteNs: 100 * ms},
	)
	p, _ = predict(h, 1e9, pass.ServerTimings{}, false)
	if p.ReadRate != 1e9 {
		t.Errorf("read rate %v, want the last cold pass's 1e9 B/s", p.ReadRate)
	}
	if p.Overhead != 5*time.Millisecond+coldChecks {
		t.Errorf("overhead %v, want the last cold pass's 5 ms and the checks", p.Overhead)
	}
	if p.DirtyRate != 0 || p.WriteBytes != 5e7 {
		t.Errorf("with no back-to-back live passes since the cold pass, the catch-up pass's writes are assumed again: dirty rate %v, writes %d", p.DirtyRate, p.WriteBytes)
	}

	// A quiet cluster: the first copy, then live passes that read almost
	// nothing (16 KiB in 30 ms is 0.5 MB/s of fixed costs, not a read
	// rate), then a catch-up pass that mostly wrote the CHECKPOINT's pages.
	// The read rate is then the best of all passes, not the idle one's.
	idle := &manifest.Header{Passes: []manifest.Pass{
		{Kind: manifest.Live, Started: t0, Finished: t0 + 2*s, BytesRead: 2e8, BytesWritten: 2e8, ReadNs: 100 * ms, WriteNs: 1500 * ms},
		{Kind: manifest.Live, Started: t0 + 2*s, Finished: t0 + 2*s + 30*ms, BytesRead: 16384, ReadNs: 30 * ms},
		{Kind: manifest.Live, Started: t0 + 3*s, Finished: t0 + 3*s + 30*ms, BytesRead: 16384, ReadNs: 30 * ms},
		{Kind: manifest.Live, Started: t0 + 4*s, Finished: t0 + 4*s + 300*ms, BytesRead: 2e8, BytesWritten: 1.8e8, ReadNs: 100 * ms, WriteNs: 150 * ms},
	}}
	if p, _ := predict(idle, 2e8, pass.ServerTimings{}, true); p.ReadRate != 2e9 || p.Downtime > time.Second {
		t.Errorf("idle passes do not measure the read rate: got %v B/s, a downtime of %v, want 2e9 B/s and under a second", p.ReadRate, p.Downtime)
	}

	if _, err := predict(&manifest.Header{}, 1e9, pass.ServerTimings{}, false); err == nil {
		t.Error("with no pass measured, there is nothing to predict from")
	}
}

// FuzzParseTimings: server.json lives in DEST, where anyone may edit or
// damage it. Whatever it holds, the stop and start times read from it are
// believable (0 to a day), and they only ever lengthen the prediction of the
// downtime: a damaged file must not let --max-downtime pass wrongly.
func FuzzParseTimings(f *testing.F) {
	for _, s := range []string{
		`{"stop_seconds": 0.31, "start_seconds": 0.12, "when": "2026-11-27T14:21:25.6Z"}`,
		`{"stop_seconds": -1e9, "start_seconds": 0.1}`,
		`{"stop_seconds": 1e300, "start_seconds": 1e300}`,
		`{"stop_seconds": 86401}`,
		`{"stop_seconds": "NaN"}`,
		`{"when": "yesterday"}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	s := int64(time.Second)
	h := &manifest.Header{Passes: []manifest.Pass{
		{Kind: manifest.Cold, Started: 0, Finished: 3 * s, BytesRead: 1e9, BytesWritten: 1e8, ReadNs: 2 * s, WriteNs: s / 2},
	}}
	base, err := predict(h, 1e9, pass.ServerTimings{}, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tm := pass.ParseTimings(b)
		for _, d := range []time.Duration{tm.Stop(), tm.Start()} {
			if d < 0 || d > pass.MaxServerSeconds*time.Second {
				t.Fatalf("pass.ParseTimings(%q) gives a stop or start of %v: not a believable time", b, d)
			}
		}
		p, err := predict(h, 1e9, tm, true)
		if err != nil {
			t.Fatal(err)
		}
		if copyAlone := base.Downtime - base.Stop - base.Start; p.Downtime < copyAlone || p.Stop < 0 || p.Start < 0 {
			t.Fatalf("with server.json %q the predicted downtime %v (stop %v, start %v) is shorter than the copy alone takes (%v)", b, p.Downtime, p.Stop, p.Start, copyAlone)
		}
	})
}
