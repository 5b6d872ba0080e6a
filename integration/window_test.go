package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The maintenance window: live passes that converge, the downtime budget,
// the progress display and the metrics file, against real servers under a
// pgbench write load.

// checkConvergence fails the test unless the live passes of a prepare
// followed the rule: repeat while each pass writes fewer bytes than the one
// before, stop after a pass that writes nothing or no less than the one
// before, never run more than max.
func checkConvergence(t *testing.T, what string, s summaryJSON, maxPasses int) {
	t.Helper()
	n := len(s.Passes)
	if n < 1 || n > maxPasses {
		t.Fatalf("%s: prepare runs 1 to --max-passes %d live passes, ran %d: %+v", what, maxPasses, n, s.Passes)
	}
	w := func(i int) int64 { return s.Passes[i].BytesWritten }
	for i, p := range s.Passes {
		if p.Kind != "live" {
			t.Errorf("%s: prepare runs live passes only: pass %d is %q", what, i+1, p.Kind)
		}
		if p.Seconds <= 0 || p.BytesRead < p.BytesWritten || p.FilesChanged < 0 {
			t.Errorf("%s: pass %d is reported in detail (seconds > 0, bytes read >= bytes written): %+v", what, i+1, p)
		}
		if i > 0 && i < n-1 && w(i) >= w(i-1) {
			t.Errorf("%s: live passes go on only while each writes less than the one before, but pass %d wrote %d after %d and pass %d followed",
				what, i+1, w(i), w(i-1), i+2)
		}
		if i < n-1 && w(i) == 0 {
			t.Errorf("%s: a live pass that writes nothing ends the passes, but pass %d wrote nothing and pass %d followed", what, i+1, i+2)
		}
	}
	last := n - 1
	stopped := n == maxPasses || w(last) == 0 || (n > 1 && w(last) >= w(last-1))
	if !stopped {
		t.Errorf("%s: the passes end at --max-passes %d, at a pass that writes nothing, or at one that writes no less than the one before; they ended after pass %d, which wrote %d (the one before: %d)",
			what, maxPasses, n, w(last), w(max(last-1, 0)))
	}
	var read, written int64
	for _, p := range s.Passes {
		read, written = read+p.BytesRead, written+p.BytesWritten
	}
	if s.BytesRead != read || s.BytesWritten != written {
		t.Errorf("%s: the summary's bytes are the sum of its passes': read %d (passes %d), written %d (passes %d)", what, s.BytesRead, read, s.BytesWritten, written)
	}
}

