package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
)

// The WAL-mode scenario (issue 11): two clusters about 5× apart in size,
// each under the same uniform pgbench load (the default TPC-B-like script,
// -clients clients, random accounts), finished by `finish --restart` with
// each cold pass mode in turn, and switched over to a streaming replica
// (pg_basebackup -R, stop the primary, promote) side by side, with a warm
// and a cold page cache. What a DBA compares: the downtime, and what the
// cold pass reads while the server is down.

// walModes are the cold pass modes measured, and "switchover".
var walModes = []string{"checksum", "quick", "wal", "switchover"}

// walModeRun is one finish (or switchover) under the load.
type walModeRun struct {
	downtime  float64 // seconds from the stop to a server that accepts connections
	predicted float64 // finish's prediction; -1 for a switchover
	read      int64   // bytes the cold pass read; -1 for a switchover
	written   int64   // bytes it wrote
	mode      string  // the cold pass mode it ran in (a fallback says checksum)
	fallback  string
	load      float64
}

// walModeSize is one cluster size of the scenario.
type walModeSize struct {
	scale int
	bytes int64 // the data directory's regular files
	files int
	runs  map[string][]walModeRun // by mode + "/" + cache
	// One more WAL-guided finish, with the copy snapshotted right before
	// the stop (a test build's hook): what differed between the copy and
	// the stopped source, and what the cold pass wrote.
	differBytes, writtenBytes int64
	ratioNote                 string
}

// walModeScenario measures every size of -wal-scales.
func (b *bench) walModeScenario(ctx context.Context) error {
	for _, scale := range b.cfg.walScales {
		sz, err := b.walModeSize(ctx, scale)
		if err != nil {
			return fmt.Errorf("WAL-mode scenario, scale %d: %w", scale, err)
		}
		b.walSizes = append(b.walSizes, sz)
	}
	return nil
}

func (b *bench) walModeSize(ctx context.Context, scale int) (*walModeSize, error) {
	sz := &walModeSize{scale: scale, runs: map[string][]walModeRun{}}
	dir := filepath.Join(b.work, fmt.Sprintf("walmode-%d", scale))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "copy")
	logf("WAL mode, scale %d: initdb, pgbench -i -s %d", scale, scale)
	c, err := scratch.InitDB(ctx, src, scratch.Options{})
	if err != nil {
		return nil, err
	}
	b.clusters = append(b.clusters, c)
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	if err := c.PgbenchInit(ctx, scale); err != nil {
		return nil, err
	}
	if err := settle(ctx, c); err != nil {
		return nil, err
	}
	if sz.bytes, sz.files, _, err = treeSize(src); err != nil {
		return nil, err
	}
	logf("WAL mode, scale %d: %s in %d files; prepare (the first copy)", scale, humanBytes(sz.bytes), sz.files)
	if _, err := b.pgtwopass(ctx, nil, "prepare", src, dest); err != nil {
		return nil, err
	}
	for r := range b.cfg.runs {
		for _, cache := range b.caches {
			for _, mode := range rotate(walModes, r) {
				var run walModeRun
				var err error
				if mode == "switchover" {
					run, err = b.switchover(ctx, c, filepath.Join(dir, "standby"), cache)
				} else {
					run, err = b.walModeFinish(ctx, c, dest, mode, cache)
				}
				if err != nil {
					return nil, fmt.Errorf("%s (%s cache): %w", mode, cache, err)
				}
				sz.runs[mode+"/"+cache] = append(sz.runs[mode+"/"+cache], run)
				logf("WAL mode, scale %d, round %d, %s cache, %-10s downtime %.2fs (predicted %.2fs), read %s, wrote %s%s", scale, r+1, cache, mode,
					run.downtime, run.predicted, humanBytes(run.read), humanBytes(run.written), orEmpty(run.fallback, ", fell back: "))
			}
		}
	}
	if err := b.walModeRatio(ctx, c, sz, dir, dest); err != nil {
		return nil, err
	}
	if c.Running() {
		if err := c.Stop(ctx, "fast"); err != nil {
			return nil, err
		}
	}
	return sz, nil
}

