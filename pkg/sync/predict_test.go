package sync

import (
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

func TestPredictUsesMeasuredRatesAndServerTimings(t *testing.T) {
	s := int64(time.Second)
	h := &manifest.Header{Passes: []manifest.Pass{
		// A first live pass: 1000 MB read in 2 s, 1000 MB written in 4 s, 1 s overhead.
		{Kind: manifest.Live, Started: 0, Finished: 7 * s, BytesRead: 1e9, BytesWritten: 1e9, ReadNs: 2 * s, WriteNs: 4 * s},
		// The last live pass wrote 50 MB.
		{Kind: manifest.Live, Started: 10 * s, Finished: 11 * s, BytesRead: 1e8, BytesWritten: 5e7, ReadNs: s / 2, WriteNs: s / 4},
	}}
	p, err := predict(h, 1e9, serverTimings{StopSeconds: 1.5, StartSeconds: 0.5}, true)
	if err != nil {
		t.Fatal(err)
	}
	// stop 1.5 + read 1e9 at 500 MB/s (2 s) + write 5e7 at 250 MB/s (0.2 s) + overhead 0.25 + start 0.5
	want := 1500*time.Millisecond + 2*time.Second + 200*time.Millisecond + 250*time.Millisecond + 500*time.Millisecond
	if d := p.Downtime - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("predicted %v, want %v: stop + source read at the measured read rate + the last pass's writes at the write rate + overhead + start", p.Downtime, want)
	}
	if p, _ := predict(h, 1e9, serverTimings{StopSeconds: 1.5, StartSeconds: 0.5}, false); p.Start != 0 {
		t.Error("without --restart the start is not part of the downtime")
	}
	// A last cold pass is the best basis for the read rate.
	h.Passes = append(h.Passes, manifest.Pass{Kind: manifest.Cold, Started: 20 * s, Finished: 21 * s, BytesRead: 1e9, ReadNs: s})
	if p, _ := predict(h, 1e9, serverTimings{}, false); p.ReadRate != 1e9 {
		t.Errorf("read rate %v, want the last cold pass's 1e9 B/s", p.ReadRate)
	}
	if _, err := predict(&manifest.Header{}, 1e9, serverTimings{}, false); err == nil {
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
	base, err := predict(h, 1e9, serverTimings{}, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tm := parseTimings(b)
		for _, d := range []time.Duration{tm.Stop(), tm.Start()} {
			if d < 0 || d > maxServerSeconds*time.Second {
				t.Fatalf("parseTimings(%q) gives a stop or start of %v: not a believable time", b, d)
			}
		}
		p, err := predict(h, 1e9, tm, true)
		if err != nil {
			t.Fatal(err)
		}
		if p.Downtime < base.Downtime {
			t.Fatalf("with server.json %q the predicted downtime %v is shorter than the copy alone takes (%v)", b, p.Downtime, base.Downtime)
		}
	})
}