// TestLivePassesConvergeUnderLoad: prepare repeats live passes while the
// load runs, as long as each writes less than the one before, at most
// --max-passes; --json reports each pass, and --metrics-file says the same.
func TestLivePassesConvergeUnderLoad(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 3)
	startCluster(t, src)
	base := t.TempDir()
	dest := filepath.Join(base, "copy")
	metrics := filepath.Join(base, "pgtwopass.prom")
	load, err := src.Load(ctxFor(t, 3*time.Minute), 2, 0)
	if err != nil {
		t.Fatalf("start the pgbench load: %v", err)
	}
	t.Cleanup(func() { load.Stop() })

	// Into an empty DEST the first pass copies everything and the second
	// only what changed meanwhile: it writes less, so only --max-passes 2
	// keeps a third from running.
	var first summaryJSON
	runJSON(t, &first, "prepare", "--json", "--max-passes", "2", src.Dir, dest)
	checkConvergence(t, "prepare --max-passes 2 into an empty DEST", first, 2)
	if k := passKinds(first); len(k) != 2 {
		t.Fatalf("prepare into an empty DEST under load runs more than one live pass, up to --max-passes 2: passes %v", k)
	}
	if first.Passes[1].BytesWritten >= first.Passes[0].BytesWritten {
		t.Errorf("the second live pass writes less than the first, which copied everything: %d >= %d", first.Passes[1].BytesWritten, first.Passes[0].BytesWritten)
	}

	// Again with the default --max-passes (5), still under load.
	var res summaryJSON
	runJSON(t, &res, "prepare", "--json", "--metrics-file", metrics, src.Dir, dest)
	checkConvergence(t, "prepare under load", res, 5)
	t.Logf("live passes under load: %+v", res.Passes)
	if n, err := load.Stop(); err != nil || n == 0 {
		t.Errorf("the load ran during the passes: %d transactions, %v", n, err)
	}

	// The metrics file says what --json says.
	fams := parseMetrics(t, metrics)
	labels := map[string]string{"command": "prepare", "dest": dest}
	eq := func(name string, l map[string]string, want float64) {
		t.Helper()
		got, ok := metricValue(fams, name, l)
		if !ok || math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("the metrics file agrees with --json: %s%v = %v (present %v), --json says %v", name, l, got, ok, want)
		}
	}
	eq("pgtwopass_exit_status", labels, 0)
	eq("pgtwopass_passes", labels, float64(len(res.Passes)))
	eq("pgtwopass_run_duration_seconds", labels, res.DurationSeconds)
	for i, p := range res.Passes {
		l := map[string]string{"command": "prepare", "dest": dest, "pass": itoa(int64(i + 1)), "kind": p.Kind}
		eq("pgtwopass_pass_read_bytes", l, float64(p.BytesRead))
		eq("pgtwopass_pass_written_bytes", l, float64(p.BytesWritten))
		eq("pgtwopass_pass_files_changed", l, float64(p.FilesChanged))
		eq("pgtwopass_pass_duration_seconds", l, p.Seconds)
	}
	lastRun, _ := metricValue(fams, "pgtwopass_last_run_timestamp_seconds", labels)
	eq("pgtwopass_last_success_timestamp_seconds", labels, lastRun)
	if d := time.Since(time.Unix(int64(lastRun), 0)); d < 0 || d > 10*time.Minute {
		t.Errorf("the last run time is when the run ended, in Unix seconds: %v (%v ago)", lastRun, d)
	}
	if _, ok := metricValue(fams, "pgtwopass_downtime_seconds", nil); ok {
		t.Errorf("prepare stops nothing: no downtime in its metrics")
	}
	checkMetricsFileText(t, metrics)
}

