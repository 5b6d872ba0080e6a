// Package demo runs pgtwopass's main job on scratch clusters it creates: the
// `pgtwopass demo` command.
//
// [Run] creates a cluster with data checksums, fills it with pgbench, starts
// a pgbench write load and runs [pgsync.Sync] while the load runs: a live
// pass under load, then CHECKPOINT, stop, cold pass, seal and restart of the
// source. It then starts the copy on another port and compares the data of
// both servers with one query.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/human"
	"github.com/pgtwopass/pgtwopass/internal/scratch"
	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// Defaults of Options.
const (
	DefaultScale   = 20 // pgbench scale: a data directory of about 580 MiB
	DefaultClients = 4
	DefaultRunAs   = "postgres"
)

// SizePerScale is what one unit of pgbench scale adds to a data directory
// (tables, indexes and WAL), measured at scale 20 with PostgreSQL 15; the
// demo prints the size it measures.
const SizePerScale = "27 MiB"

// loadBeforeSync is how long the write load runs before the sync starts.
const loadBeforeSync = 3 * time.Second

// CompareQuery is run on the source and on the copy; equal results mean
// equal data in the pgbench tables.
const CompareQuery = `SELECT count(*) || ' accounts, balance ' || sum(abalance) || ', ' || ` +
	`(SELECT count(*) FROM pgbench_history) || ' history rows, md5 ' || ` +
	`md5(string_agg(aid::text || ':' || abalance, ',' ORDER BY aid)) FROM pgbench_accounts`

// Options configures Run.
type Options struct {
	// Dir is where the clusters are created (Dir/source, Dir/copy and their
	// logs Dir/source.log, Dir/copy.log); "" makes a new directory with
	// os.MkdirTemp("", "pgtwopass-demo-").
	Dir string
	// Scale is the pgbench scale; 0 means DefaultScale.
	Scale int
	// Clients is the number of pgbench clients of the write load; 0 means
	// DefaultClients.
	Clients int
	// RunAs is the OS user that runs PostgreSQL programs when running as
	// root; "" means DefaultRunAs.
	RunAs string
	// Cleanup removes the clusters at the end. Without it both servers are
	// stopped and the clusters are kept. After a failure the clusters are
	// always kept (stopped), except when ctx was canceled.
	Cleanup bool
	// Jobs is passed to the engine (0: one worker per CPU).
	Jobs int
	// Observer is passed to the engine. When nil, Run writes the engine's
	// steps to out itself as "sync: ..." lines; when set, the caller renders
	// them and Run does not repeat them.
	Observer pgsync.Observer
}

// Report is what Run did.
type Report struct {
	Dir        string // the directory holding both clusters
	Source     string // data directory of the source (Dir/source)
	Copy       string // data directory of the copy (Dir/copy)
	SourcePort int
	CopyPort   int
	// SourceBytes is the size of the source's files once filled by pgbench.
	SourceBytes int64
	// Result is the engine's; nil when Run failed before the sync.
	Result *pgsync.Result
	// Transactions is what the write load committed, as pgbench reports it.
	Transactions int64
	// SourceQuery and CopyQuery are CompareQuery's result on each side.
	SourceQuery string
	CopyQuery   string
	// Same is set when both results are equal.
	Same bool
}

// Run creates a source cluster in o.Dir, fills it with pgbench, runs
// pgsync.Sync to o.Dir/copy while a pgbench write load runs, starts the
// copy, and compares the data of source and copy. It writes progress lines
// and a summary to out.
//
// It returns an error when any step fails or when the data differ (then
// Report.Same is false). The Report is returned with what is known also on
// error. No PostgreSQL server started by Run is left running when it
// returns, also when ctx is canceled.
func Run(ctx context.Context, o Options, out io.Writer) (rep *Report, err error) {
	if o.Scale <= 0 {
		o.Scale = DefaultScale
	}
	if o.Clients <= 0 {
		o.Clients = DefaultClients
	}
	if o.RunAs == "" {
		o.RunAs = DefaultRunAs
	}
	if out == nil {
		out = io.Discard
	}
	w := &lockedWriter{w: out}
	d := &demo{o: o, out: w, rep: &Report{}}
	defer func() { err = d.end(err) }()
	if err := d.run(ctx); err != nil {
		return d.rep, err
	}
	return d.rep, nil
}

