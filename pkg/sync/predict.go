package sync

import (
	"cmp"
	"fmt"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/human"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// Prediction is the expected downtime of a finish, computed before the
// server is stopped, like QEMU's expected_downtime: what the cold pass
// must read and write, at the rates measured by earlier passes, plus the
// time the stop and the start take. docs/benchmarks.md gives its error.
type Prediction struct {
	Downtime   time.Duration
	ReadBytes  int64   // the cold pass reads this much of the source
	WriteBytes int64   // and is expected to write this much
	ReadRate   float64 // bytes/s, measured
	WriteRate  float64 // bytes/s, measured
	// WriteFixed is what writing costs whatever the bytes (the fsyncs).
	WriteFixed time.Duration
	// DirtyRate is how fast the source changed between live passes, in
	// bytes/s; 0 when no two recent live passes measured it.
	DirtyRate float64
	Overhead  time.Duration
	Stop      time.Duration // the last stop's, or defaultStop
	Start     time.Duration // the last start's, or defaultStart, when restarting
	// WALBlocks and WALBytes, for a WAL-guided cold pass: the blocks the
	// WAL named up to the prediction, and the WAL that the cold pass still
	// has to read (part of ReadBytes).
	WALBlocks int64
	WALBytes  int64
}

func (p *Prediction) String() string {
	s := fmt.Sprintf("%.2fs: read %s at %s/s, write about %s at %s/s", p.Downtime.Seconds(),
		human.Bytes(p.ReadBytes), human.Bytes(int64(p.ReadRate)), human.Bytes(p.WriteBytes), human.Bytes(int64(p.WriteRate)))
	if p.WALBlocks > 0 || p.WALBytes > 0 {
		s += fmt.Sprintf(" (the WAL names %d blocks so far, %s of WAL left to read)", p.WALBlocks, human.Bytes(p.WALBytes))
	}
	if p.Stop > 0 {
		s += fmt.Sprintf(", stop %.2fs", p.Stop.Seconds())
	}
	if p.Start > 0 {
		s += fmt.Sprintf(", start %.2fs", p.Start.Seconds())
	}
	return s
}

// errNoBasis: no pass has measured rates yet.
var errNoBasis = fmt.Errorf("no earlier pass has measured the read and write rates")

// defaultStop and defaultStart are assumed until a stop or start of the
// source was measured: pg_ctl checks every 100 ms whether the server is
// down or up, so neither takes less, and its own start-up adds 10-20 ms
// (measured on the demo: docs/benchmarks.md). Measured times replace them
// (DEST/.pgtwopass/server.json).
const (
	defaultStop  = 110 * time.Millisecond
	defaultStart = 120 * time.Millisecond
)

// coldChecks is the time between the stop and the cold pass that no pass
// measures: pg_controldata's check that the cluster was shut down cleanly.
const coldChecks = 15 * time.Millisecond

// recentPasses is how many of the newest live passes the rates come from.
const recentPasses = 8

// now is time.Now, replaced by tests.
var now = time.Now

// predict computes the downtime of a cold pass that reads readBytes, from
// the manifest's pass history and the last server timings. It is called
// right after the catch-up live pass that follows the CHECKPOINT: the last
// pass in h.
//
// The model, and why (docs/benchmarks.md has the measurements):
//   - reading: readBytes at the read rate of the last cold pass, or else at
//     the best read rate of the recent live passes that mostly read. Live
//     passes share the machine with the running server and its load; the
//     cold pass does not, and reads as fast as the least hindered of them.
//   - writing: what changes in the source from the start of the catch-up
//     pass to the end of the stop, at the rate the source changed between
//     recent consecutive live passes (the catch-up pass's own writes are
//     the CHECKPOINT's backlog, not a rate). Written at the catch-up pass's
//     write rate, plus the fixed cost of the fsyncs.
//   - the stop and the start as last measured, else at least pg_ctl's 100 ms.
//   - the walk, directories and manifest: the least overhead of the recent
//     passes (or the last cold pass's).
func predict(h *manifest.Header, readBytes int64, timings pass.ServerTimings, restart bool) (*Prediction, error) {
	if h == nil || len(h.Passes) == 0 {
		return nil, errNoBasis
	}
	p := &Prediction{ReadBytes: readBytes}
	passes := h.Passes
	last := passes[len(passes)-1]

	// The passes since the last cold pass, at most recentPasses of them;
	// the last cold pass read what the next one will read, the way it will
	// read it, so its rate and overhead are the best basis.
	var cold *manifest.Pass
	first := max(len(passes)-recentPasses, 0)
	for i := len(passes) - 1; i >= 0; i-- {
		if passes[i].Kind == manifest.Cold && passes[i].ReadNs > 0 {
			cold = &passes[i]
			first = max(first, i+1)
			break
		}
	}
	recent := passes[first:]

	overhead := func(ps *manifest.Pass) time.Duration {
		return time.Duration(max(ps.Finished-ps.Started-ps.ReadNs-ps.WriteNs, 0))
	}
	if cold != nil {
		p.ReadRate = rate(cold.BytesRead, cold.ReadNs)
		p.Overhead = overhead(cold)
	} else {
		p.Overhead = -1
		for i := range recent {
			ps := &recent[i]
			// A pass that wrote much of what it read (a first copy) was
			// held up by its writes, and one that read little (an idle
			// pass: 16 KiB in 30 ms) measured its fixed costs: their read
			// rates say little.
			if ps.ReadNs > 0 && ps.BytesWritten*2 <= ps.BytesRead && ps.BytesRead >= minRateSample(readBytes) {
				p.ReadRate = max(p.ReadRate, rate(ps.BytesRead, ps.ReadNs))
			}
			if o := overhead(ps); p.Overhead < 0 || o < p.Overhead {
				p.Overhead = o
			}
		}
		if p.ReadRate == 0 {
			for i := range passes {
				p.ReadRate = max(p.ReadRate, rate(passes[i].BytesRead, passes[i].ReadNs))
			}
		}
		p.Overhead = max(p.Overhead, 0)
	}
	if p.ReadRate == 0 {
		return nil, errNoBasis
	}

	// Writing: the rate and the fixed cost.
	p.WriteRate = rate(last.BytesWritten, last.WriteNs)
	p.WriteFixed = -1
	for i := range recent {
		ps := &recent[i]
		if ps.WriteNs > 0 && ps.BytesWritten > 0 && (p.WriteFixed < 0 || time.Duration(ps.WriteNs) < p.WriteFixed) {
			p.WriteFixed = time.Duration(ps.WriteNs)
		}
		if p.WriteRate == 0 {
			p.WriteRate = max(p.WriteRate, rate(ps.BytesWritten, ps.WriteNs))
		}
	}
	p.WriteFixed = max(p.WriteFixed, 0)
	if p.WriteRate == 0 {
		p.WriteRate = p.ReadRate
	}

	p.Stop = cmp.Or(timings.Stop(), defaultStop)
	if restart {
		p.Start = cmp.Or(timings.Start(), defaultStart)
	}

	// What changes until the stop: the dirty rate between consecutive
	// recent live passes, the catch-up pass (the last) left out.
	var dirty, span int64
	for i := max(first, 1); i < len(passes)-1; i++ {
		prev, ps := &passes[i-1], &passes[i]
		gap := ps.Started - prev.Finished
		if ps.Kind != manifest.Live || prev.Kind != manifest.Live || gap < 0 || gap > int64(time.Second) {
			continue // not back to back: the same run, the same load
		}
		dirty += ps.BytesWritten
		span += ps.Started - prev.Started
	}
	if span > 0 {
		p.DirtyRate = float64(dirty) / float64(span) * 1e9
		window := now().Sub(time.Unix(0, last.Started)) + p.Stop
		p.WriteBytes = int64(p.DirtyRate * window.Seconds())
	} else {
		// Nothing measured the rate: assume the catch-up pass's writes
		// again (too much, as a rule: a budget errs on the safe side).
		p.WriteBytes = last.BytesWritten
	}

	copying := float64(p.ReadBytes)/p.ReadRate + float64(p.WriteBytes)/p.WriteRate
	if p.WriteBytes > 0 {
		copying += p.WriteFixed.Seconds()
	}
	p.Overhead += coldChecks
	p.Downtime = p.Stop + time.Duration(copying*1e9) + p.Overhead + p.Start
	return p, nil
}

// minRateSample is the least a live pass must have read for its read rate
// to predict the cold pass's: an eighth of what the cold pass reads, at most
// 64 MiB.
func minRateSample(readBytes int64) int64 { return min(readBytes/8, 64<<20) }

// rate is bytes per second, 0 when nothing was measured.
func rate(bytes, ns int64) float64 {
	if bytes <= 0 || ns <= 0 {
		return 0
	}
	return float64(bytes) / float64(ns) * 1e9
}
