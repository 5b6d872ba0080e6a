package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/google/renameio/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// metricsFile is --metrics-file: the results of a run of prepare, finish
// or sync in Prometheus's text format, for node_exporter's textfile
// collector. It is replaced atomically after every run, also a failed one.
type metricsFile struct {
	path    string
	command string
	dest    string // DEST as given: the dest label
}

// Metric names; docs/runbook.md lists them.
const (
	metricLastSuccess       = "pgtwopass_last_success_timestamp_seconds"
	metricLastRun           = "pgtwopass_last_run_timestamp_seconds"
	metricExitStatus        = "pgtwopass_exit_status"
	metricRunSeconds        = "pgtwopass_run_duration_seconds"
	metricPasses            = "pgtwopass_passes"
	metricPassRead          = "pgtwopass_pass_read_bytes"
	metricPassWritten       = "pgtwopass_pass_written_bytes"
	metricPassFilesChanged  = "pgtwopass_pass_files_changed"
	metricPassSeconds       = "pgtwopass_pass_duration_seconds"
	metricDowntime          = "pgtwopass_downtime_seconds"
	metricPredictedDowntime = "pgtwopass_predicted_downtime_seconds"
	metricServerStopped     = "pgtwopass_server_stopped"
	metricServerRestarted   = "pgtwopass_server_restarted"
)

// newMetricsFile returns the metrics file that --metrics-file names, or
// nil. Its directory must exist, so that a typo fails before any work.
func newMetricsFile(path, command, dest string) (*metricsFile, error) {
	if path == "" {
		return nil, nil
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return nil, &pgsync.InputError{
			What: fmt.Sprintf("invalid --metrics-file %s: its directory %s does not exist", path, filepath.Dir(path)),
			Hint: "give a file in an existing directory, e.g. node_exporter's textfile directory: --metrics-file /var/lib/prometheus/node-exporter/pgtwopass.prom",
		}
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, &pgsync.InputError{What: fmt.Sprintf("invalid --metrics-file %s: it is a directory", path), Hint: "give a file name ending in .prom"}
	}
	return &metricsFile{path: path, command: command, dest: dest}, nil
}

// write replaces the file with the metrics of this run: res may be nil
// (the run failed before a pass), code is the exit status. The last
// success time of a failed run is taken from the file it replaces.
func (m *metricsFile) write(res *pgsync.Result, code int, now time.Time) error {
	var b bytes.Buffer
	for _, mf := range m.families(res, code, now) {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			return fmt.Errorf("failed to format the metrics: %w", err)
		}
	}
	dir := filepath.Dir(m.path)
	// renameio: a temporary file in the same directory (its name starts
	// with a dot and does not end in .prom, so the collector skips it),
	// fsync, rename over the old file; then fsync the directory. Mode 0644
	// whatever the umask (the units in contrib/systemd set 0077): the
	// collector runs as another user.
	if err := renameio.WriteFile(m.path, b.Bytes(), 0o644, renameio.WithTempDir(dir), renameio.WithStaticPermissions(0o644)); err != nil {
		return fmt.Errorf("failed to write the metrics file: %w", err)
	}
	if err := manifest.SyncDir(dir); err != nil {
		return fmt.Errorf("failed to sync the metrics file's directory: %w", err)
	}
	return nil
}

// families builds the metric families of a run, sorted by name.
func (m *metricsFile) families(res *pgsync.Result, code int, now time.Time) []*dto.MetricFamily {
	base := []*dto.LabelPair{label("command", m.command), label("dest", m.dest)}
	fams := map[string]*dto.MetricFamily{}
	series := func(name, help string, labels []*dto.LabelPair, v float64) {
		mf := fams[name]
		if mf == nil {
			mf = &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: dto.MetricType_GAUGE.Enum()}
			fams[name] = mf
		}
		mf.Metric = append(mf.Metric, &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: proto.Float64(v)}})
	}
	gauge := func(name, help string, v float64, extra ...*dto.LabelPair) {
		series(name, help, append(slices.Clone(base), extra...), v)
	}
	unix := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

	gauge(metricLastRun, "Unix time when the last run of pgtwopass ended.", unix(now))
	gauge(metricExitStatus, "Exit status of the last run: 0 success, 1 failure, 2 bad input, 3 downtime budget not met.", float64(code))

	// The last success: now, or as the file being replaced says. Series of
	// other commands writing the same file are kept as they were.
	help := "Unix time when the last successful run ended (kept from the earlier file while runs fail)."
	for _, old := range m.previousSuccesses() {
		if code != 0 || !sameLabels(old.Label, base) {
			series(metricLastSuccess, help, old.Label, old.GetGauge().GetValue())
		}
	}
	if code == 0 {
		gauge(metricLastSuccess, help, unix(now))
	}

	if res != nil {
		end := res.Finished
		if end.IsZero() {
			end = now
		}
		gauge(metricRunSeconds, "Seconds the last run took.", end.Sub(res.Started).Seconds())
	}
	var passes []pgsync.PassStats
	if res != nil {
		passes = res.Passes
	}
	gauge(metricPasses, "Passes the last run completed (live and cold).", float64(len(passes)))
	for i, p := range passes {
		l := []*dto.LabelPair{label("pass", strconv.Itoa(i+1)), label("kind", p.Kind.String())}
		gauge(metricPassRead, "Bytes the pass read (from the source, and from the copy where the manifest could not answer).", float64(p.BytesRead), l...)
		gauge(metricPassWritten, "Bytes the pass wrote to the copy.", float64(p.BytesWritten), l...)
		gauge(metricPassFilesChanged, "Files whose contents or metadata the pass wrote.", float64(p.FilesChanged), l...)
		gauge(metricPassSeconds, "Seconds the pass took.", p.Duration().Seconds(), l...)
	}
	if m.command != "prepare" && res != nil {
		gauge(metricDowntime, "Seconds the source server was down: from the stop until the restarted server accepts connections, or to the end of the cold pass without --restart.", res.Downtime.Seconds())
		gauge(metricServerStopped, "1 when the last run stopped the source server.", b2f(res.Stopped))
		gauge(metricServerRestarted, "1 when the last run started the source server again.", b2f(res.Restarted))
		if p := res.Prediction; p != nil {
			gauge(metricPredictedDowntime, "Downtime predicted before the stop (or before refusing to stop, exit status 3).", p.Downtime.Seconds())
		}
	}

	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]*dto.MetricFamily, len(names))
	for i, n := range names {
		out[i] = fams[n]
	}
	return out
}

// previousSuccesses returns the last-success series of the file being
// replaced; none when it is missing or cannot be parsed (it is replaced
// whole anyway).
func (m *metricsFile) previousSuccesses() []*dto.Metric {
	f, err := os.Open(m.path)
	if err != nil {
		return nil // missing (the first run) or unreadable: replaced whole
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		return nil
	}
	if mf := fams[metricLastSuccess]; mf != nil && mf.GetType() == dto.MetricType_GAUGE {
		return mf.Metric
	}
	return nil
}

func label(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
}

// sameLabels reports whether two label sets are equal, in any order.
func sameLabels(a, b []*dto.LabelPair) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x.GetName() == y.GetName() && x.GetValue() == y.GetValue() {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