// TestDowntimeBudget: finish refuses to stop the server when the predicted
// downtime exceeds --max-downtime (exit 3, the prediction and a hint; the
// server keeps running, the copy stays unsealed), and proceeds within a
// generous budget. The metrics file follows every run.
func TestDowntimeBudget(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 2)
	startCluster(t, src)
	base := t.TempDir()
	dest := filepath.Join(base, "copy")
	metrics := filepath.Join(base, "pgtwopass.prom")
	load, err := src.Load(ctxFor(t, 3*time.Minute), 2, 0)
	if err != nil {
		t.Fatalf("start the pgbench load: %v", err)
	}
	t.Cleanup(func() { load.Stop() })

	mustRun(t, "prepare", "--metrics-file", metrics, src.Dir, dest)
	prepLabels := map[string]string{"command": "prepare", "dest": dest}
	finLabels := map[string]string{"command": "finish", "dest": dest}
	prepSuccess, ok := metricValue(parseMetrics(t, metrics), "pgtwopass_last_success_timestamp_seconds", prepLabels)
	if !ok {
		t.Fatalf("a successful prepare records its last success time in the metrics file")
	}

	refuse := func(what string) summaryJSON {
		t.Helper()
		args := []string{"finish", "--max-downtime", "1ms", "--json", "--metrics-file", metrics, src.Dir, dest}
		stdout, stderr, code := run(t, args...)
		if code != 3 {
			t.Fatalf("%s: finish with a budget the prediction exceeds exits 3: exit %d\nstdout:\n%s\nstderr:\n%s", what, code, stdout, stderr)
		}
		errs, hints := stderrLines(stderr, "pgtwopass: error:"), stderrLines(stderr, "pgtwopass: hint:")
		if len(errs) != 1 || !strings.Contains(errs[0], "predicted downtime") || !strings.Contains(errs[0], "exceeds --max-downtime 1ms") || !strings.Contains(errs[0], "not stopped") {
			t.Errorf("%s: the refusal gives the prediction, the budget, and says the server was not stopped: %q", what, errs)
		}
		if len(hints) != 1 || !strings.Contains(hints[0], "prepare again") || !strings.Contains(hints[0], "--cold-pass=quick") || !strings.Contains(hints[0], "quieter hour") {
			t.Errorf("%s: the refusal's hint names more passes, quick mode and a quieter hour: %q", what, hints)
		}
		var s summaryJSON
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatalf("%s: --json prints the summary also when the budget is refused: %v\n%s", what, err, stdout)
		}
		if !strings.Contains(stdout, `"ok": false`) || s.OK || s.Stopped == nil || *s.Stopped {
			t.Errorf("%s: the summary says ok = false and stopped = false: ok %v, stopped %v", what, s.OK, s.Stopped)
		}
		if s.PredictedDowntimeSeconds == nil || *s.PredictedDowntimeSeconds <= 0.001 {
			t.Errorf("%s: the summary gives the prediction that exceeded the budget: predicted_downtime_seconds = %v", what, s.PredictedDowntimeSeconds)
		}
		for _, k := range passKinds(s) {
			if k == "cold" {
				t.Errorf("%s: no cold pass runs when the budget is refused: passes %v", what, passKinds(s))
			}
		}
		if !src.Running() {
			t.Fatalf("%s: the budget refusal leaves the server running, but it is down", what)
		}
		if got := query(t, src, "SELECT 1"); got != "1" {
			t.Errorf("%s: after the refusal the server answers queries: SELECT 1 = %q", what, got)
		}
		if sealed(t, dest) {
			t.Errorf("%s: after the refusal the copy stays unsealed (no global/pg_control)", what)
		}
		var st statusJSON
		runJSON(t, &st, "status", "--json", dest)
		if st.Sealed == nil || *st.Sealed {
			t.Errorf("%s: status of the copy after the refusal says sealed = %v, want false", what, st.Sealed)
		}
		fams := parseMetrics(t, metrics)
		if v, ok := metricValue(fams, "pgtwopass_exit_status", finLabels); !ok || v != 3 {
			t.Errorf("%s: the metrics file records the refusal's exit status 3: %v (present %v)", what, v, ok)
		}
		if v, ok := metricValue(fams, "pgtwopass_predicted_downtime_seconds", finLabels); !ok || v != *s.PredictedDowntimeSeconds {
			t.Errorf("%s: the metrics file gives --json's prediction %v: %v (present %v)", what, *s.PredictedDowntimeSeconds, v, ok)
		}
		if v, ok := metricValue(fams, "pgtwopass_server_stopped", finLabels); !ok || v != 0 {
			t.Errorf("%s: the metrics file says the server was not stopped: %v (present %v)", what, v, ok)
		}
		if v, _ := metricValue(fams, "pgtwopass_last_success_timestamp_seconds", prepLabels); v != prepSuccess {
			t.Errorf("%s: a failed finish keeps prepare's last success time from the file it replaces: %v, want %v", what, v, prepSuccess)
		}
		checkMetricsFileText(t, metrics)
		return s
	}

	refused := refuse("budget 1ms under load")
	t.Logf("refused: predicted %.3fs", *refused.PredictedDowntimeSeconds)
	if _, ok := metricValue(parseMetrics(t, metrics), "pgtwopass_last_success_timestamp_seconds", finLabels); ok {
		t.Errorf("a finish that never succeeded has no last success time in the metrics file")
	}

	// A generous budget: finish stops, copies, seals and restarts.
	var res summaryJSON
	runJSON(t, &res, "finish", "--max-downtime", "1h", "--restart", "--json", "--metrics-file", metrics, src.Dir, dest)
	if res.Stopped == nil || !*res.Stopped || res.Restarted == nil || !*res.Restarted {
		t.Errorf("within a generous budget finish stops and restarts the server: stopped %v, restarted %v", res.Stopped, res.Restarted)
	}
	if k := passKinds(res); len(k) == 0 || k[len(k)-1] != "cold" {
		t.Errorf("within a generous budget finish ends with a cold pass: passes %v", k)
	}
	if !sealed(t, dest) {
		t.Errorf("within a generous budget finish seals the copy")
	}
	if res.DowntimeSeconds == nil || *res.DowntimeSeconds <= 0 || res.PredictedDowntimeSeconds == nil || *res.PredictedDowntimeSeconds <= 0 {
		t.Fatalf("--json gives predicted_downtime_seconds next to downtime_seconds: %v, %v", res.PredictedDowntimeSeconds, res.DowntimeSeconds)
	}
	t.Logf("within budget: downtime %.3fs, predicted %.3fs", *res.DowntimeSeconds, *res.PredictedDowntimeSeconds)
	if got := query(t, src, "SELECT 1"); got != "1" {
		t.Errorf("finish --restart leaves the server answering queries: SELECT 1 = %q", got)
	}
	load.Stop()
	fams := parseMetrics(t, metrics)
	for name, want := range map[string]float64{
		"pgtwopass_exit_status":                0,
		"pgtwopass_downtime_seconds":           *res.DowntimeSeconds,
		"pgtwopass_predicted_downtime_seconds": *res.PredictedDowntimeSeconds,
		"pgtwopass_server_stopped":             1,
		"pgtwopass_server_restarted":           1,
		"pgtwopass_passes":                     float64(len(res.Passes)),
	} {
		if v, ok := metricValue(fams, name, finLabels); !ok || v != want {
			t.Errorf("the metrics file of a successful finish agrees with --json: %s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	finSuccess, _ := metricValue(fams, "pgtwopass_last_success_timestamp_seconds", finLabels)
	if lastRun, _ := metricValue(fams, "pgtwopass_last_run_timestamp_seconds", finLabels); finSuccess != lastRun || finSuccess == 0 {
		t.Errorf("a successful finish's last success time is its last run time: %v, %v", finSuccess, lastRun)
	}

	// Refused again: finish's own last success time is kept.
	refuse("budget 1ms after a successful finish")
	if v, _ := metricValue(parseMetrics(t, metrics), "pgtwopass_last_success_timestamp_seconds", finLabels); v != finSuccess {
		t.Errorf("a failed finish keeps the last success time of the finish before it: %v, want %v", v, finSuccess)
	}
}

// ansiSeq matches the terminal control sequences of the progress display.
var ansiSeq = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")

// checkLogLinesWhole fails the test unless every JSON log line on stderr
// is whole: the progress display never writes into a log line.
func checkLogLinesWhole(t *testing.T, what, stderr string) {
	t.Helper()
	n := 0
	for _, line := range strings.Split(ansiSeq.ReplaceAllString(stderr, ""), "\n") {
		i := strings.Index(line, `{"level"`)
		if i < 0 {
			continue
		}
		n++
		var v map[string]any
		if err := json.Unmarshal([]byte(line[i:]), &v); err != nil || strings.TrimSpace(line[:i]) != "" {
			t.Errorf("%s: log lines are not garbled by the progress display: %q (%v)", what, line, err)
		}
	}
	if n == 0 {
		t.Errorf("%s: stderr has JSON log lines:\n%s", what, stderr)
	}
}

// TestProgressDisplay: without a terminal nothing is drawn and the log is
// for people (console lines, also into a pipe); --progress into a pipe
// prints one plain line per second, with the downtime while the server is
// down, between whole log lines.
func TestProgressDisplay(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	startCluster(t, src)
	dest := filepath.Join(t.TempDir(), "copy")

	_, stderr := mustRun(t, "prepare", src.Dir, dest)
	if strings.Contains(stderr, "\x1b") || strings.Contains(stderr, "pass 1 [") {
		t.Errorf("without a terminal and without --progress no progress is drawn on stderr:\n%s", stderr)
	}
	consoleLine := regexp.MustCompile(`^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}\t(INFO|WARN)\t`)
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !consoleLine.MatchString(line) {
			t.Errorf("without a terminal stderr holds console log lines only (JSON only with --log-format json or under systemd): %q", line)
		}
	}

	// The delay after each file keeps the server down for a few seconds,
	// so that a line or two is printed while it is down.
	r := runWith(t, runOpts{env: []string{"PGTWOPASS_FAULT_FILE_DELAY=2ms"}}, "finish", "--restart", "--progress", "--log-format", "json", src.Dir, dest)
	if r.code != 0 {
		t.Fatalf("finish --progress: %s", r)
	}
	plain := r.stderr
	for what, want := range map[string]*regexp.Regexp{
		"a line for the cold pass, with the downtime so far":   regexp.MustCompile(`(?m)^cold pass 2: .* / .*/s  wrote .*; server down [0-9.]+s \(since [0-9:]+\): cold pass$`),
		"the downtime measured, once the server runs again":    regexp.MustCompile(`(?m)^server was down [0-9.]+s \(stopped [0-9:]+, running again [0-9:]+\)$`),
		"the log line of the stop":                             regexp.MustCompile(`"msg":"server stopped"`),
		"the log line of the restart, the last before the end": regexp.MustCompile(`"msg":"downtime [0-9.]+s, predicted`),
	} {
		if !want.MatchString(plain) {
			t.Errorf("finish --progress into a pipe prints %s (%s):\n%s", what, want, plain)
		}
	}
	if strings.Contains(r.stderr, "\x1b") || strings.Contains(r.stderr, "\r") {
		t.Errorf("--progress into a pipe prints plain lines, without terminal control sequences")
	}
	checkLogLinesWhole(t, "finish --progress", r.stderr)
	if !strings.Contains(r.stdout, "the copy is sealed") {
		t.Errorf("the summary still goes to stdout: %q", r.stdout)
	}

	// On a terminal the display is on by default, and --no-progress turns
	// it off (the server runs again: finish --restart started it).
	onTTY := ttyStderr(t, "prepare", src.Dir, dest)
	if !strings.Contains(ansiSeq.ReplaceAllString(onTTY, ""), "live pass 1 [") {
		t.Errorf("with stderr on a terminal, prepare draws a bar per pass without being asked:\n%q", onTTY)
	}
	if off := ttyStderr(t, "prepare", "--no-progress", src.Dir, dest); strings.Contains(off, "pass 1 [") || strings.Contains(off, "\x1b[") {
		t.Errorf("--no-progress draws nothing, also on a terminal:\n%q", off)
	}
}

// ttyStderr runs the binary with stderr on a pseudo-terminal of 120
// columns and returns what it wrote there; it must exit 0.
func ttyStderr(t *testing.T, args ...string) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal to test the display on a terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, runTimeout)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, ptmx); close(done) }() // ends with EIO once the child is gone
	err = cmd.Wait()
	ptmx.Close()
	<-done
	if err != nil {
		t.Fatalf("pgtwopass %s on a terminal: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), out.String())
	}
	return out.String()
}

// parseMetrics parses a metrics file with Prometheus's own parser.
func parseMetrics(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("--metrics-file writes the file: %v", err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("the metrics file is valid Prometheus text format: %v", err)
	}
	return fams
}

// metricValue returns the value of the series of name whose labels
// include want.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range want {
			ok = ok && have[k] == v
		}
		if ok {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// checkMetricsFileText checks what node_exporter's textfile collector
// needs beyond the syntax: names prefixed pgtwopass_, HELP and TYPE for
// each, no temporary file left beside it.
func checkMetricsFileText(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, mf := range parseMetrics(t, path) {
		if !strings.HasPrefix(name, "pgtwopass_") {
			t.Errorf("metric names are prefixed pgtwopass_: %s", name)
		}
		if !bytes.Contains(b, []byte("# HELP "+name+" ")) || !bytes.Contains(b, []byte("# TYPE "+name+" gauge\n")) || mf.GetHelp() == "" {
			t.Errorf("%s has HELP and TYPE lines", name)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("the atomic write of the metrics file leaves no temporary file: %s", e.Name())
		}
	}
}
