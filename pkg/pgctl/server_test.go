package pgctl

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	ServeOwnerHelper()
	os.Exit(m.Run())
}

// writePID writes dir/postmaster.pid with text.
func writePID(t *testing.T, dir, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServerStateFailsClosed: whether a server runs is read from
// postmaster.pid; a file that is there but cannot be read or is not what
// PostgreSQL writes (empty, half-written, garbage, PID 0, a directory)
// counts as "a server may be running" (an error), never as "no server".
func TestServerStateFailsClosed(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name    string
		pid     string // contents; "<dir>" makes postmaster.pid a directory; "" none
		running bool
		unknown bool
	}{
		{name: "no postmaster.pid", pid: ""},
		{name: "a live postmaster", pid: self + "\n/data\n1700000000\n5432\n/run/pg\n\n 123 4\nready   \n", running: true},
		{name: "a postmaster writing its pid file (first lines only)", pid: self + "\n/data\n", running: true},
		{name: "a stale pid file", pid: strconv.Itoa(dead.Process.Pid) + "\n/data\n"},
		{name: "an empty pid file (created, not yet written)", pid: "\x00", unknown: true},
		{name: "a PID line cut short (no newline: 12 of 1234?)", pid: self[:1], unknown: true},
		{name: "a PID line that is not a number", pid: "12a\n", unknown: true},
		{name: "garbage", pid: "not a pid\n", unknown: true},
		{name: "PID 0", pid: "0\n/data\n", unknown: true},
		{name: "a port out of range", pid: self + "\n/data\n1\n99999\n", unknown: true},
		{name: "unreadable (a directory)", pid: "<dir>", unknown: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			switch tc.pid {
			case "":
			case "<dir>":
				if err := os.Mkdir(filepath.Join(dir, "postmaster.pid"), 0o700); err != nil {
					t.Fatal(err)
				}
			case "\x00":
				writePID(t, dir, "")
			default:
				writePID(t, dir, tc.pid)
			}
			st := ReadServerState(dir)
			if st.Known() == tc.unknown {
				t.Fatalf("%s: known=%v (%v), want %v: a pid file that cannot be read must count as 'a server may be running'", tc.name, st.Known(), st.Err, !tc.unknown)
			}
			if st.Running != tc.running {
				t.Errorf("%s: running=%v, want %v", tc.name, st.Running, tc.running)
			}
			running, _, err := ServerRunning(dir)
			if running != tc.running || (err != nil) != tc.unknown {
				t.Errorf("%s: ServerRunning = %v, %v; want %v and an error exactly when the state is unknown", tc.name, running, err, tc.running)
			}
			if s := st.String(); tc.unknown && !strings.HasPrefix(s, "unknown: ") || tc.running && !strings.HasPrefix(s, "running (pid ") {
				t.Errorf("%s: the state says %q", tc.name, s)
			}
		})
	}
	if os.Geteuid() != 0 {
		dir := t.TempDir()
		writePID(t, dir, self+"\n")
		if err := os.Chmod(filepath.Join(dir, "postmaster.pid"), 0); err != nil {
			t.Fatal(err)
		}
		if st := ReadServerState(dir); st.Known() {
			t.Errorf("a postmaster.pid this user may not read must make the state unknown, got %s", st)
		}
	}
}

// TestCommandsRunInTheirOwnProcessGroup: the stop and start commands run
// in a process group of their own, so that a terminal's Ctrl-C (SIGINT to
// pgtwopass's foreground group) does not kill a stop or a start half-way.
func TestCommandsRunInTheirOwnProcessGroup(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pgid")
	ctl := NewCommand("ps -o pgid= -p $$ > "+out, "true")
	if err := ctl.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("ps -o pgid=: %q", b)
	}
	if pgid == syscall.Getpgrp() {
		t.Errorf("the stop command runs in pgtwopass's process group %d: a terminal's SIGINT would reach it", pgid)
	}
}

