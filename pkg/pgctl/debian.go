package pgctl

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DebianCluster is a cluster of Debian's and Ubuntu's postgresql-common
// (pg_createcluster): its configuration is in /etc/postgresql/VERSION/NAME,
// and pg_ctlcluster or the systemd unit postgresql@VERSION-NAME stops and
// starts it, with its log in /var/log/postgresql.
type DebianCluster struct {
	Version string // "15"
	Name    string // "main"
	ConfDir string // /etc/postgresql/15/main
	DataDir string
	// LogFile is where pg_ctlcluster sends the server's stderr; "" when
	// the cluster's configuration logs elsewhere or it is not known.
	LogFile string
}

// Unit is the cluster's systemd unit.
func (c *DebianCluster) Unit() string { return "postgresql@" + c.Version + "-" + c.Name }

func (c *DebianCluster) String() string { return "Debian cluster " + c.Version + "/" + c.Name }

// confRoot is where postgresql-common keeps the clusters' configuration:
// $PG_CLUSTER_CONF_ROOT, as its own programs read it, else /etc/postgresql.
func confRoot() string {
	if d := os.Getenv("PG_CLUSTER_CONF_ROOT"); d != "" {
		return d
	}
	return "/etc/postgresql"
}

// FindDebianCluster returns the postgresql-common cluster whose data
// directory is dataDir, or nil when none is: each ROOT/VERSION/NAME whose
// data_directory (in postgresql.conf, then conf.d/*.conf, where Debian's
// include_dir points; else the pgdata link) is dataDir, compared by device
// and inode. Where a cluster's data directory cannot be read that way,
// `pg_lsclusters --json` says (it follows every include).
func FindDebianCluster(dataDir string) (*DebianCluster, error) {
	want, err := os.Stat(dataDir)
	if err != nil {
		return nil, err
	}
	same := func(dir string) bool {
		fi, err := os.Stat(dir)
		return err == nil && os.SameFile(fi, want)
	}
	confs, _ := filepath.Glob(filepath.Join(confRoot(), "*", "*", "postgresql.conf"))
	unknown := false
	for _, conf := range confs {
		dir := filepath.Dir(conf)
		dd, ok := debianDataDir(dir)
		if !ok {
			unknown = true
			continue
		}
		if !same(dd) {
			continue
		}
		c := &DebianCluster{Version: filepath.Base(filepath.Dir(dir)), Name: filepath.Base(dir), ConfDir: dir, DataDir: dd}
		if _, set := confSetting(conf, "log_destination"); !set {
			if _, set := confSetting(conf, "logging_collector"); !set {
				c.LogFile = fmt.Sprintf("/var/log/postgresql/postgresql-%s-%s.log", c.Version, c.Name)
			}
		}
		return c, nil
	}
	if !unknown {
		return nil, nil
	}
	cs, err := lsclusters()
	if err != nil {
		return nil, nil // too old for --json, or missing: none found
	}
	for _, c := range cs {
		if same(c.DataDir) {
			return c, nil
		}
	}
	return nil, nil
}

// debianDataDir reads the data directory of the cluster configured in dir.
func debianDataDir(dir string) (string, bool) {
	dd, ok := confSetting(filepath.Join(dir, "postgresql.conf"), "data_directory")
	extra, _ := filepath.Glob(filepath.Join(dir, "conf.d", "*.conf"))
	for _, conf := range extra {
		if v, set := confSetting(conf, "data_directory"); set {
			dd, ok = v, true
		}
	}
	if !ok {
		if l, err := filepath.EvalSymlinks(filepath.Join(dir, "pgdata")); err == nil {
			return l, true
		}
	}
	return dd, ok
}