func orEmpty(s, prefix string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// underLoad waits for a quiet machine, starts the uniform load on c
// (started if down) and lets it run for 3 s, then runs a prepare during it
// (the live passes of a DBA's evening), and 2 s more: the changes the cold
// pass must copy.
func (b *bench) underLoad(ctx context.Context, c *scratch.Cluster, dest string) (*scratch.Load, error) {
	// A quiet machine before the load starts: the run's own load is part
	// of what is measured.
	if _, err := b.quiet(ctx); err != nil {
		return nil, err
	}
	if !c.Running() {
		if err := c.Start(ctx); err != nil {
			return nil, err
		}
	}
	l, err := c.Load(ctx, b.cfg.clients, 0)
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, 3*time.Second); err != nil {
		l.Stop()
		return nil, err
	}
	if dest != "" {
		if _, err := b.pgtwopass(ctx, nil, "prepare", c.Dir, dest); err != nil {
			l.Stop()
			return nil, err
		}
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		l.Stop()
		return nil, err
	}
	return l, nil
}

// walModeFinish runs `finish --restart --cold-pass=mode` under the load.
func (b *bench) walModeFinish(ctx context.Context, c *scratch.Cluster, dest, mode, cache string) (walModeRun, error) {
	run := walModeRun{predicted: -1, read: -1, written: -1}
	l, err := b.underLoad(ctx, c, dest)
	if err != nil {
		return run, err
	}
	run.load = load1() // the load's own share included
	if cache == "cold" {
		if err := dropCaches(); err != nil {
			l.Stop()
			return run, err
		}
	}
	res, err := b.pgtwopass(ctx, nil, "finish", "--restart", "--cold-pass="+mode, c.Dir, dest)
	l.Stop() // the server went down under it: expected
	if err != nil {
		return run, err
	}
	s := res.sum
	if s.DowntimeSeconds == nil {
		return run, fmt.Errorf("finish --json reports no downtime_seconds")
	}
	run.downtime, run.mode, run.fallback = *s.DowntimeSeconds, s.ColdPassMode, s.FallbackReason
	if s.PredictedDowntimeSeconds != nil {
		run.predicted = *s.PredictedDowntimeSeconds
	}
	for _, p := range s.Passes {
		if p.Kind == "cold" {
			run.read, run.written = p.BytesRead, p.BytesWritten
		}
	}
	return run, nil
}

// switchover makes a streaming replica of c with pg_basebackup -R, starts
// it, and under the load stops c (pg_ctl stop -m fast), waits until the
// replica has replayed c's shutdown checkpoint (nothing committed is lost),
// and promotes it (pg_ctl promote -w): the downtime is from the stop to a
// promoted server that accepts writes. The replica is discarded after.
func (b *bench) switchover(ctx context.Context, c *scratch.Cluster, standbyDir, cache string) (walModeRun, error) {
	run := walModeRun{predicted: -1, read: -1, written: -1, mode: "switchover"}
	if !c.Running() {
		if err := c.Start(ctx); err != nil {
			return run, err
		}
	}
	os.RemoveAll(standbyDir)
	if err := os.MkdirAll(standbyDir, 0o700); err != nil {
		return run, err
	}
	if err := chownLike(standbyDir, c.Dir); err != nil {
		return run, err
	}
	basebackup, err := c.ClientProgram("pg_basebackup")
	if err != nil {
		return run, err
	}
	if _, err := asOwnerOf(ctx, c.Dir, basebackup, "-D", standbyDir, "-R", "-X", "stream", "-c", "fast",
		"-h", c.SocketDir, "-p", strconv.Itoa(c.Port), "-U", scratch.Superuser); err != nil {
		return run, err
	}
	sb, err := scratch.Open(standbyDir, scratch.Options{BinDir: c.BinDir})
	if err != nil {
		return run, err
	}
	defer sb.Close(context.WithoutCancel(ctx))
	if err := sb.Start(ctx); err != nil {
		return run, err
	}
	l, err := b.underLoad(ctx, c, "")
	if err != nil {
		return run, err
	}
	defer l.Stop()
	run.load = load1() // the load's own share included
	if cache == "cold" {
		if err := dropCaches(); err != nil {
			return run, err
		}
	}
	t0 := time.Now()
	if err := c.Stop(ctx, "fast"); err != nil {
		return run, err
	}
	cf, err := pgctl.ReadControlFile(c.Dir)
	if err != nil {
		return run, err
	}
	want := cf.CheckPoint
	for {
		s, err := sb.QueryString(ctx, "SELECT pg_last_wal_replay_lsn()::text")
		if err != nil {
			return run, err
		}
		if lsn, err := pgctl.ParseLSN(s); err == nil && lsn >= want {
			break
		}
		if time.Since(t0) > 5*time.Minute {
			return run, fmt.Errorf("the replica did not replay the primary's shutdown checkpoint %s in 5 minutes (at %s)", want, s)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return run, err
		}
	}
	pgCtl := filepath.Join(c.BinDir, "pg_ctl")
	if _, err := asOwnerOf(ctx, c.Dir, pgCtl, "promote", "-w", "-t", "120", "-D", standbyDir); err != nil {
		return run, err
	}
	if err := sb.Exec(ctx, "CREATE TABLE switched (t timestamptz); INSERT INTO switched VALUES (now())"); err != nil {
		return run, err
	}
	run.downtime = time.Since(t0).Seconds()
	return run, sb.Stop(ctx, "fast")
}