// TestServerStderrForTheRestart: pg_ctl start gets as its log the file the
// running server's stderr is (pg_ctl -l, pg_ctlcluster), /dev/null when it
// logs through the logging collector or nowhere, and a warning when its
// stderr was something a restart cannot reopen. pgtwopass picks no file.
func TestServerStderrForTheRestart(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "server.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := func(stderr *os.File) *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		writePID(t, dir, strconv.Itoa(cmd.Process.Pid)+"\n"+dir+"\n")
		return cmd
	}
	start(f)
	if file, note, warn := serverStderr(dir); file != log || warn || !strings.Contains(note, log) {
		t.Errorf("a server whose stderr is %s restarts with it as its log: got %q, %q, warn %v", log, file, note, warn)
	}
	ctl, err := NewPgCtl("/nonexistent", dir, Owner{}, "")
	if err != nil || ctl.(*pgCtl).logFile != log {
		t.Errorf("NewPgCtl takes the running server's log %s, got %+v, %v", log, ctl, err)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	start(pw)
	pw.Close()
	if file, note, warn := serverStderr(dir); file != os.DevNull || !warn || !strings.Contains(note, "pipe:") {
		t.Errorf("a server whose stderr is a pipe (not the logging collector's) restarts with /dev/null and a warning naming the pipe: got %q, %q, %v", file, note, warn)
	}
	if err := os.WriteFile(filepath.Join(dir, "current_logfiles"), []byte("stderr log/x.log\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if file, _, warn := serverStderr(dir); file != os.DevNull || warn {
		t.Errorf("a server that logs through the logging collector restarts without a log of pgtwopass's choosing and without a warning: got %q, %v", file, warn)
	}
	os.Remove(filepath.Join(dir, "postmaster.pid"))
	if file, _, warn := serverStderr(dir); file != os.DevNull || warn {
		t.Errorf("for a server that is not running the restart logs where its configuration says: got %q, %v", file, warn)
	}
	if ctl, err := NewPgCtl("/nonexistent", dir, Owner{}, log); err != nil || ctl.(*pgCtl).logFile != log {
		t.Errorf("--start-log FILE is pg_ctl's -l: got %+v, %v", ctl, err)
	}
}

func TestParseConfLine(t *testing.T) {
	for _, tc := range []struct {
		line, name, want string
		ok               bool
	}{
		{"data_directory = '/var/lib/postgresql/15/main'		# use data in another directory", "data_directory", "/var/lib/postgresql/15/main", true},
		{"  data_directory='/srv/it''s here'", "data_directory", "/srv/it's here", true},
		{`data_directory '/srv/a\'b'`, "data_directory", "/srv/a'b", true},
		{"DATA_DIRECTORY = /srv/bare # c", "data_directory", "/srv/bare", true},
		{"#data_directory = '/x'", "data_directory", "", false},
		{"data_directory_x = '/x'", "data_directory", "", false},
		{"data_directory = '/unterminated", "data_directory", "", false},
		{"logging_collector = on", "logging_collector", "on", true},
	} {
		got, ok := parseConfLine(tc.line, tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseConfLine(%q, %q) = %q, %v; want %q, %v", tc.line, tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// fakeDebian makes a postgresql-common configuration tree with clusters
// 15/main (data in dataDir) and 16/other, and returns its root.
func fakeDebian(t *testing.T, dataDir string) string {
	t.Helper()
	root := t.TempDir()
	for _, c := range []struct{ v, name, conf string }{
		{"16", "other", "data_directory = '/nonexistent/16/other'\n"},
		{"15", "main", "# a comment\ndata_directory = '" + dataDir + "'\t# moved\nport = 5433\n"},
	} {
		dir := filepath.Join(root, c.v, c.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "postgresql.conf"), []byte(c.conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PG_CLUSTER_CONF_ROOT", root)
	return root
}

// fakeProgram puts an executable script name on a PATH of its own (with
// the usual directories after it) and returns its directory.
func fakeProgram(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestFindDebianCluster: a cluster of postgresql-common is found by its
// data directory (by inode, through a symlink too) in its configuration
// (postgresql.conf, or conf.d where Debian's include_dir points), without
// running anything; another data directory is no Debian cluster; where a
// cluster's configuration does not say its data directory, pg_lsclusters
// --json does.
func TestFindDebianCluster(t *testing.T) {
	data := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	root := fakeDebian(t, link)
	bin := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	fakeProgram(t, bin, "pg_lsclusters", `echo called >> `+calls+`
[ "$1" = --json ] || exit 1
echo '[{"version":17,"cluster":"json","pgdata":"`+data+`","configdir":"/etc/postgresql/17/json","logfile":"/var/log/postgresql/postgresql-17-json.log"}]'
`)
	c, err := FindDebianCluster(data)
	if err != nil || c == nil {
		t.Fatalf("FindDebianCluster(%s) finds 15/main by postgresql.conf's data_directory (a link to it): %+v, %v", data, c, err)
	}
	if c.Version != "15" || c.Name != "main" || c.ConfDir != filepath.Join(root, "15", "main") || c.Unit() != "postgresql@15-main" {
		t.Errorf("the cluster is 15/main in %s with unit postgresql@15-main, got %+v (unit %s)", root, c, c.Unit())
	}
	if c.LogFile != "/var/log/postgresql/postgresql-15-main.log" {
		t.Errorf("a cluster that sets no log destination logs to /var/log/postgresql/postgresql-15-main.log, got %q", c.LogFile)
	}
	if c, err := FindDebianCluster(t.TempDir()); c != nil || err != nil {
		t.Errorf("a data directory no configuration names is no Debian cluster: %+v, %v", c, err)
	}
	if _, err := os.Stat(calls); err == nil {
		t.Errorf("where every cluster's configuration says its data directory, pg_lsclusters is not run (it takes 0.1 s)")
	}

	// 15/main's data_directory moved to conf.d.
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "15", "main", "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "15", "main", "conf.d", "move.conf"), []byte("data_directory = '"+other+"'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := FindDebianCluster(other); err != nil || c == nil || c.Name != "main" {
		t.Errorf("conf.d/*.conf overrides postgresql.conf's data_directory: %+v, %v", c, err)
	}

	// A cluster whose configuration does not say: pg_lsclusters does.
	if err := os.MkdirAll(filepath.Join(root, "17", "json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "17", "json", "postgresql.conf"), []byte("include 'elsewhere.conf'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = FindDebianCluster(data)
	if err != nil || c == nil || c.Version != "17" || c.Name != "json" || c.LogFile != "/var/log/postgresql/postgresql-17-json.log" {
		t.Errorf("pg_lsclusters --json says which cluster it is when a configuration does not: got %+v, %v", c, err)
	}
}

// TestNewDebianChoosesTheWay: root on a host where systemd runs the
// cluster's unit stops and starts it with systemctl; where the unit is not
// active, or systemd does not run, with pg_ctlcluster (without its
// redirection to systemctl, and pg_ctl's wait of an hour); not root, where
// systemd runs the unit, with pg_ctlcluster and a warning (the server
// leaves systemd).
func TestNewDebianChoosesTheWay(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	fakeProgram(t, bin, "systemctl", `echo "systemctl $*" >> `+calls+`
[ "$1" = is-active ] && exit ${UNIT_ACTIVE:-3}
exit 0
`)
	fakeProgram(t, bin, "pg_ctlcluster", `echo "pg_ctlcluster $* PGCTLTIMEOUT=$PGCTLTIMEOUT" >> `+calls+"\n")
	c := &DebianCluster{Version: "15", Name: "main", ConfDir: "/etc/postgresql/15/main", LogFile: "/var/log/postgresql/postgresql-15-main.log"}
	saved := systemdRuns
	t.Cleanup(func() { systemdRuns = saved })
	read := func() string {
		b, _ := os.ReadFile(calls)
		os.Remove(calls)
		return strings.TrimSpace(string(b))
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		systemd   bool
		active    string
		root      bool
		want      string // in String()
		stop      string // the commands Stop runs
		whyPrefix string
	}{
		{"systemd runs the unit", true, "0", true, "systemd unit postgresql@15-main", "systemctl stop postgresql@15-main", "systemd runs it"},
		{"systemd runs, the unit is not active", true, "3", true, "pg_ctlcluster 15 main", "pg_ctlcluster --skip-systemctl-redirect -m fast 15 main stop PGCTLTIMEOUT=3600", "systemd runs here, but not this cluster"},
		{"no systemd", false, "0", true, "pg_ctlcluster 15 main", "pg_ctlcluster --skip-systemctl-redirect -m fast 15 main stop PGCTLTIMEOUT=3600", "systemd does not run"},
		{"not root, systemd runs the unit", true, "0", false, "pg_ctlcluster 15 main", "pg_ctlcluster --skip-systemctl-redirect -m fast 15 main stop PGCTLTIMEOUT=3600", "pgtwopass is not root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			savedEUID := geteuid
			t.Cleanup(func() { geteuid = savedEUID })
			geteuid = func() int {
				if tc.root {
					return 0
				}
				return 1000
			}
			systemdRuns = func() bool { return tc.systemd }
			t.Setenv("UNIT_ACTIVE", tc.active)
			ctl, why, warn := NewDebian(ctx, c)
			read()
			if !strings.Contains(ctl.String(), tc.want) || !strings.HasPrefix(why, tc.whyPrefix) || warn != (tc.name == "not root, systemd runs the unit") {
				t.Errorf("%s: the way is %q because %q, want %q because %q...", tc.name, ctl, why, tc.want, tc.whyPrefix)
			}
			if err := ctl.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if got := read(); got != tc.stop {
				t.Errorf("%s: Stop runs %q, want %q", tc.name, got, tc.stop)
			}
			if n, ok := ctl.(LogNoter); !ok {
				t.Errorf("%s: the controller says where the server logs", tc.name)
			} else if note, warn := n.LogNote(); warn || !strings.Contains(note, c.LogFile) {
				t.Errorf("%s: a Debian cluster logs where its configuration says (%s): %q", tc.name, c.LogFile, note)
			}
			if e, ok := ctl.(ExpectedTimes); !ok {
				t.Errorf("%s: pg_ctlcluster's times are known to the prediction", tc.name)
			} else if stop, start := e.ExpectedTimes(); stop <= 110*time.Millisecond || start <= 120*time.Millisecond {
				t.Errorf("%s: expected stop %v and start %v: pg_ctlcluster takes longer than pg_ctl", tc.name, stop, start)
			}
		})
	}
}

// TestSQLAsOwnerUnderPeerAuthentication: as root, against a server whose
// pg_hba.conf says "local all all peer" (Debian's default), a connection
// made by root itself is refused, and one through the helper gets in as
// the data directory's owner: Check says so and Checkpoint moves the
// checkpoint location. A socket that is not there fails with the helper's
// own error.
func TestSQLAsOwnerUnderPeerAuthentication(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("as root only: peer authentication of root as postgres")
	}
	t.Parallel()
	c := &testCluster{binDir: testBinDir(t), owner: serverOwner(t)}
	base := testDir(t)
	c.dataDir, c.runDir = filepath.Join(base, "data"), filepath.Join(base, "run")
	ownedDir(t, c.dataDir, 0o700, c.owner)
	ownedDir(t, c.runDir, 0o755, c.owner)
	runServerTool(t, c.binDir, "initdb", "-N", "--auth-local=peer", "--auth-host=reject", "-U", "postgres", "-D", c.dataDir)
	c.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pm, err := ReadPostmasterPID(c.dataDir)
	if err != nil || pm == nil {
		t.Fatal(pm, err)
	}
	dsn := DefaultDSN(pm, "postgres")
	if err := Checkpoint(ctx, dsn); err == nil || !strings.Contains(err.Error(), "peer authentication failed") && !strings.Contains(err.Error(), "Peer authentication failed") {
		t.Fatalf("test premise: root itself is refused by peer authentication, got %v", err)
	}
	sql := NewSQL(dsn, c.owner)
	msg, err := sql.Check(ctx)
	if err != nil || !strings.Contains(msg, "as OS user postgres") || !strings.Contains(msg, "superuser") {
		t.Fatalf("Check through the helper connects as the OS user postgres, a superuser: %q, %v", msg, err)
	}
	before, err := ReadControlFile(c.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := sql.Checkpoint(ctx); err != nil {
		t.Fatalf("CHECKPOINT as the data directory's owner under peer authentication: %v", err)
	}
	after, err := ReadControlFile(c.dataDir)
	if err != nil || after.CheckPoint == before.CheckPoint {
		t.Errorf("the CHECKPOINT moves the checkpoint location (%v -> %v, %v)", before.CheckPoint, after.CheckPoint, err)
	}

	missing := NewSQL("host="+filepath.Join(c.runDir, "nowhere")+" port=1 user=postgres dbname=postgres", c.owner)
	if _, err := missing.Check(ctx); err == nil || !strings.Contains(err.Error(), "failed to connect as postgres") || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a socket that is not there fails with the helper's error, naming the user: %v", err)
	}
	wrongRole := NewSQL(DefaultDSN(pm, "nobody"), c.owner)
	if _, err := wrongRole.Check(ctx); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("a role whose name is not the OS user's is refused by peer authentication, and the error says so: %v", err)
	}
}

// TestDialAsOwner: as root, the helper (this test binary, started again
// with the owner's uid and gid) connects to a unix socket and hands the
// connection back: the listening side sees the owner as its peer
// (SO_PEERCRED, what peer authentication reads), not root. An error of the
// helper's comes back with the owner's name.
func TestDialAsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("as root only")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	uid, _ := strconv.ParseUint(nobody.Uid, 10, 32)
	gid, _ := strconv.ParseUint(nobody.Gid, 10, 32)
	owner := Owner{UID: uint32(uid), GID: uint32(gid), Name: "nobody"}
	dir := testDir(t)
	sock := filepath.Join(dir, ".s.PGSQL.5432")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	peer := make(chan *unix.Ucred, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			peer <- nil
			return
		}
		defer c.Close()
		raw, _ := c.(*net.UnixConn).SyscallConn()
		var cred *unix.Ucred
		raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
		peer <- cred
		c.Write([]byte("hello"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := dialAsOwner(ctx, sock, owner)
	if err != nil {
		t.Fatalf("dialAsOwner: %v", err)
	}
	defer conn.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Errorf("the connection the helper handed back carries the server's bytes: %q, %v", buf, err)
	}
	if cred := <-peer; cred == nil || cred.Uid != owner.UID || cred.Gid != owner.GID {
		t.Errorf("the server sees the owner (uid %d) at the other end of the socket, got %+v", owner.UID, cred)
	}

	_, err = dialAsOwner(ctx, filepath.Join(dir, "nothing-here"), owner)
	if err == nil || !strings.Contains(err.Error(), "failed to connect as nobody: connect to "+filepath.Join(dir, "nothing-here")) {
		t.Errorf("a socket that is not there: the helper's error, naming the user: %v", err)
	}
	sql := NewSQL("host="+dir+" port=5432", owner)
	if !strings.Contains(sql.String(), "as OS user nobody") {
		t.Errorf("SQL says it connects as the owner: %q", sql)
	}
}
