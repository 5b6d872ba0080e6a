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