// walModeRatio runs one more WAL-guided finish with a build of pgtwopass
// that has the test hooks, which snapshots the copy right before the stop:
// the bytes that differ between that snapshot and the stopped source are
// what the cold pass must write, and the ratio of what it wrote to them
// must be 1.0.
func (b *bench) walModeRatio(ctx context.Context, c *scratch.Cluster, sz *walModeSize, dir, dest string) error {
	if b.faultsBin == "" {
		b.faultsBin = filepath.Join(b.work, "pgtwopass-hooks")
		logf("go build -tags pgtwopass_faults -o %s ./cmd/pgtwopass", b.faultsBin)
		if _, err := runOut(ctx, b.root, goTool(), "build", "-tags", "pgtwopass_faults", "-o", b.faultsBin, "./cmd/pgtwopass"); err != nil {
			return err
		}
	}
	snap := filepath.Join(dir, "before-stop")
	os.RemoveAll(snap)
	l, err := b.underLoad(ctx, c, dest)
	if err != nil {
		return err
	}
	t, err := runTimed(ctx, cleanEnv("PGTWOPASS_FAULT_BEFORE_STOP=cp -a "+dest+" "+snap), b.faultsBin,
		"finish", "--json", "--log-format", "json", "--cold-pass=wal", c.Dir, dest)
	l.Stop()
	if err != nil {
		return err
	}
	var s summaryJSON
	if err := json.Unmarshal([]byte(t.stdout), &s); err != nil {
		return fmt.Errorf("finish --json: %w", err)
	}
	for _, p := range s.Passes {
		if p.Kind == "cold" {
			sz.writtenBytes = p.BytesWritten
		}
	}
	if s.ColdPassMode != "wal" {
		sz.ratioNote = "the cold pass fell back: " + s.FallbackReason
	}
	d, err := blockDiff(c.Dir, snap, true, nil)
	if err != nil {
		return err
	}
	sz.differBytes = d.differBytes
	logf("WAL mode, scale %d: %s differed before the cold pass, which wrote %s", sz.scale, humanBytes(sz.differBytes), humanBytes(sz.writtenBytes))
	return os.RemoveAll(snap)
}

// asOwnerOf runs a PostgreSQL program as the owner of dir when this is
// root (the programs refuse to run as root), else as this user.
func asOwnerOf(ctx context.Context, dir, prog string, args ...string) (string, error) {
	if os.Geteuid() != 0 {
		return runOut(ctx, "/", prog, args...)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return "", err
	}
	u, err := user.LookupId(strconv.Itoa(int(st.Uid)))
	if err != nil {
		return "", err
	}
	return runOut(ctx, "/", "runuser", append([]string{"-u", u.Username, "--", prog}, args...)...)
}

// chownLike gives dir the owner of like.
func chownLike(dir, like string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(like, &st); err != nil {
		return err
	}
	return os.Chown(dir, int(st.Uid), int(st.Gid))
}