type demo struct {
	o       Options
	out     *lockedWriter
	rep     *Report
	so      scratch.Options
	created bool // Run made Dir
	src     *scratch.Cluster
	cp      *scratch.Cluster
	load    *scratch.Load
	ctx     context.Context // the caller's, to tell a cancellation
}

func (d *demo) say(format string, args ...any) {
	d.out.printf(format+"\n", args...)
}

func (d *demo) run(ctx context.Context) error {
	d.ctx = ctx
	bin, err := scratch.FindBinDir()
	if err != nil {
		return err
	}
	d.so = scratch.Options{RunAs: d.o.RunAs, BinDir: bin}

	if err := d.makeDir(); err != nil {
		return err
	}
	rep := d.rep
	rep.Source = filepath.Join(rep.Dir, "source")
	rep.Copy = filepath.Join(rep.Dir, "copy")

	// 1. The source cluster.
	d.say("creating a scratch cluster with pgbench scale %d in %s", d.o.Scale, rep.Source)
	if d.src, err = scratch.InitDB(ctx, rep.Source, d.so); err != nil {
		return err
	}
	if err := d.src.Start(ctx); err != nil {
		return err
	}
	rep.SourcePort = d.src.Port
	d.say("source server running on port %d (socket directory %s, log %s)", d.src.Port, d.src.SocketDir, d.src.LogFile)
	t0 := time.Now()
	if err := d.src.PgbenchInit(ctx, d.o.Scale); err != nil {
		return err
	}
	filled := time.Since(t0)
	if rep.SourceBytes, err = dirSize(rep.Source); err != nil {
		return err
	}
	d.say("pgbench tables filled in %.1f s: the data directory holds %s", filled.Seconds(), human.Bytes(rep.SourceBytes))

	// 2. The write load.
	if d.load, err = d.src.Load(ctx, d.o.Clients, 0); err != nil {
		return err
	}
	d.say("write load running (%d clients)", d.o.Clients)
	if err := sleep(ctx, loadBeforeSync); err != nil {
		return err
	}

	// 3. The job, under load.
	d.say("sync: live pass while the load runs, then CHECKPOINT, stop, cold pass, seal and restart of the source")
	obs := d.o.Observer
	if obs == nil {
		obs = printObserver{d.out}
	}
	res, err := pgsync.Sync(ctx,
		pgsync.Options{Source: rep.Source, Dest: rep.Copy, Jobs: d.o.Jobs, Observer: obs},
		pgsync.ServerOptions{Restart: true, StartLog: d.src.LogFile})
	rep.Result = res
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if !res.Stopped || !res.Restarted {
		return fmt.Errorf("sync: the engine reported stopped=%v restarted=%v; want both", res.Stopped, res.Restarted)
	}
	d.say("sync: done, downtime %.2f s%s", res.Downtime.Seconds(), predicted(res))

	// 4. The load saw the server go away.
	n, err := d.load.Stop()
	d.load = nil
	if err != nil {
		return fmt.Errorf("write load: %w", err)
	}
	rep.Transactions = n
	d.say("write load stopped: %d transactions; its clients were disconnected when the server stopped, as expected", n)

	// 5. The copy, on its own port.
	if d.cp, err = scratch.Open(rep.Copy, d.so); err != nil {
		return err
	}
	if err := d.cp.Start(ctx); err != nil {
		return fmt.Errorf("starting the copy: %w", err)
	}
	rep.CopyPort = d.cp.Port
	d.say("copy server running on port %d (log %s)", d.cp.Port, d.cp.LogFile)

	// 6. The comparison: the source is idle since the stop.
	if rep.SourceQuery, err = d.src.QueryString(ctx, CompareQuery); err != nil {
		return fmt.Errorf("query on the source: %w", err)
	}
	if rep.CopyQuery, err = d.cp.QueryString(ctx, CompareQuery); err != nil {
		return fmt.Errorf("query on the copy: %w", err)
	}
	rep.Same = rep.SourceQuery == rep.CopyQuery
	d.summary()
	if !rep.Same {
		return fmt.Errorf("source and copy differ:\n  source: %s\n  copy:   %s", rep.SourceQuery, rep.CopyQuery)
	}
	return nil
}

