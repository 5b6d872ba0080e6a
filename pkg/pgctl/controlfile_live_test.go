package pgctl

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// These tests run real servers of each major version (13 to 18) and check
// ReadControlFile against what the server itself reports of its pg_control
// (pg_control_system(), pg_control_checkpoint(), pg_control_init(),
// pg_control_recovery(), its settings) and against Debian's pg_controldata
// where it reads the format. With -update-pgcontrol they also rewrite
// testdata/pgcontrol, from which the unit tests check the reader without a
// server.

var updatePGControl = flag.Bool("update-pgcontrol", false,
	"rewrite testdata/pgcontrol from servers of each major version (scripts/install-pg-versions.sh)")

// serverSettings are set on the servers of these tests: values other than
// the defaults, so that a field read from the wrong place cannot match by
// chance.
var serverSettings = map[string]string{
	"wal_level":                 "logical",
	"wal_log_hints":             "on",
	"max_connections":           "37",
	"max_worker_processes":      "9",
	"max_wal_senders":           "7",
	"max_prepared_transactions": "3",
	"max_locks_per_transaction": "71",
	"track_commit_timestamp":    "on",
	"full_page_writes":          "off",
}

// versionOptions returns scratch options for PostgreSQL major, skipping the
// test loudly when it is not installed.
func versionOptions(t *testing.T, major string) scratch.Options {
	t.Helper()
	bin, err := scratch.VersionBinDir(major)
	if err != nil {
		t.Skipf("SKIP: %v", err)
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skipf("running as root and no postgres OS user to run the server as: %v", err)
		}
	}
	return scratch.Options{BinDir: bin}
}