// walModeReport is the scenario's section of the report.
func (b *bench) walModeReport(p func(string, ...any)) {
	if len(b.walSizes) == 0 {
		return
	}
	p("\n### The cold pass modes and a switchover, by cluster size (issue 11)\n\n")
	p("Each cluster under the same uniform load (pgbench's default TPC-B-like script, %d clients, random accounts; "+
		"the server's settings are scratch's: shared_buffers 32MB, max_wal_size 256MB, checkpoint_timeout 30s). "+
		"Each run: the load for 3 s, a `prepare` during it, 2 s more, then `finish --restart --cold-pass=MODE`, or a "+
		"switchover to a streaming replica made by `pg_basebackup -R` (stop the primary, wait until the replica replayed "+
		"its shutdown checkpoint, `pg_ctl promote -w`, a first write). The downtime runs from the stop to a server that "+
		"accepts connections (finish's `downtime_seconds`; for the switchover, the promoted replica's first write). "+
		"Medians of %d runs; a cold cache is emptied (drop_caches) right before the finish or the stop.\n\n", b.cfg.clients, b.cfg.runs)
	p("| cluster | cache | mode | downtime | predicted | read in the cold pass | of the cluster | written |\n|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, sz := range b.walSizes {
		for _, cache := range b.caches {
			for _, mode := range walModes {
				runs := sz.runs[mode+"/"+cache]
				if len(runs) == 0 {
					continue
				}
				m := medianWALRun(runs)
				pred, read, pct, written := "", "", "", ""
				if mode != "switchover" {
					pred = fmt.Sprintf("%.2f s", m.predicted)
					read, written = humanBytes(m.read), humanBytes(m.written)
					pct = fmt.Sprintf("%.1f%%", 100*float64(m.read)/float64(sz.bytes))
				}
				label := mode
				if fb := fallbacks(runs); fb != "" {
					label += " (fell back: " + fb + ")"
				}
				p("| scale %d, %s | %s | %s | %.2f s (%s) | %s | %s | %s | %s |\n", sz.scale, humanBytes(sz.bytes), cache, label, m.downtime, downtimes(runs), pred, read, pct, written)
			}
		}
	}
	p("\nWritten ÷ differing: one more WAL-guided finish per size, with a build that has the test hooks, which copies the copy right before the stop; " +
		"the bytes that differ between that copy and the stopped source (8 KiB blocks, and whole files the copy lacks) against what the cold pass wrote.\n\n")
	p("| cluster | differed | written | written ÷ differed |\n|---|---:|---:|---:|\n")
	for _, sz := range b.walSizes {
		r := "n/a"
		if sz.differBytes > 0 {
			r = fmt.Sprintf("%.3f", float64(sz.writtenBytes)/float64(sz.differBytes))
		}
		p("| scale %d | %s | %s | %s%s |\n", sz.scale, humanBytes(sz.differBytes), humanBytes(sz.writtenBytes), r, orEmpty(sz.ratioNote, "; "))
	}
	p("\nTargets (issue 11):\n\n")
	for _, t := range b.walModeTargets() {
		p("- %s\n", t)
	}
}

// walModeTargets checks the targets on the smallest and the largest
// size measured.
func (b *bench) walModeTargets() []target {
	if len(b.walSizes) < 2 {
		return nil
	}
	small, large := b.walSizes[0], b.walSizes[len(b.walSizes)-1]
	var ts []target
	for _, cache := range b.caches {
		ws, wl := small.runs["wal/"+cache], large.runs["wal/"+cache]
		sl := large.runs["switchover/"+cache]
		if len(ws) == 0 || len(wl) == 0 {
			continue
		}
		a, z := medianWALRun(ws).downtime, medianWALRun(wl).downtime
		ts = append(ts, target{text: fmt.Sprintf("wal downtime at scale %d ≤ 1.1 × at scale %d (%s cache)", large.scale, small.scale, cache) + ": " + fmt.Sprintf("%.2f s vs %.2f s: %.2f×", z, a, z/a), ok: z <= 1.1*a})
		if len(sl) > 0 {
			s := medianWALRun(sl).downtime
			ts = append(ts, target{text: fmt.Sprintf("wal downtime ≤ the switchover's at scale %d (%s cache)", large.scale, cache) + ": " + fmt.Sprintf("%.2f s vs %.2f s", z, s), ok: z <= s})
		}
		m := medianWALRun(wl)
		ts = append(ts, target{text: fmt.Sprintf("wal cold pass reads ≤ 10%% of the cluster at scale %d (%s cache)", large.scale, cache) + ": " + fmt.Sprintf("%s of %s: %.1f%%", humanBytes(m.read), humanBytes(large.bytes), 100*float64(m.read)/float64(large.bytes)), ok: m.read*10 <= large.bytes})
	}
	for _, sz := range b.walSizes {
		if sz.differBytes > 0 {
			r := float64(sz.writtenBytes) / float64(sz.differBytes)
			ts = append(ts, target{text: fmt.Sprintf("bytes written ÷ bytes that differ = 1.0 at scale %d", sz.scale) + ": " + fmt.Sprintf("%.3f", r), ok: r > 0.999 && r < 1.001})
		}
	}
	return ts
}

// medianWALRun is the run of median downtime.
func medianWALRun(runs []walModeRun) walModeRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b walModeRun) int { return cmp.Compare(a.downtime, b.downtime) })
	return s[len(s)/2]
}

func downtimes(runs []walModeRun) string {
	var out []string
	for _, r := range runs {
		out = append(out, fmt.Sprintf("%.2f", r.downtime))
	}
	return strings.Join(out, ", ")
}

func fallbacks(runs []walModeRun) string {
	var out []string
	for _, r := range runs {
		if r.fallback != "" && !slices.Contains(out, r.fallback) {
			out = append(out, r.fallback)
		}
	}
	return strings.Join(out, ", ")
}
