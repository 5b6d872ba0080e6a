package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/pgtwopass/pgtwopass/internal/human"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// logObserver renders the engine's events as log lines, and its progress
// on the progress display (ui), or without one as a log line every
// progressEvery while a pass runs.
type logObserver struct {
	log           *zap.Logger
	ui            *progressUI // nil: no progress display
	read, written atomic.Int64
	stop          chan struct{}
	downSince     atomic.Int64 // Unix ns when the server went down; 0 while up
	// server is the phase of the source server the engine last reported;
	// holds and restart say that the run (finish, sync) may stop it, and
	// start it again: what a signal then does (interrupted).
	server  atomic.Int32
	holds   atomic.Bool
	restart atomic.Bool
}

const progressEvery = 10 * time.Second

func newLogObserver(log *zap.Logger, ui *progressUI) *logObserver {
	return &logObserver{log: log, ui: ui}
}

func (o *logObserver) Progress(read, written int64) {
	o.read.Add(read)
	o.written.Add(written)
	if o.ui != nil {
		o.ui.progress(read, written)
	}
}

func (o *logObserver) Event(e pgsync.Event) {
	if o.ui != nil {
		o.ui.event(e)
	}
	switch e.Kind {
	case pgsync.PassStarted:
		o.read.Store(0)
		o.written.Store(0)
		o.log.Info(e.Pass.String()+" pass started", zap.Int64("source_bytes", e.Total))
		o.stopTicker()
		if o.ui == nil {
			o.stop = make(chan struct{})
			go o.tick(e.Pass, e.Total, o.stop)
		}
	case pgsync.PassFinished:
		o.stopTicker()
		s := e.Stats
		o.log.Info(e.Pass.String()+" pass finished",
			zap.Float64("seconds", s.Duration().Seconds()),
			zap.Int64("bytes_read", s.BytesRead), zap.Int64("bytes_written", s.BytesWritten),
			zap.Int64("files_examined", s.FilesExamined), zap.Int64("files_skipped", s.FilesSkipped),
			zap.Int64("files_changed", s.FilesChanged), zap.Int64("files_deleted", s.FilesDeleted),
			zap.Bool("dry_run", s.DryRun))
	case pgsync.Step:
		switch e.Server {
		case pgsync.ServerStopping:
			o.downSince.Store(time.Now().UnixNano())
		case pgsync.ServerStarted:
			o.downSince.Store(0)
		}
		if e.Server != pgsync.ServerUnchanged {
			o.server.Store(int32(e.Server))
		}
		o.log.Info(e.Msg)
	case pgsync.Warning:
		o.log.Warn(e.Msg, fieldsFor(e)...)
	case pgsync.FileChanged:
		o.log.Debug("changed", fieldsFor(e)...)
	case pgsync.FileDeleted:
		o.log.Debug("deleted", fieldsFor(e)...)
	}
}

// interrupted reports a signal: what pgtwopass does about it, from the
// phase of the server the engine last reported. It holds (returns true)
// a second signal while the run may hold the server.
func (o *logObserver) interrupted(sig os.Signal, n int) bool {
	name := sig.String()
	if s, ok := sig.(syscall.Signal); ok {
		name = signalNames[s]
	}
	var msg string
	switch pgsync.ServerPhase(o.server.Load()) {
	case pgsync.ServerStopping:
		msg = "the server is stopping: waiting for the stop to complete; then nothing is copied"
		if o.restart.Load() {
			msg += ", and the server is started again"
		}
	case pgsync.ServerStopped:
		msg = "the cold pass stops at its next clean point (a seal that has begun completes)"
		if o.restart.Load() {
			msg += "; then the server is started again"
		} else {
			msg += "; the server stays stopped"
		}
	case pgsync.ServerStarting:
		msg = "already starting the server again; waiting for it"
	default:
		msg = "stopping at a clean point"
	}
	if n == 1 {
		o.log.Warn("interrupted by " + name + ": " + msg)
		return true
	}
	if !o.holds.Load() {
		o.log.Warn(name + " again: exiting at once")
		return false
	}
	o.log.Warn(name + " again: " + msg + " (kill -9 would not wait)")
	return true
}