// lsclusters runs `pg_lsclusters --json`.
func lsclusters() ([]*DebianCluster, error) {
	path, err := exec.LookPath("pg_lsclusters")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := command(ctx, path, "--json").Output()
	if err != nil {
		return nil, err
	}
	var list []struct {
		Version json.Number `json:"version"`
		Cluster string      `json:"cluster"`
		PGData  string      `json:"pgdata"`
		ConfDir string      `json:"configdir"`
		LogFile string      `json:"logfile"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("failed to parse pg_lsclusters --json: %w", err)
	}
	var cs []*DebianCluster
	for _, l := range list {
		cs = append(cs, &DebianCluster{Version: l.Version.String(), Name: l.Cluster, ConfDir: l.ConfDir, DataDir: l.PGData, LogFile: l.LogFile})
	}
	return cs, nil
}

// confSetting returns the last value of name in a postgresql.conf (its
// include directives are not followed).
func confSetting(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	var val string
	var found bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := parseConfLine(sc.Text(), name); ok {
			val, found = v, true
		}
	}
	return val, found
}

// parseConfLine returns the value of name if line sets it:
// `name = 'value'  # comment`, the '=' optional, the value quoted (with ”
// or \ escapes) or a bare word.
func parseConfLine(line, name string) (string, bool) {
	s := strings.TrimLeft(line, " \t")
	if len(s) < len(name) || !strings.EqualFold(s[:len(name)], name) {
		return "", false
	}
	s = s[len(name):]
	if s != "" && s[0] != ' ' && s[0] != '\t' && s[0] != '=' {
		return "", false // another setting whose name starts with name
	}
	s = strings.TrimLeft(s, " \t")
	s = strings.TrimLeft(strings.TrimPrefix(s, "="), " \t")
	if !strings.HasPrefix(s, "'") {
		v, _, _ := strings.Cut(s, "#")
		if f := strings.Fields(v); len(f) > 0 {
			return f[0], true
		}
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\'':
			return b.String(), true
		case c == '\\' && i+1 < len(s):
			b.WriteByte(s[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return "", false // no closing quote: PostgreSQL would refuse it too
}

// systemdRuns reports whether systemd is the init system (sd_booted's test);
// a variable for the tests.
var systemdRuns = func() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// geteuid is os.Geteuid, replaced by tests.
var geteuid = os.Geteuid

// NewDebian returns the Controller of a postgresql-common cluster, and why
// that way: its systemd unit when this process is root, systemd runs and
// the unit is active (the server keeps its supervisor); else
// pg_ctlcluster, run as pg_ctlcluster runs for its users, without its
// redirection to systemctl (the server keeps running as it ran). warn
// says that the way takes the server from under systemd.
func NewDebian(ctx context.Context, c *DebianCluster) (ctl Controller, why string, warn bool) {
	if !systemdRuns() {
		return pgCtlCluster{c}, "systemd does not run on this host", false
	}
	active := command(ctx, "systemctl", "is-active", "-q", c.Unit()).Run() == nil
	switch {
	case !active:
		return pgCtlCluster{c}, "systemd runs here, but not this cluster: its unit " + c.Unit() + " is not active", false
	case geteuid() == 0:
		return debianUnit{systemd{c.Unit()}, c}, "systemd runs it", false
	}
	return pgCtlCluster{c}, "pgtwopass is not root, which systemctl stop and start need: the unit " + c.Unit() +
		" will show as failed and the restarted server run outside it; run pgtwopass as root to keep it under systemd", true
}

type debianUnit struct {
	systemd
	c *DebianCluster
}

func (d debianUnit) String() string { return "systemd unit " + d.unit + " (" + d.c.String() + ")" }

func (d debianUnit) LogNote() (string, bool) { return debianLogNote(d.c), false }

// ExpectedTimes: the unit runs pg_ctlcluster.
func (d debianUnit) ExpectedTimes() (stop, start time.Duration) {
	return pgCtlCluster{d.c}.ExpectedTimes()
}

// pgCtlCluster runs pg_ctlcluster.
type pgCtlCluster struct{ c *DebianCluster }

func (p pgCtlCluster) command(ctx context.Context, action string) *exec.Cmd {
	path, err := exec.LookPath("pg_ctlcluster")
	if err != nil {
		path = "/usr/bin/pg_ctlcluster"
	}
	cmd := command(ctx, path, "--skip-systemctl-redirect", "-m", "fast", p.c.Version, p.c.Name, action)
	// pg_ctl's wait for the stop: an hour, as for pg_ctl -t 3600, not its
	// default minute (a large shutdown checkpoint takes longer).
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "PGCTLTIMEOUT=3600")
	return cmd
}

func (p pgCtlCluster) Stop(ctx context.Context) error {
	return run(p.command(ctx, "stop"), "stop", "stop the server with pg_ctlcluster "+p.c.Version+" "+p.c.Name+" stop")
}

func (p pgCtlCluster) Start(ctx context.Context) error {
	return run(p.command(ctx, "start"), "start", "start the server with pg_ctlcluster "+p.c.Version+" "+p.c.Name+" start")
}

func (p pgCtlCluster) String() string {
	return "pg_ctlcluster " + p.c.Version + " " + p.c.Name + " (" + p.c.String() + ")"
}

func (p pgCtlCluster) LogNote() (string, bool) { return debianLogNote(p.c), false }

// ExpectedTimes: pg_ctlcluster's stop and start are pg_ctl's, plus Perl and
// its checks. finish takes the server as down once its postmaster.pid is
// gone, and as up once it says "ready" there (the start command itself
// returns 2 s later, after pg_ctlcluster has seen the server accept three
// connections in a row): measured 0.07 s each on a quiet machine, where
// pg_ctlcluster's own return took 0.16-0.21 s to stop. The prediction
// assumes more, on the safe side, until it has measured them.
func (p pgCtlCluster) ExpectedTimes() (stop, start time.Duration) {
	return 120 * time.Millisecond, 200 * time.Millisecond
}

func debianLogNote(c *DebianCluster) string {
	if c.LogFile != "" {
		return "its log where the cluster's configuration says: " + c.LogFile
	}
	return "its log where the cluster's configuration (" + c.ConfDir + ") says"
}