// startVersion makes and starts a cluster of major with serverSettings and
// rare checkpoints; the test's cleanup stops it.
func startVersion(t *testing.T, ctx context.Context, major string) *scratch.Cluster {
	t.Helper()
	c, err := scratch.InitDB(ctx, filepath.Join(t.TempDir(), "data"), versionOptions(t, major))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	extra := []string{"checkpoint_timeout=1h", "log_min_messages=warning"}
	for k, v := range serverSettings {
		extra = append(extra, k+"="+v)
	}
	if err := c.Start(ctx, extra...); err != nil {
		t.Fatal(err)
	}
	// Some transactions, commit timestamps and a multixact, so that the
	// checkpoint's counters are not initdb's.
	if err := c.Exec(ctx, `CREATE TABLE t(i int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000);
		BEGIN; SELECT * FROM t WHERE i = 1 FOR SHARE; COMMIT; CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	return c
}

// serverView returns the server's own view of its pg_control: every column
// of pg_control_system(), pg_control_checkpoint(), pg_control_init() and
// pg_control_recovery() as json_each_text prints it, times in UTC.
func serverView(ctx context.Context, c *scratch.Cluster) (map[string]string, error) {
	conn, err := c.Connect(ctx, "")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		return nil, err
	}
	var q []string
	for _, f := range []string{"pg_control_system", "pg_control_checkpoint", "pg_control_init", "pg_control_recovery"} {
		q = append(q, fmt.Sprintf("SELECT key, value FROM %s() s, json_each_text(row_to_json(s))", f))
	}
	rows, err := conn.Query(ctx, strings.Join(q, " UNION ALL "))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, rows.Err()
}

// snapshot returns pg_control as it is on disk and the server's view of it,
// taken while neither changes (the two views around the read agree).
func snapshot(t *testing.T, ctx context.Context, c *scratch.Cluster) ([]byte, map[string]string) {
	t.Helper()
	for try := 0; try < 5; try++ {
		before, err := serverView(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(c.Dir, "global", "pg_control"))
		if err != nil {
			t.Fatal(err)
		}
		after, err := serverView(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(before, after) {
			return raw, after
		}
	}
	t.Fatal("pg_control kept changing while it was read")
	return nil, nil
}

// compareServerView reports each column of the server's view that c does
// not reproduce, and each column one of them lacks.
func compareServerView(t *testing.T, what string, c *ControlFile, server map[string]string) {
	t.Helper()
	ours := sqlView(c)
	for _, k := range sortedKeys(server) {
		if got, ok := ours[k]; !ok {
			t.Errorf("%s: the server reports %s = %q, which ControlFile does not give", what, k, server[k])
		} else if got != server[k] {
			t.Errorf("%s: %s = %q, the server says %q", what, k, got, server[k])
		}
	}
	for _, k := range sortedKeys(ours) {
		if _, ok := server[k]; !ok {
			t.Errorf("%s: the server reports no %s (ControlFile says %q)", what, k, ours[k])
		}
	}
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// TestControlFileMatchesServerEveryMajor is the reader's ground truth for
// every layout: on a running server of each major version, every value the
// server reports of its pg_control equals the reader's, and the settings
// the server wrote into pg_control are the ones it runs with. Then the
// states the engine relies on: a clean stop reads as cleanly shut down,
// a crash (immediate stop) does not.
func TestControlFileMatchesServerEveryMajor(t *testing.T) {
	for _, major := range scratch.SupportedMajors {
		t.Run(major, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c := startVersion(t, ctx, major)
			raw, server := snapshot(t, ctx, c)
			cf, err := ParseControlFile(raw)
			if err != nil {
				t.Fatalf("ParseControlFile of a running %s: %v", major, err)
			}
			compareServerView(t, "running "+major, cf, server)
			if cf.State != StateInProduction || cf.CleanlyShutDown() {
				t.Errorf("a running %s must read as in production, not cleanly shut down: %v", major, cf.State)
			}
			checkSettings(t, ctx, c, cf)
			if err := checkMajorFields(major, cf); err != nil {
				t.Error(err)
			}

			must(t, c.Stop(ctx, "fast"))
			stopped, err := ReadControlFile(c.Dir)
			if err != nil {
				t.Fatalf("ReadControlFile of a stopped %s: %v", major, err)
			}
			if stopped.State != StateShutDown || !stopped.CleanlyShutDown() {
				t.Errorf("a cleanly stopped %s must read as shut down: %v", major, stopped.State)
			}
			if stopped.CheckPoint <= cf.CheckPoint || stopped.Redo != stopped.CheckPoint {
				t.Errorf("the shutdown checkpoint of %s must follow the last one and start at itself: %s (redo %s) after %s",
					major, stopped.CheckPoint, stopped.Redo, cf.CheckPoint)
			}
			if stopped.SystemIdentifier != cf.SystemIdentifier {
				t.Errorf("the system identifier of %s changed across a restart: %d, then %d", major, cf.SystemIdentifier, stopped.SystemIdentifier)
			}

			must(t, c.Start(ctx, "checkpoint_timeout=1h"))
			must(t, c.Stop(ctx, "immediate"))
			crashed, err := ReadControlFile(c.Dir)
			if err != nil {
				t.Fatalf("ReadControlFile of a crashed %s: %v", major, err)
			}
			if crashed.CleanlyShutDown() {
				t.Errorf("a %s stopped in immediate mode must not read as cleanly shut down: %v", major, crashed.State)
			}
		})
	}
}

// checkSettings compares the settings pg_control records with SHOW: the
// server writes them into pg_control when it starts, and the checkpoint
// records full_page_writes (and from 17 wal_level).
func checkSettings(t *testing.T, ctx context.Context, c *scratch.Cluster, cf *ControlFile) {
	t.Helper()
	onOff := map[bool]string{true: "on", false: "off"}
	want := map[string]string{
		"wal_level":                 cf.WALLevel.String(),
		"wal_log_hints":             onOff[cf.WALLogHints],
		"max_connections":           fmt.Sprint(cf.MaxConnections),
		"max_worker_processes":      fmt.Sprint(cf.MaxWorkerProcesses),
		"max_wal_senders":           fmt.Sprint(cf.MaxWALSenders),
		"max_prepared_transactions": fmt.Sprint(cf.MaxPreparedXacts),
		"max_locks_per_transaction": fmt.Sprint(cf.MaxLocksPerXact),
		"track_commit_timestamp":    onOff[cf.TrackCommitTimestamp],
		"full_page_writes":          onOff[cf.FullPageWrites],
		"data_checksums":            onOff[cf.DataChecksums()],
		"block_size":                fmt.Sprint(cf.BlockSize),
		"wal_block_size":            fmt.Sprint(cf.XLogBlockSize),
		"wal_segment_size":          "",
	}
	for k, v := range want {
		q := "SHOW " + k
		if k == "wal_segment_size" {
			q = "SELECT setting || unit FROM pg_settings WHERE name = 'wal_segment_size'"
			v = fmt.Sprint(cf.XLogSegSize) + "B"
		}
		got, err := c.QueryString(ctx, q)
		if err != nil {
			t.Errorf("%s: %v", q, err)
		} else if got != v {
			t.Errorf("pg_control gives %s = %s, the server runs with %s", k, v, got)
		}
		if s, ok := serverSettings[k]; ok && s != got {
			t.Errorf("the server runs with %s = %s, not the %s the test set", k, got, s)
		}
	}
	if cf.CheckPointWALLevel != nil && cf.CheckPointWALLevel.String() != want["wal_level"] {
		t.Errorf("the checkpoint's wal_level is %s, the server runs with %s", cf.CheckPointWALLevel, want["wal_level"])
	}
}

// TestControlFileMatchesPgControldata checks every line of pg_controldata's
// output against ControlFile.Fields, for the versions whose pg_controldata
// is installed (Debian's), on a stopped, a running and a crashed cluster.
func TestControlFileMatchesPgControldata(t *testing.T) {
	n := 0
	for _, major := range scratch.SupportedMajors {
		bin, ok := scratch.Versions()[major]
		if !ok || !isExecutableFile(filepath.Join(bin, "pg_controldata")) {
			continue
		}
		n++
		t.Run(major, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c := startVersion(t, ctx, major)
			compare := func(what string) {
				cf, err := ReadControlFile(c.Dir)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				cd, err := ReadControlData(ctx, bin, c.Dir)
				if err != nil {
					t.Fatal(err)
				}
				compareFields(t, what, cf.Fields(), cd.Fields)
				if got := cf.ControlData(); got.SystemIdentifier != cd.SystemIdentifier || got.State != cd.State ||
					got.PGControlVersion != cd.PGControlVersion || got.CheckpointLocation != cd.CheckpointLocation {
					t.Errorf("%s: ControlData() = %+v, pg_controldata gives %+v", what, got, cd)
				}
			}
			compare("running " + major)
			must(t, c.Stop(ctx, "fast"))
			compare("stopped " + major)
			must(t, c.Start(ctx))
			must(t, c.Stop(ctx, "immediate"))
			compare("crashed " + major)
		})
	}
	if n == 0 {
		t.Skip("SKIP: no pg_controldata of PostgreSQL 13 to 18 installed (Debian's postgresql-NN)")
	}
}

// compareFields reports every pg_controldata line that ours does not
// reproduce; lines pg_controldata does not print are errors too.
func compareFields(t *testing.T, what string, ours, theirs map[string]string) {
	t.Helper()
	for _, k := range sortedKeys(theirs) {
		if got, ok := ours[k]; !ok {
			t.Errorf("%s: pg_controldata prints %q: %q, which Fields lacks", what, k, theirs[k])
		} else if got != theirs[k] {
			t.Errorf("%s: %s: %q, pg_controldata prints %q", what, k, got, theirs[k])
		}
	}
	for _, k := range sortedKeys(ours) {
		if _, ok := theirs[k]; !ok {
			t.Errorf("%s: Fields has %q: %q, which pg_controldata does not print", what, k, ours[k])
		}
	}
}

func isExecutableFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpdatePGControlTestdata rewrites testdata/pgcontrol (with
// -update-pgcontrol): for each major version, pg_control made by initdb, of
// the running server (with the server's view of it) and of the stopped one,
// and Debian 15's pg_controldata output of each file it reads (UTC times).
func TestUpdatePGControlTestdata(t *testing.T) {
	if !*updatePGControl {
		t.Skip("run with -update-pgcontrol to rewrite testdata/pgcontrol")
	}
	dir := filepath.Join("testdata", "pgcontrol")
	must(t, os.MkdirAll(dir, 0o755))
	for _, major := range scratch.SupportedMajors {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := scratch.VersionBinDir(major); err != nil {
			t.Fatalf("-update-pgcontrol needs every major version: %v", err)
		}
		base := t.TempDir()
		c, err := scratch.InitDB(ctx, filepath.Join(base, "data"), versionOptions(t, major))
		if err != nil {
			t.Fatal(err)
		}
		copyControl := func(name string) {
			b, err := os.ReadFile(filepath.Join(c.Dir, "global", "pg_control"))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
		}
		copyControl(major + "-initdb")
		c.Close(ctx)
		c = startVersion(t, ctx, major)
		raw, server := snapshot(t, ctx, c)
		must(t, os.WriteFile(filepath.Join(dir, major+"-running"), raw, 0o644))
		js, err := json.MarshalIndent(server, "", "\t")
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, major+"-running.server.json"), append(js, '\n'), 0o644))
		must(t, c.Stop(ctx, "fast"))
		copyControl(major + "-stopped")
	}
	// Debian 15's pg_controldata reads the 1300 and 1700 formats (17 only
	// filled padding); 18's it misreads, with a CRC warning.
	bin := "/usr/lib/postgresql/15/bin"
	for _, major := range []string{"13", "14", "15", "16", "17"} {
		for _, kind := range []string{"initdb", "running", "stopped"} {
			d := t.TempDir()
			must(t, os.Mkdir(filepath.Join(d, "global"), 0o755))
			b, err := os.ReadFile(filepath.Join(dir, major+"-"+kind))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(d, "global", "pg_control"), b, 0o644))
			cmd := exec.Command(filepath.Join(bin, "pg_controldata"), "-D", d)
			cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "TZ=UTC")
			out, err := cmd.CombinedOutput()
			if err != nil || strings.Contains(string(out), "WARNING") {
				t.Fatalf("pg_controldata of %s-%s: %v\n%s", major, kind, err, out)
			}
			must(t, os.WriteFile(filepath.Join(dir, major+"-"+kind+".pg_controldata"), out, 0o644))
		}
	}
}
