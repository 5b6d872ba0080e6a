package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// parseMetrics parses a metrics file with Prometheus's own parser.
func parseMetrics(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("the metrics file is valid Prometheus text format: %v", err)
	}
	return fams
}

// value returns the value of the series of name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			ok = ok && found
		}
		if ok {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestMetricsKeepLastSuccessAcrossFailures: a failed run replaces the file
// but keeps the last success time of the run before it, and of other
// commands writing the same file.
func TestMetricsKeepLastSuccessAcrossFailures(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o077)) // as under the systemd unit
	path := filepath.Join(t.TempDir(), "pgtwopass.prom")
	t0 := time.Unix(1_800_000_000, 0)
	res := &pgsync.Result{Started: t0, Finished: t0.Add(3 * time.Second), Passes: []pgsync.PassStats{
		{Kind: manifest.Live, Started: t0, Finished: t0.Add(2 * time.Second), BytesRead: 1000, BytesWritten: 500, FilesChanged: 3},
	}}
	prepare := &metricsFile{path: path, command: "prepare", dest: "/mnt/new/main"}
	finish := &metricsFile{path: path, command: "finish", dest: "/mnt/new/main"}
	if err := prepare.write(res, exitOK, t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := finish.write(nil, exitBudget, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := prepare.write(nil, exitFailure, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	fams := parseMetrics(t, path)
	prep := map[string]string{"command": "prepare", "dest": "/mnt/new/main"}
	if v, ok := value(fams, metricLastSuccess, prep); !ok || v != float64(t0.Unix()+3) {
		t.Errorf("a failed prepare keeps the last success time of the prepare before it: got %v (present %v), want %d", v, ok, t0.Unix()+3)
	}
	if _, ok := value(fams, metricLastSuccess, map[string]string{"command": "finish"}); ok {
		t.Errorf("a command that never succeeded has no last success time")
	}
	if v, ok := value(fams, metricExitStatus, prep); !ok || v != exitFailure {
		t.Errorf("the exit status is the failed run's: got %v (present %v), want %d", v, ok, exitFailure)
	}
	if v, ok := value(fams, metricLastRun, prep); !ok || v != float64(t0.Unix()+7200) {
		t.Errorf("the last run time is the failed run's: got %v (present %v)", v, ok)
	}
	if _, ok := value(fams, metricPassRead, nil); ok {
		t.Errorf("a run with no pass reports no pass metrics")
	}
	for name, mf := range fams {
		if mf.GetHelp() == "" || mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s has HELP and TYPE gauge lines: help %q, type %v", name, mf.GetHelp(), mf.GetType())
		}
	}
	// A success of the same command replaces its last success time.
	if err := prepare.write(res, exitOK, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	fams = parseMetrics(t, path)
	if v, _ := value(fams, metricLastSuccess, prep); v != float64(t0.Unix()+3*3600) {
		t.Errorf("a successful run sets the last success time to its end: got %v", v)
	}
	if n := len(fams[metricLastSuccess].GetMetric()); n != 1 {
		t.Errorf("one last success series per command and dest, got %d", n)
	}
	if v, ok := value(fams, metricPassWritten, map[string]string{"pass": "1", "kind": "live"}); !ok || v != 500 {
		t.Errorf("bytes written per pass, labelled with the pass's index and kind: got %v (present %v), want 500", v, ok)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("the metrics file is readable by node_exporter's user whatever the umask: mode %v (%v)", st.Mode().Perm(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the atomic write leaves no temporary file beside the metrics file: %v", entries)
	}
}