// makeDir sets rep.Dir, creating it when needed.
func (d *demo) makeDir() error {
	if d.o.Dir == "" {
		dir, err := os.MkdirTemp("", "pgtwopass-demo-")
		if err != nil {
			return err
		}
		d.rep.Dir, d.created = dir, true
		return nil
	}
	dir, err := filepath.Abs(d.o.Dir)
	if err != nil {
		return err
	}
	d.rep.Dir = dir
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		d.created = true
	} else if err != nil {
		return err
	}
	for _, name := range []string{"source", "copy"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%s already exists: give an empty or new --dir", filepath.Join(dir, name))
		}
	}
	return nil
}

// end stops the load and the servers, removes or describes the clusters,
// and returns err with any cleanup failure.
func (d *demo) end(err error) error {
	// Cleanup must run also when the caller's ctx was canceled.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if d.load != nil {
		if _, lerr := d.load.Stop(); lerr != nil && err == nil {
			err = fmt.Errorf("write load: %w", lerr)
		}
	}
	canceled := d.ctx != nil && d.ctx.Err() != nil
	if err != nil {
		d.rep.Same = false
		if canceled {
			d.say("interrupted: stopping the servers")
		}
	}
	var serr error
	for _, c := range []*scratch.Cluster{d.src, d.cp} {
		if c != nil {
			serr = errors.Join(serr, stopCluster(ctx, c))
		}
	}
	if d.rep.Dir == "" {
		return err
	}
	if d.src == nil && err != nil && d.created {
		// Nothing worth keeping.
		os.RemoveAll(d.rep.Dir)
		return err
	}
	if serr != nil {
		d.say("failed to stop a server: %v", serr)
		return errors.Join(err, serr)
	}
	if d.o.Cleanup && (err == nil || canceled) {
		if rerr := d.remove(); rerr != nil {
			return errors.Join(err, fmt.Errorf("removing %s: %w", d.rep.Dir, rerr))
		}
		d.say("removed %s", d.rep.Dir)
		return err
	}
	if err != nil {
		d.say("demo failed; the servers are stopped and the clusters are kept in %s (source %s, copy %s, logs source.log and copy.log)",
			d.rep.Dir, d.rep.Source, d.rep.Copy)
		return err
	}
	d.howToStart()
	return nil
}

// stopCluster stops c's server, if running, in fast mode (immediate if
// that fails) and removes its socket directory.
func stopCluster(ctx context.Context, c *scratch.Cluster) error {
	var err error
	if c.Running() {
		if err = c.Stop(ctx, "fast"); err == nil || !c.Running() {
			err = nil
		}
	}
	// Close stops in immediate mode what is still running.
	return errors.Join(err, c.Close(ctx))
}

// remove deletes the clusters: all of Dir when Run made it, else what Run
// put in it (and Dir itself if then empty).
func (d *demo) remove() error {
	if d.created {
		return os.RemoveAll(d.rep.Dir)
	}
	var err error
	for _, p := range []string{d.rep.Source, d.rep.Copy, d.rep.Source + ".log", d.rep.Copy + ".log"} {
		err = errors.Join(err, os.RemoveAll(p))
	}
	if err == nil {
		os.Remove(d.rep.Dir) // only if empty
	}
	return err
}