var signalNames = map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}

func fieldsFor(e pgsync.Event) []zap.Field {
	var f []zap.Field
	if e.Path != "" {
		f = append(f, zap.String("path", e.Path))
	}
	if e.Msg != "" && (e.Kind == pgsync.FileChanged || e.Kind == pgsync.FileDeleted) {
		f = append(f, zap.String("note", e.Msg))
	}
	return f
}

func (o *logObserver) tick(kind manifest.PassKind, total int64, stop chan struct{}) {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			f := []zap.Field{zap.Int64("bytes_read", o.read.Load()), zap.Int64("bytes_written", o.written.Load()), zap.Int64("source_bytes", total)}
			if ns := o.downSince.Load(); ns != 0 {
				f = append(f, zap.Float64("server_down_seconds", time.Since(time.Unix(0, ns)).Seconds()))
			}
			o.log.Info(kind.String()+" pass progress", f...)
		}
	}
}

func (o *logObserver) stopTicker() {
	if o.stop != nil {
		close(o.stop)
		o.stop = nil
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printSummary is the human-readable end of prepare, finish and sync.
func printSummary(w io.Writer, command string, res *pgsync.Result) {
	if res == nil {
		return
	}
	for _, p := range res.Passes {
		verb := "read"
		if p.DryRun {
			verb = "would read"
		}
		fmt.Fprintf(w, "%s pass: %s %s, wrote %s in %.1fs (%d files changed, %d deleted, %d trusted by their stat)\n",
			p.Kind, verb, human.Bytes(p.BytesRead), human.Bytes(p.BytesWritten), p.Duration().Seconds(), p.FilesChanged, p.FilesDeleted, p.FilesSkipped)
	}
	if res.BytesSent > 0 {
		fmt.Fprintf(w, "to the other host: sent %s, received %s\n", human.Bytes(res.BytesSent), human.Bytes(res.BytesReceived))
	}
	if res.Stopped {
		fmt.Fprintf(w, "downtime: %.2fs", res.Downtime.Seconds())
		if p := res.Prediction; p != nil {
			fmt.Fprintf(w, ", predicted %.2fs", p.Downtime.Seconds())
		}
		switch {
		case res.Restarted:
			fmt.Fprint(w, " (server stopped, copied, restarted)")
		case res.Server.Running:
			fmt.Fprintf(w, " (server stopped, copied; it runs again, pid %d, started by someone else)", res.Server.PM.PID)
		case !res.Server.Known():
			fmt.Fprintf(w, " so far (the source server's state is %s)", res.Server)
		default:
			fmt.Fprint(w, " so far (the source server is stopped)")
		}
		fmt.Fprintln(w)
	}
	if command != "prepare" && len(res.Passes) > 0 && !res.Passes[len(res.Passes)-1].DryRun {
		fmt.Fprintln(w, "the copy is sealed and can be started")
	} else if command == "prepare" && len(res.Passes) > 0 && !res.Passes[0].DryRun {
		fmt.Fprintln(w, "the copy is not sealed: run finish to complete it")
	}
}

// outputOptions say how a run is shown and recorded: logFlags and, for
// prepare, finish and sync, reportFlags.
type outputOptions struct {
	JSON        bool
	LogFormat   string // console, json, or "": json under systemd, else console
	Verbose     bool
	Progress    progressSetting
	MetricsFile string
}

// outputOptionsOf reads logFlags and reportFlags.
func outputOptionsOf(c *cli.Context) (outputOptions, error) {
	o := outputOptions{JSON: c.Bool("json"), LogFormat: c.String("log-format"), Verbose: c.Bool("verbose"), MetricsFile: c.String("metrics-file")}
	switch on, off := c.Bool("progress"), c.Bool("no-progress"); {
	case on && off:
		return o, usagef("--progress and --no-progress contradict each other: give one")
	case on:
		o.Progress = progressOn
	case off:
		o.Progress = progressOff
	}
	return o, nil
}

// runOptions are what prepare, finish and sync read from their command
// line.
type runOptions struct {
	Pass   pgsync.Options
	Server pgsync.ServerOptions // finish and sync
	Output outputOptions
	// outputRead: Output was read, so that an error after it is reported
	// as a failed run is (--json, --metrics-file).
	outputRead bool
}

// runParser returns the parse of prepare, finish or sync: the output
// options, SRC, DEST, copyFlags and connectFlags, then the groups that
// readers read.
func runParser(readers ...func(*cli.Context, *runOptions) error) func(*cli.Context) (runOptions, error) {
	return func(c *cli.Context) (runOptions, error) {
		var o runOptions
		var err error
		if o.Output, err = outputOptionsOf(c); err != nil {
			return o, err
		}
		o.outputRead = true
		if o.Pass, err = passOptions(c); err != nil {
			return o, err
		}
		for _, read := range readers {
			if err := read(c, &o); err != nil {
				return o, err
			}
		}
		return o, nil
	}
}

// reportParseError reports a command line that could not be read as a
// failed run, once its output options are known: the --json summary and
// the --metrics-file say it failed (exit status 2).
func (o runOptions) reportParseError(c *cli.Context, err error) error {
	if !o.outputRead {
		return err
	}
	out, oerr := newOutput(c, o.Output)
	if oerr != nil {
		return err
	}
	return out.done(nil, err)
}

// output is what a command that runs passes needs to report.
type output struct {
	command string
	json    bool
	stdout  io.Writer
	log     *zap.Logger
	obs     *logObserver
	ui      *progressUI // nil: no progress display
	metrics *metricsFile
}

func newOutput(c *cli.Context, o outputOptions) (*output, error) {
	ui := newProgressUI(c.App.ErrWriter, o.Progress)
	var sink io.Writer = c.App.ErrWriter
	if ui != nil {
		sink = ui
	}
	log, err := newLogger(o, c.App.ErrWriter, sink)
	if err != nil {
		return nil, err
	}
	m, err := newMetricsFile(o.MetricsFile, c.Command.Name, c.Args().Get(1))
	if err != nil {
		return nil, err
	}
	out := &output{command: c.Command.Name, json: o.JSON, stdout: c.App.Writer, log: log,
		obs: newLogObserver(log, ui), ui: ui, metrics: m}
	interruptsOf(c.Context).setReporter(out.obs.interrupted)
	return out, nil
}

// holdServer says that the run may stop the source server (finish, sync)
// and, with restart, start it again: a second signal is then held.
func (o *output) holdServer(restart bool) {
	o.obs.restart.Store(restart)
	o.obs.holds.Store(true)
}

// quick tells the progress display that the cold pass may skip files.
func (o *output) quick(p pgsync.Options) {
	if o.ui != nil {
		o.ui.quick = p.ColdPass == pgsync.ColdQuick
	}
}

// done reports the result and returns err for the exit status: it ends
// the progress display, writes the metrics file (also after a failure),
// then the summary on stdout.
func (o *output) done(res *pgsync.Result, err error) error {
	o.obs.stopTicker()
	o.ui.close()
	defer o.log.Sync()
	if err != nil && exitCode(err) == exitFailure && hintFor(err) == "" {
		err = &hintedError{err, "fix the cause and run the same command again; 'pgtwopass status DEST' says whether the copy is sealed (only a sealed copy can be started)"}
	}
	if o.metrics != nil {
		if merr := o.metrics.write(res, exitCode(err), time.Now()); merr != nil {
			if err == nil {
				err = merr
			} else {
				o.log.Error("could not write the metrics file", zap.Error(merr))
			}
		}
	}
	if o.json {
		if werr := writeJSON(o.stdout, pgsync.NewSummary(o.command, res, err)); werr != nil && err == nil {
			err = werr
		}
		return err
	}
	if err == nil {
		printSummary(o.stdout, o.command, res)
	}
	return err
}
