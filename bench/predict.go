package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// predictionRun is one finish that stopped the running source under the
// hot-set load: the downtime it predicted before the stop, and the one it
// measured.
type predictionRun struct {
	predicted, actual float64
	stop, start       float64 // as DEST/.pgtwopass/server.json records them
	cold              float64 // the cold pass's own time
	load              float64 // 1-minute load average before the run
}

// predictionRuns measures the downtime prediction's error on the bench
// scenario: the source is started again, the hot-set load runs, a prepare
// copies what changed, and `finish --restart` stops the server under the
// load, runs the cold pass and starts it again. It changes the source, so
// it runs last.
func (b *bench) predictionRuns(ctx context.Context, st *state) error {
	c := st.cluster
	for i := range b.cfg.predictionRuns {
		load, err := b.quiet(ctx)
		if err != nil {
			return err
		}
		if !c.Running() {
			if err := c.Start(ctx); err != nil {
				return err
			}
		}
		l, err := b.startHotLoad(ctx, c, st.hotFrom, st.hotTo)
		if err != nil {
			return err
		}
		if err := sleep(ctx, 2*time.Second); err != nil {
			l.stop()
			return err
		}
		if _, err := b.pgtwopass(ctx, nil, "prepare", st.src, st.dest); err != nil {
			l.stop()
			return err
		}
		if err := sleep(ctx, 2*time.Second); err != nil {
			l.stop()
			return err
		}
		res, err := b.pgtwopass(ctx, nil, "finish", "--restart", st.src, st.dest)
		// The load fails when the server goes down under it: expected.
		l.stop()
		if err != nil {
			return err
		}
		s := res.sum
		if s.PredictedDowntimeSeconds == nil || s.DowntimeSeconds == nil {
			return fmt.Errorf("finish --json reports no predicted_downtime_seconds or downtime_seconds: did it stop the server?")
		}
		p := predictionRun{predicted: *s.PredictedDowntimeSeconds, actual: *s.DowntimeSeconds, load: load}
		for _, pass := range s.Passes {
			if pass.Kind == "cold" {
				p.cold = pass.Seconds
			}
		}
		p.stop, p.start = serverTimes(st.dest)
		logf("prediction run %d: predicted %.2fs, actual %.2fs (stop %.2fs, cold pass %.2fs, start %.2fs)", i+1, p.predicted, p.actual, p.stop, p.cold, p.start)
		b.predictions = append(b.predictions, p)
	}
	if c.Running() {
		return c.Stop(ctx, "fast")
	}
	return nil
}

// serverTimes reads the stop and start times of the source's last stop and
// start from DEST/.pgtwopass/server.json; -1 when missing.
func serverTimes(dest string) (stop, start float64) {
	var v struct {
		Stop  *float64 `json:"stop_seconds"`
		Start *float64 `json:"start_seconds"`
	}
	stop, start = -1, -1
	data, err := os.ReadFile(filepath.Join(dest, manifest.DirName, "server.json"))
	if err != nil || json.Unmarshal(data, &v) != nil {
		return stop, start
	}
	if v.Stop != nil {
		stop = *v.Stop
	}
	if v.Start != nil {
		start = *v.Start
	}
	return stop, start
}

// scatteredRun measures what differs, at each block size, after a load
// that updates random rows of the whole table (pgbench's TPC-B-like
// script): the source is started, the load runs, a prepare copies, the load
// goes on for 2 s, then the server stops and the copy is compared with it.
// The hot-set scenario's changes are clustered; these are scattered, the
// case that favours small blocks. It changes the source: it runs last.
func (b *bench) scatteredRun(ctx context.Context, st *state) error {
	c := st.cluster
	if !c.Running() {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	logf("scattered load: pgbench TPC-B-like, %d clients, prepare during it", b.cfg.clients)
	l, err := c.Load(ctx, b.cfg.clients, 0)
	if err != nil {
		return err
	}
	stopLoad := func() int64 {
		n, _ := l.Stop() // the server may be gone already
		return n
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		stopLoad()
		return err
	}
	if _, err := b.pgtwopass(ctx, nil, "prepare", st.src, st.dest); err != nil {
		stopLoad()
		return err
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		stopLoad()
		return err
	}
	b.scatteredTx = stopLoad()
	if err := c.Stop(ctx, "fast"); err != nil {
		return err
	}
	d, err := blockDiff(st.src, st.dest, true, b.cfg.blockSizes)
	if err != nil {
		return err
	}
	b.scattered = &d
	logf("scattered load: %d transactions; %s differ (%d blocks in %d files)", b.scatteredTx, humanBytes(d.differBytes), d.differBlocks, d.filesDiffer)
	return nil
}