func (d *demo) howToStart() {
	prefix := ""
	if os.Geteuid() == 0 {
		prefix = "runuser -u " + d.o.RunAs + " -- "
	}
	pgctl := filepath.Join(d.so.BinDir, "pg_ctl")
	d.say("both servers are stopped; the clusters are kept in %s. To start them:", d.rep.Dir)
	for _, c := range []struct {
		dir  string
		port int
	}{{d.rep.Source, d.rep.SourcePort}, {d.rep.Copy, d.rep.CopyPort}} {
		d.say("  %s%s start -D %s -l %s -o \"-p %d -k /tmp -c listen_addresses=''\"", prefix, pgctl, c.dir, c.dir+".log", c.port)
	}
	d.say("  then: psql -h /tmp -p PORT -U postgres postgres; remove the directory when done")
}

// summary writes the table of passes, the downtime and the comparison.
func (d *demo) summary() {
	rep := d.rep
	d.say("")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pass\tseconds\tbytes read\tbytes written\tfiles changed\t")
	for _, p := range rep.Result.Passes {
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%d\t\n", p.Kind, p.Duration().Seconds(),
			human.Bytes(p.BytesRead), human.Bytes(p.BytesWritten), p.FilesChanged)
	}
	tw.Flush()
	d.say("downtime: %.2f s%s (from the stop of the source to the end of its restart)", rep.Result.Downtime.Seconds(), predicted(rep.Result))
	d.say("source: %s", rep.SourceQuery)
	d.say("copy:   %s", rep.CopyQuery)
	if rep.Same {
		d.say("source and copy hold the same data")
	} else {
		d.say("FAILURE: source and copy hold different data")
	}
}

// predicted is the prediction made before the stop, beside the downtime:
// ", predicted 0.52 s (error +4%)", or "" when there was none.
func predicted(res *pgsync.Result) string {
	p := res.Prediction
	if p == nil || res.Downtime <= 0 {
		return ""
	}
	return fmt.Sprintf(", predicted %.2f s (error %+.0f%%)", p.Downtime.Seconds(), PredictionError(res)*100)
}

// PredictionError is (predicted - actual) / actual downtime: +0.1 means
// the prediction was 10% too long. 0 when nothing was predicted.
func PredictionError(res *pgsync.Result) float64 {
	if res == nil || res.Prediction == nil || res.Downtime <= 0 {
		return 0
	}
	return (res.Prediction.Downtime.Seconds() - res.Downtime.Seconds()) / res.Downtime.Seconds()
}

// printObserver writes the engine's steps as "sync: ..." lines.
type printObserver struct{ w *lockedWriter }

func (p printObserver) Event(e pgsync.Event) {
	switch e.Kind {
	case pgsync.PassStarted:
		p.w.printf("sync: %s pass started (at most %s to read)\n", e.Pass, human.Bytes(e.Total))
	case pgsync.PassFinished:
		if s := e.Stats; s != nil {
			p.w.printf("sync: %s pass done in %.2f s: read %s, wrote %s, %d files changed, %d deleted\n",
				s.Kind, s.Duration().Seconds(), human.Bytes(s.BytesRead), human.Bytes(s.BytesWritten), s.FilesChanged, s.FilesDeleted)
		}
	case pgsync.Step:
		p.w.printf("sync: %s\n", e.Msg)
	case pgsync.Warning:
		p.w.printf("sync: warning: %s\n", e.Msg)
	}
}

func (printObserver) Progress(int64, int64) {}

// lockedWriter serializes writes: the engine's observer may be called from
// several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) printf(format string, args ...any) {
	fmt.Fprintf(l, format, args...)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dirSize is the size of the regular files below dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file the server removed meanwhile
			}
			return err
		}
		if e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}
