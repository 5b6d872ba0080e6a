package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
)

// debianCluster is a cluster made by postgresql-common's pg_createcluster.
type debianCluster struct {
	version, name string
	port          int
	dataDir       string // as made: /var/lib/postgresql/VERSION/NAME
	confDir       string
	logFile       string
}

// newDebianCluster makes a cluster with pg_createcluster (as root, on a
// free port), started with pg_ctlcluster, and drops it with pg_dropcluster
// --stop when the test ends, also when it fails; the data directory it was
// made with is removed too (the runbook moves data_directory away from it).
func newDebianCluster(t *testing.T, version string) *debianCluster {
	t.Helper()
	needPG(t)
	needRoot(t, "pg_createcluster makes clusters as root")
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		t.Skip("postgresql-common is not installed (pg_createcluster):", err)
	}
	port, err := scratch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c := &debianCluster{version: version, name: fmt.Sprintf("pgtwopass-it-%d", port), port: port}
	c.dataDir = filepath.Join("/var/lib/postgresql", version, c.name)
	c.confDir = filepath.Join("/etc/postgresql", version, c.name)
	c.logFile = fmt.Sprintf("/var/log/postgresql/postgresql-%s-%s.log", version, c.name)
	t.Cleanup(func() {
		out, err := exec.Command("pg_dropcluster", "--stop", version, c.name).CombinedOutput()
		if err != nil {
			t.Errorf("pg_dropcluster --stop %s %s: %v\n%s", version, c.name, err, out)
		}
		os.RemoveAll(c.dataDir)
		os.Remove(c.logFile)
	})
	c.run(t, "pg_createcluster", "-p", fmt.Sprint(port), "--start", version, c.name)
	return c
}

