package pgctl

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFindBinDirFindsPgCtl(t *testing.T) {
	dir := testBinDir(t)
	if !hasPgCtl(dir) {
		t.Fatalf("FindBinDir(\"\") = %s, which has no pg_ctl", dir)
	}
	major := binDirMajor(dir)
	if major == "" {
		t.Fatalf("pg_ctl in %s did not report a version", dir)
	}
	got, err := FindBinDir(major)
	if err != nil || binDirMajor(got) != major {
		t.Fatalf("FindBinDir(%q) = %q, %v; want a directory with pg_ctl %s", major, got, err, major)
	}
	if _, err := FindBinDir("1"); err == nil || !strings.Contains(err.Error(), "PGTWOPASS_BINDIR") {
		t.Errorf("FindBinDir of a missing version must fail with a hint about PGTWOPASS_BINDIR, got %v", err)
	}
	t.Setenv("PGTWOPASS_BINDIR", dir)
	if got, err := FindBinDir("1"); err != nil || got != dir {
		t.Errorf("PGTWOPASS_BINDIR must override the search: got %q, %v", got, err)
	}
}

func TestVersionMajor(t *testing.T) {
	for in, want := range map[string]string{
		"pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n": "15",
		"PostgreSQL 9.6.24":           "9.6",
		"pg_ctl (PostgreSQL) 17beta1": "17",
		"garbage":                     "",
	} {
		if got := versionMajor(in); got != want {
			t.Errorf("versionMajor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStoppedClusterFacts(t *testing.T) {
	t.Parallel()
	c := initCluster(t)
	ctx := context.Background()

	v, err := ReadPGVersion(c.dataDir)
	if err != nil || v == "" || v != binDirMajor(c.binDir) {
		t.Errorf("ReadPGVersion must return the initdb major version %q, got %q, %v", binDirMajor(c.binDir), v, err)
	}
	if _, err := ReadPGVersion(c.runDir); err == nil {
		t.Error("ReadPGVersion must fail for a directory that is not a data directory")
	}

	o, err := OwnerOf(c.dataDir)
	if err != nil || o.UID != c.owner.UID || o.GID != c.owner.GID || o.Name != c.owner.Name {
		t.Errorf("OwnerOf must report the data directory's owner %+v, got %+v, %v", c.owner, o, err)
	}

	cd, err := ReadControlData(ctx, c.binDir, c.dataDir)
	if err != nil {
		t.Fatalf("ReadControlData on a stopped cluster (as uid %d): %v", os.Geteuid(), err)
	}
	if cd.State != "shut down" || !cd.CleanlyShutDown() {
		t.Errorf("a freshly initdb'ed cluster must read as cleanly shut down, state %q", cd.State)
	}
	raw, err := os.ReadFile(filepath.Join(c.dataDir, "global", "pg_control"))
	if err != nil {
		t.Fatal(err)
	}
	if want := binary.LittleEndian.Uint64(raw[:8]); cd.SystemIdentifier == 0 || cd.SystemIdentifier != want {
		t.Errorf("system identifier must match pg_control's first 8 bytes %d, got %d", want, cd.SystemIdentifier)
	}
	if cd.PGControlVersion == 0 || cd.CheckpointLocation == "" || len(cd.Fields) < 20 {
		t.Errorf("ReadControlData must parse version, checkpoint location and all fields, got %+v", cd)
	}
	if _, err := ReadControlData(ctx, c.binDir, c.runDir); err == nil {
		t.Error("ReadControlData must fail on a directory without global/pg_control")
	}

	if running, pm, err := ServerRunning(c.dataDir); running || pm != nil || err != nil {
		t.Errorf("ServerRunning must be false with no postmaster.pid, got %v, %+v, %v", running, pm, err)
	}
}

func TestRunningServer(t *testing.T) {
	t.Parallel()
	c := initCluster(t)
	c.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	running, pm, err := ServerRunning(c.dataDir)
	if err != nil || !running {
		t.Fatalf("ServerRunning must be true for a started server, got %v, %v", running, err)
	}
	if pm.Port != c.port || pm.SocketDir != c.runDir || pm.DataDir != c.dataDir || pm.Status != "ready" || pm.StartTime == 0 {
		t.Errorf("postmaster.pid must parse into port %d, socket dir %s, data dir %s, status ready; got %+v",
			c.port, c.runDir, c.dataDir, pm)
	}

	bin, args, err := ReadPostmasterOpts(c.dataDir)
	wantArgs := []string{"-D", c.dataDir, "-p", strconv.Itoa(c.port), "-k", c.runDir, "-c", "listen_addresses="}
	if err != nil || filepath.Base(bin) != "postgres" || !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("ReadPostmasterOpts must return the postgres binary and unquoted args %q, got %q %q, %v", wantArgs, bin, args, err)
	}

	before, err := ReadControlData(ctx, c.binDir, c.dataDir)
	if err != nil || before.State != "in production" || before.CleanlyShutDown() {
		t.Errorf("a running cluster must read as in production, not cleanly shut down: %q, %v", before.State, err)
	}
	dsn := DefaultDSN(pm, "postgres")
	if err := Checkpoint(ctx, dsn); err != nil {
		t.Fatalf("Checkpoint via DefaultDSN %q must succeed: %v", dsn, err)
	}
	after, err := ReadControlData(ctx, c.binDir, c.dataDir)
	if err != nil || after.CheckpointLocation == before.CheckpointLocation {
		t.Errorf("CHECKPOINT must move the latest checkpoint location (was %s, now %s, %v)",
			before.CheckpointLocation, after.CheckpointLocation, err)
	}

	// A stale pid file: a copy of postmaster.pid naming a process that has exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(raw), "\n")
	stale := t.TempDir()
	if err := os.WriteFile(filepath.Join(stale, "postmaster.pid"), []byte(strconv.Itoa(dead.Process.Pid)+"\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	running, pm, err = ServerRunning(stale)
	if err != nil || running || pm == nil || pm.PID != dead.Process.Pid || pm.Port != c.port {
		t.Errorf("a stale postmaster.pid must give running=false with the parsed file, got %v, %+v, %v", running, pm, err)
	}
}

func TestPgCtlStopStartRoundTrip(t *testing.T) {
	t.Parallel()
	c := initCluster(t)
	c.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ctl, err := NewPgCtl(c.binDir, c.dataDir, c.owner, filepath.Join(c.runDir, "restart.log"))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && ctl.String() != "pg_ctl (as "+c.owner.Name+")" {
		t.Errorf("Controller.String must say which user pg_ctl runs as, got %q", ctl.String())
	}
	if err := ctl.Stop(ctx); err != nil {
		t.Fatalf("pg_ctl Stop must stop a running server: %v", err)
	}
	if running, _, err := ServerRunning(c.dataDir); running || err != nil {
		t.Fatalf("after Stop the server must not be running, got %v, %v", running, err)
	}
	if cd, err := ReadControlData(ctx, c.binDir, c.dataDir); err != nil || !cd.CleanlyShutDown() {
		t.Errorf("a fast stop must leave the cluster cleanly shut down, got %q, %v", cd.State, err)
	}
	if err := ctl.Start(ctx); err != nil {
		t.Fatalf("pg_ctl Start must restart the server: %v", err)
	}
	running, pm, err := ServerRunning(c.dataDir)
	if err != nil || !running {
		t.Fatalf("after Start the server must be running, got %v, %v", running, err)
	}
	if pm.Port != c.port || pm.SocketDir != c.runDir {
		t.Errorf("Start must reuse postmaster.opts options (port %d, socket dir %s), got port %d, socket dir %s",
			c.port, c.runDir, pm.Port, pm.SocketDir)
	}
	if err := Checkpoint(ctx, DefaultDSN(pm, "postgres")); err != nil {
		t.Errorf("the restarted server must accept connections: %v", err)
	}
	if err := ctl.Start(ctx); err == nil {
		t.Error("Start of an already running server must fail")
	}
}

func TestNewPgCtlWithoutOpts(t *testing.T) {
	dir := t.TempDir()
	ctl, err := NewPgCtl("/nonexistent", dir, Owner{}, "")
	if err != nil {
		t.Fatalf("NewPgCtl must accept a data directory without postmaster.opts: %v", err)
	}
	if p := ctl.(*pgCtl); len(p.opts) != 0 || p.logFile != os.DevNull {
		t.Errorf("without postmaster.opts there are no -o options, and for a server not running pgtwopass chooses no log file (pg_ctl -l /dev/null; its configuration says where it logs), got %+v", p)
	}
}

func TestParsePostmasterOpts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		bin  string
		args []string
	}{
		{`/usr/lib/postgresql/15/bin/postgres "-D" "/path" "-p" "5433"` + "\n",
			"/usr/lib/postgresql/15/bin/postgres", []string{"-D", "/path", "-p", "5433"}},
		{`/usr/lib/postgresql/15/bin/postgres "-D" "/var/lib/my data" "-c" "config_file=/etc/postgresql/15/main/postgresql.conf"`,
			"/usr/lib/postgresql/15/bin/postgres", []string{"-D", "/var/lib/my data", "-c", "config_file=/etc/postgresql/15/main/postgresql.conf"}},
		{`/opt/pg bin/postgres "-c" "listen_addresses=" "-c" "search_path="a b""` + "\n",
			"/opt/pg bin/postgres", []string{"-c", "listen_addresses=", "-c", `search_path="a b"`}},
		{"/usr/bin/postgres\n", "/usr/bin/postgres", nil},
	} {
		bin, args := parsePostmasterOpts(tc.in)
		if bin != tc.bin || !reflect.DeepEqual(args, tc.args) {
			t.Errorf("postmaster.opts %q must parse to %q %q, got %q %q", tc.in, tc.bin, tc.args, bin, args)
		}
	}
	if got := withoutDataDir([]string{"-D", "/x", "-p", "1", "-D/y", "-c", "a=b"}); !reflect.DeepEqual(got, []string{"-p", "1", "-c", "a=b"}) {
		t.Errorf("Start must drop -D and its value from the reused options, got %q", got)
	}
}

func TestDefaultDSN(t *testing.T) {
	for _, tc := range []struct {
		pm   Postmaster
		want string
	}{
		{Postmaster{Port: 5432, SocketDir: "/var/run/postgresql", ListenAddr: "*"},
			"host=/var/run/postgresql port=5432 dbname=postgres user=postgres connect_timeout=5"},
		{Postmaster{Port: 5433, ListenAddr: "*"},
			"host=localhost port=5433 dbname=postgres user=postgres connect_timeout=5"},
		{Postmaster{Port: 5433, ListenAddr: "0.0.0.0"},
			"host=127.0.0.1 port=5433 dbname=postgres user=postgres connect_timeout=5"},
		{Postmaster{Port: 5434, SocketDir: "/tmp/it's here"},
			`host='/tmp/it\'s here' port=5434 dbname=postgres user=postgres connect_timeout=5`},
	} {
		if got := DefaultDSN(&tc.pm, "postgres"); got != tc.want {
			t.Errorf("DefaultDSN(%+v) must prefer the socket dir and map wildcard addresses: got %q, want %q", tc.pm, got, tc.want)
		}
	}
}

func TestParsePostmasterPID(t *testing.T) {
	pm, err := parsePostmasterPID("2482\n/tmp/d\n1795586631\n5499\n/tmp\n\n  9977912         8\nready   \n")
	want := &Postmaster{PID: 2482, DataDir: "/tmp/d", StartTime: 1795586631, Port: 5499, SocketDir: "/tmp", Status: "ready"}
	if err != nil || !reflect.DeepEqual(pm, want) {
		t.Errorf("postmaster.pid must parse line by line: got %+v, %v", pm, err)
	}
	if pm, err := parsePostmasterPID("77\n/tmp/d\n"); err != nil || pm.PID != 77 || pm.Port != 0 {
		t.Errorf("a partially written postmaster.pid (during startup) must still parse: %+v, %v", pm, err)
	}
	if _, err := parsePostmasterPID("not a pid\n"); err == nil {
		t.Error("a garbage postmaster.pid must be an error")
	}
}

func TestCommandController(t *testing.T) {
	ctx := context.Background()
	if err := NewCommand("true", "true").Stop(ctx); err != nil {
		t.Errorf("a stop command exiting 0 must succeed: %v", err)
	}
	err := NewCommand("true", "echo boom-from-start; false").Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "boom-from-start") {
		t.Errorf("a failing start command must fail with its output in the error, got %v", err)
	}
	if err := NewCommand("true", "").Start(ctx); err == nil || !strings.Contains(err.Error(), "--start-command") {
		t.Errorf("a missing start command must fail and name --start-command, got %v", err)
	}
	if err := NewCommand("", "true").Stop(ctx); err == nil || !strings.Contains(err.Error(), "--stop-command") {
		t.Errorf("a missing stop command must fail and name --stop-command, got %v", err)
	}
	if s := NewSystemd("postgresql@15-main").String(); s != "systemd unit postgresql@15-main" {
		t.Errorf("systemd Controller.String must name the unit, got %q", s)
	}
}