func (c *debianCluster) run(t *testing.T, prog string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctxFor(t, 3*time.Minute), prog, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// asPostgres runs a PostgreSQL client of the cluster's version as the OS
// user postgres over the unix socket: peer authentication, as a DBA would.
func (c *debianCluster) asPostgres(t *testing.T, prog string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctxFor(t, 3*time.Minute), filepath.Join("/usr/lib/postgresql", c.version, "bin", prog),
		append([]string{"-h", "/var/run/postgresql", "-p", fmt.Sprint(c.port)}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "HOME=/var/lib/postgresql")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: postgresCred(t)}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (as postgres): %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (c *debianCluster) query(t *testing.T, sql string) string {
	t.Helper()
	return c.asPostgres(t, "psql", "-XAtq", "-d", "postgres", "-c", sql)
}

// online reports whether pg_lsclusters says the cluster runs.
func (c *debianCluster) online(t *testing.T) bool {
	t.Helper()
	var list []struct {
		Version json.Number `json:"version"`
		Cluster string      `json:"cluster"`
		Running int         `json:"running"`
	}
	if err := json.Unmarshal([]byte(c.run(t, "pg_lsclusters", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if l.Version.String() == c.version && l.Cluster == c.name {
			return l.Running == 1
		}
	}
	t.Fatalf("pg_lsclusters does not list %s/%s", c.version, c.name)
	return false
}

// TestDebianCluster: a cluster as Debian and Ubuntu make them
// (pg_createcluster: configuration in /etc/postgresql, peer authentication
// for postgres, no data checksums, the log in /var/log/postgresql), copied by
// root with default flags, as the runbook says:
//   - the CHECKPOINT runs, as the OS user postgres (peer authentication);
//   - pgtwopass finds the cluster and stops and starts it with pg_ctlcluster
//     (systemd does not run here; where it runs the cluster's unit,
//     TestNewDebianChoosesTheWay in pkg/pgctl checks the choice), and says so;
//   - the downtime is within the prediction's usual error;
//   - the cluster is online again under pg_ctlcluster, and the restart is in
//     its own log in /var/log/postgresql, no log file of pgtwopass's;
//   - the copy starts after the runbook's steps (data_directory moved, the
//     cluster started with pg_ctlcluster) and holds the source's data; verify
//     (the runbook's check for clusters without data checksums) finds no
//     difference.
func TestDebianCluster(t *testing.T) {
	version := "15"
	if _, err := os.Stat(filepath.Join("/usr/lib/postgresql", version, "bin", "pg_ctl")); err != nil {
		t.Skip("Debian's PostgreSQL", version, "is not installed:", err)
	}
	c := newDebianCluster(t, version)
	c.asPostgres(t, "pgbench", "-i", "-q", "-s", "5", "postgres")
	// Dirty pages in shared buffers, for the CHECKPOINT to write.
	c.query(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 7 = 0")
	if c.query(t, "SHOW data_checksums") != "off" {
		t.Fatalf("test premise: Debian's clusters of %s have no data checksums", version)
	}
	dest := filepath.Join(pgTempDir(t), "copy")
	tmp := t.TempDir()
	env := runOpts{env: []string{"TMPDIR=" + tmp}}

	if r := runWith(t, env, "prepare", c.dataDir, dest); r.code != 0 {
		t.Fatalf("prepare of the Debian cluster: %s", r)
	}
	logBefore := fileSize(t, c.logFile)
	r := runWith(t, env, "sync", "--restart", "--json", "--log-format", "json", c.dataDir, dest)
	if r.code != 0 {
		t.Fatalf("sync --restart of the Debian cluster with default flags: %s", r)
	}
	if w := warnings(t, r.stderr); len(w) > 0 {
		t.Errorf("sync of a Debian cluster warns of nothing (the CHECKPOINT runs as postgres, the log is the cluster's): %q", w)
	}
	for _, want := range []string{
		`"msg":"the CHECKPOINT before the stop will run: connected as OS user postgres as role postgres (a superuser)"`,
		`"msg":"CHECKPOINT, so that the pages in shared buffers are on disk before the last live pass"`,
		fmt.Sprintf(`"msg":"SRC is Debian cluster %s/%s of postgresql-common: stopping and starting it with pg_ctlcluster %s %s (Debian cluster %s/%s), as systemd does not run on this host"`,
			version, c.name, version, c.name, version, c.name),
		`"msg":"the restarted server: its log where the cluster's configuration says: ` + c.logFile + `"`,
		`"msg":"server stopped"`, `"msg":"server started"`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the log says %s:\n%s", want, r.stderr)
		}
	}
	var s summaryJSON
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.DowntimeSeconds == nil || s.PredictedDowntimeSeconds == nil {
		t.Fatalf("sync --json reports the downtime and its prediction: %s", r.stdout)
	}
	actual, predicted := *s.DowntimeSeconds, *s.PredictedDowntimeSeconds
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, `"msg":"predicted downtime`) {
			t.Log(l)
		}
	}
	t.Logf("Debian cluster %s/%s: downtime %.2f s, predicted %.2f s (error %+.0f%%)", version, c.name, actual, predicted, (predicted-actual)/actual*100)
	// The prediction's usual error, (predicted - actual) / actual
	// (docs/benchmarks.md): +6% to +30% on a quiet machine, down to -45%
	// when other work slows the stop, the cold pass or the start; here
	// within ±50% (and 0.1 s). Before, without the CHECKPOINT and with
	// idle passes for a read rate, it was +2500% to +10000%.
	if actual > predicted*2+0.1 || actual < predicted/1.5-0.1 {
		t.Errorf("the downtime %.2f s is within the prediction's usual error of %.2f s", actual, predicted)
	}

	if !c.online(t) {
		t.Errorf("pg_lsclusters says %s/%s is online again after sync --restart", version, c.name)
	}
	if st := pgctl.ReadServerState(c.dataDir); !st.Running {
		t.Errorf("the cluster runs again: %s", st)
	}
	if b, err := os.ReadFile(c.logFile); err != nil || int64(len(b)) <= logBefore ||
		!strings.Contains(string(b[logBefore:]), "database system is ready to accept connections") {
		t.Errorf("the restarted cluster logs to its own log %s, as pg_ctlcluster starts it (%v):\n%s", c.logFile, err, b[min(logBefore, int64(len(b))):])
	}
	if m, _ := filepath.Glob(filepath.Join(tmp, "*")); len(m) > 0 {
		t.Errorf("pgtwopass chooses no log file of its own, but its temporary directory holds %v", m)
	}

	// The runbook's window: finish (default flags: the server stays
	// stopped), check the copy, point data_directory at it, start the
	// cluster.
	c.query(t, "UPDATE pgbench_branches SET bbalance = bbalance + 1")
	want := c.query(t, "SELECT sum(abalance), count(*) FROM pgbench_accounts") + " " + c.query(t, "SELECT sum(bbalance) FROM pgbench_branches")
	if r := runWith(t, env, "finish", c.dataDir, dest); r.code != 0 || !strings.Contains(r.stdout, "so far (the source server is stopped)") {
		t.Fatalf("finish of the Debian cluster stops it with pg_ctlcluster and says so: %s", r)
	}
	if c.online(t) {
		t.Fatalf("after finish pg_lsclusters says %s/%s is down", version, c.name)
	}
	if r := runWith(t, runOpts{}, "verify", c.dataDir, dest); r.code != 0 {
		t.Errorf("verify SRC DEST of the stopped cluster and its copy finds no difference: %s", r)
	}
	conf := filepath.Join(c.confDir, "postgresql.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^data_directory = .*$`)
	if !re.Match(b) {
		t.Fatalf("%s sets data_directory", conf)
	}
	if err := os.WriteFile(conf, re.ReplaceAll(b, []byte("data_directory = '"+dest+"'")), 0o644); err != nil {
		t.Fatal(err)
	}
	c.run(t, "pg_ctlcluster", version, c.name, "start")
	if got := c.query(t, "SHOW data_directory"); got != dest {
		t.Errorf("the cluster runs on the copy: data_directory %s, want %s", got, dest)
	}
	if got := c.query(t, "SELECT sum(abalance), count(*) FROM pgbench_accounts") + " " + c.query(t, "SELECT sum(bbalance) FROM pgbench_branches"); got != want {
		t.Errorf("the copy answers as the source did: %q, want %q", got, want)
	}
}
