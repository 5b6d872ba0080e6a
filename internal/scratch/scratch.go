// Package scratch creates throwaway PostgreSQL clusters (initdb -k) with
// servers on unix sockets, loads them with pgbench, and compares directory
// trees: the fixtures of pgtwopass's tests, benchmarks and demo.
//
// It never prints and never imports "testing": every function returns an
// error, and errors of external commands carry their output.
//
// # Major versions
//
// Options.BinDir chooses the server; Versions lists those installed, by
// major version: Debian's, and PostgreSQL 13 to 18 that InstallScript
// fetches into VersionCache. Those ship only initdb, pg_ctl and postgres:
// pgbench and psql then come from Debian's newest installation
// (Options.ClientBinDir).
//
// # Running as root
//
// initdb, pg_ctl and postgres refuse to run as root. When the effective uid
// is 0, every PostgreSQL program is therefore run as an unprivileged OS user
// (Options.RunAs, default "postgres") with its uid, gid and supplementary
// groups, working directory "/" and HOME set to the user's home. That user
// must be able to reach the data directory: InitDB and Start give the
// directories they create (data directory, socket directory, log file) to
// that user and call MakeTraversable on the data directory's parent, which
// adds search (x) permission for group and others to it and to each ancestor
// lacking it (t.TempDir() directories are 0700 root). When not root, programs
// run as the current user and RunAs is ignored.
package scratch

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the database superuser created by InitDB and used by DSN.
const Superuser = "postgres"

// maxSocketPath is the longest unix socket path (sun_path is 108 bytes with
// its terminating NUL on Linux).
const maxSocketPath = 107

// Options say how PostgreSQL programs are found and run.
type Options struct {
	// RunAs is the OS user that runs PostgreSQL programs when the process
	// runs as root; "" means "postgres". Ignored when not root.
	RunAs string
	// BinDir holds initdb, pg_ctl, postgres and usually the client
	// programs (pgbench, psql, pg_checksums); "" means FindBinDir. See
	// Versions for the servers of other major versions.
	BinDir string
	// ClientBinDir holds the client programs that BinDir lacks (the npm
	// builds of InstallScript have none); "" means the newest Debian
	// installation (/usr/lib/postgresql/*/bin) that has the program.
	// pgbench and psql of one major version work with servers of others;
	// pg_checksums only with its own pg_control format (see Checksums).
	ClientBinDir string
	// InitDBArgs are more options of initdb, e.g. --waldir DIR.
	InitDBArgs []string
	// NoChecksums makes a cluster without data checksums (initdb without -k).
	NoChecksums bool
	// LoadRate, when set, caps Load at this many transactions per second
	// in all (pgbench -R): a write load that leaves the machine's CPU to
	// the rest of a test suite. 0: as fast as it can.
	LoadRate int
}

// Cluster is a PostgreSQL data directory and the server that may run on it.
type Cluster struct {
	Dir       string // data directory (absolute)
	SocketDir string // unix socket directory; Start makes a short one under the temp dir when ""
	Port      int    // server port (names the socket); Start picks a free one when 0
	BinDir    string // PostgreSQL programs
	// ClientBinDir is Options.ClientBinDir: where client programs missing
	// from BinDir come from ("" = the newest Debian installation).
	ClientBinDir string
	LogFile      string // server log, outside Dir: Dir+".log"
	LoadRate     int    // Options.LoadRate

	who       runAs
	ownSocket bool // SocketDir was made by Start; Close removes it
}

// runAs is the identity PostgreSQL programs run with.
type runAs struct {
	cred *syscall.Credential // nil: run as the current user
	uid  int
	gid  int
	name string
	home string
}

// FindBinDir locates the PostgreSQL programs: $PGTWOPASS_BINDIR, else
// `pg_config --bindir`, else the highest /usr/lib/postgresql/*/bin. A
// candidate must contain initdb.
func FindBinDir() (string, error) {
	has := func(dir string) bool {
		st, err := os.Stat(filepath.Join(dir, "initdb"))
		return err == nil && st.Mode().IsRegular()
	}
	if d := os.Getenv("PGTWOPASS_BINDIR"); d != "" {
		if !has(d) {
			return "", fmt.Errorf("scratch: PGTWOPASS_BINDIR=%s has no initdb", d)
		}
		return d, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" && has(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVer := "", -1.0
	for _, d := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err == nil && v > bestVer && has(d) {
			best, bestVer = d, v
		}
	}
	if best == "" {
		return "", errors.New("scratch: PostgreSQL programs not found (set PGTWOPASS_BINDIR, put pg_config in PATH, or install /usr/lib/postgresql/N/bin)")
	}
	return best, nil
}

// resolve fills in the defaults of o and looks up the run-as identity.
func (o Options) resolve() (string, runAs, error) {
	bin := o.BinDir
	if bin == "" {
		var err error
		if bin, err = FindBinDir(); err != nil {
			return "", runAs{}, err
		}
	}
	if os.Geteuid() != 0 {
		w := runAs{uid: os.Getuid(), gid: os.Getgid(), home: os.Getenv("HOME")}
		if u, err := user.Current(); err == nil {
			w.name, w.home = u.Username, u.HomeDir
		}
		return bin, w, nil
	}
	name := o.RunAs
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return "", runAs{}, fmt.Errorf("scratch: running as root needs an OS user to run PostgreSQL as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return "", runAs{}, fmt.Errorf("scratch: user %s: %w", name, err)
	}
	if uid == 0 {
		return "", runAs{}, fmt.Errorf("scratch: RunAs user %s is root; PostgreSQL refuses to run as root", name)
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.ParseUint(s, 10, 32); err == nil {
				groups = append(groups, uint32(g))
			}
		}
	}
	home := u.HomeDir
	if home == "" {
		home = "/"
	}
	return bin, runAs{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups},
		uid:  uid, gid: gid, name: name, home: home,
	}, nil
}

// command builds a PostgreSQL program invocation running as w, with a clean
// environment: no PG* variables, C locale (so output can be parsed), and
// HOME/USER/LOGNAME of w.
func (w runAs) command(ctx context.Context, bin, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, prog), args...)
	env := []string{"LC_ALL=C", "LANG=C"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "PG"), strings.HasPrefix(k, "LC_"),
			k == "LANG", k == "LANGUAGE", k == "HOME", k == "USER", k == "LOGNAME":
			continue
		}
		env = append(env, kv)
	}
	if w.home != "" {
		env = append(env, "HOME="+w.home)
	}
	if w.name != "" {
		env = append(env, "USER="+w.name, "LOGNAME="+w.name)
	}
	cmd.Env = env
	if w.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: w.cred}
		cmd.Dir = "/"
	}
	return cmd
}

// run runs a program to completion; on failure the error carries its
// combined output.
func (w runAs) run(ctx context.Context, bin, prog string, args ...string) (string, error) {
	cmd := w.command(ctx, bin, prog, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("scratch: %s %s: %w\n%s", prog, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// chown gives path to w (no-op when not root).
func (w runAs) chown(path string) error {
	if w.cred == nil {
		return nil
	}
	return os.Lchown(path, w.uid, w.gid)
}

// MakeTraversable adds search permission for group and others (g+x, o+x) to
// dir and to every ancestor that lacks it, up to but excluding "/". It lets
// an unprivileged run-as user reach a data directory below root's 0700
// temporary directories. Nothing else about the modes changes.
func MakeTraversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if m := st.Mode().Perm(); m&0o011 != 0o011 {
			if err := os.Chmod(d, st.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSetuid|fs.ModeSticky)|0o011); err != nil {
				return err
			}
		}
	}
	return nil
}

// Chown recursively gives dir (not following symlinks) to the run-as user
// and its primary group. It does nothing when not running as root.
func Chown(dir string, o Options) error {
	_, w, err := o.resolve()
	if err != nil || w.cred == nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, w.uid, w.gid)
	})
}

// InitDB creates a cluster in dir with
// `initdb -k -D dir -A trust -U postgres --no-sync -E UTF8 --locale=C`
// (data checksums on), run as the run-as user. dir must not exist or be
// empty; its parent must exist. The server is not started.
func InitDB(ctx context.Context, dir string, o Options) (*Cluster, error) {
	c, err := newCluster(dir, o)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Dir(c.Dir)); err != nil {
		return nil, fmt.Errorf("scratch: InitDB: parent of data directory: %w", err)
	}
	switch ents, err := os.ReadDir(c.Dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(c.Dir, 0o700); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case len(ents) > 0:
		return nil, fmt.Errorf("scratch: InitDB: %s is not empty", c.Dir)
	}
	if c.who.cred != nil {
		if err := c.who.chown(c.Dir); err != nil {
			return nil, err
		}
		if err := MakeTraversable(filepath.Dir(c.Dir)); err != nil {
			return nil, err
		}
	}
	args := append([]string{"-k", "-D", c.Dir, "-A", "trust", "-U", Superuser, "--no-sync", "-E", "UTF8", "--locale=C"}, o.InitDBArgs...)
	if o.NoChecksums {
		args = args[1:]
	}
	_, err = c.who.run(ctx, c.BinDir, "initdb", args...)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Open wraps an existing data directory (e.g. a copy made by pgtwopass) so
// that it can be started on its own port and socket. It changes nothing on
// disk; the directory must belong to the run-as user (see Chown) and must not
// hold a postmaster.pid naming a live server.
func Open(dir string, o Options) (*Cluster, error) {
	c, err := newCluster(dir, o)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "PG_VERSION")); err != nil {
		return nil, fmt.Errorf("scratch: Open: %s is not a data directory: %w", c.Dir, err)
	}
	return c, nil
}

func newCluster(dir string, o Options) (*Cluster, error) {
	bin, w, err := o.resolve()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &Cluster{Dir: abs, BinDir: bin, ClientBinDir: o.ClientBinDir, LogFile: abs + ".log", LoadRate: o.LoadRate, who: w}, nil
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// shellQuote quotes s for /bin/sh (pg_ctl passes -o through a shell).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Start starts the server with pg_ctl and waits until it accepts
// connections. It picks a free port when c.Port is 0 and makes a short socket
// directory (os.MkdirTemp("", "pgs-"), removed by Close) when c.SocketDir is
// "". TCP is off (empty listen_addresses); fsync stays on. Server settings:
// shared_buffers=32MB, max_wal_size=256MB, checkpoint_timeout=30s, then
// extra, each "name=value" (passed as -c name=value) or, when it starts with
// "-", a raw postgres option.
func (c *Cluster) Start(ctx context.Context, extra ...string) error {
	if c.Port == 0 {
		p, err := FreePort()
		if err != nil {
			return err
		}
		c.Port = p
	}
	if c.SocketDir == "" {
		d, err := os.MkdirTemp("", "pgs-")
		if len(d)+len("/.s.PGSQL.65535") > maxSocketPath {
			if err == nil {
				os.Remove(d)
			}
			d, err = os.MkdirTemp("/tmp", "pgs-")
		}
		if err != nil {
			return err
		}
		if err := c.who.chown(d); err != nil {
			os.Remove(d)
			return err
		}
		c.SocketDir, c.ownSocket = d, true
	}
	if sock := c.socketPath(); len(sock) > maxSocketPath {
		return fmt.Errorf("scratch: socket path %s is longer than %d bytes", sock, maxSocketPath)
	}
	if c.who.cred != nil {
		if err := MakeTraversable(filepath.Dir(c.Dir)); err != nil {
			return err
		}
		if err := MakeTraversable(filepath.Dir(c.LogFile)); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	f.Close()
	if err := c.who.chown(c.LogFile); err != nil {
		return err
	}
	opts := []string{"-p", strconv.Itoa(c.Port), "-k", c.SocketDir,
		"-c", "listen_addresses=",
		"-c", "shared_buffers=32MB",
		"-c", "max_wal_size=256MB",
		"-c", "checkpoint_timeout=30s",
	}
	for _, e := range extra {
		if strings.HasPrefix(e, "-") {
			opts = append(opts, e)
		} else {
			opts = append(opts, "-c", e)
		}
	}
	for i, s := range opts {
		opts[i] = shellQuote(s)
	}
	_, err = c.who.run(ctx, c.BinDir, "pg_ctl", "start", "-w", "-t", "120", "-D", c.Dir,
		"-l", c.LogFile, "-o", strings.Join(opts, " "))
	if err != nil {
		return fmt.Errorf("%w\nserver log %s:\n%s", err, c.LogFile, tail(c.LogFile, 20))
	}
	return nil
}

func (c *Cluster) socketPath() string {
	return filepath.Join(c.SocketDir, ".s.PGSQL."+strconv.Itoa(c.Port))
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop stops the server with `pg_ctl stop -m mode -w`; mode is "smart",
// "fast" or "immediate" ("" = "fast").
func (c *Cluster) Stop(ctx context.Context, mode string) error {
	if mode == "" {
		mode = "fast"
	}
	_, err := c.who.run(ctx, c.BinDir, "pg_ctl", "stop", "-w", "-t", "120", "-D", c.Dir, "-m", mode)
	return err
}

// Close stops the server if it is running (immediate mode) and removes the
// socket directory Start made. Use it for cleanup.
func (c *Cluster) Close(ctx context.Context) error {
	var err error
	if c.Running() {
		err = c.Stop(ctx, "immediate")
	}
	if c.ownSocket {
		if rerr := os.RemoveAll(c.SocketDir); rerr != nil {
			err = errors.Join(err, rerr)
		}
		c.SocketDir, c.ownSocket = "", false
	}
	return err
}

// Running reports whether Dir/postmaster.pid names a live process that
// serves Dir (a postmaster.pid copied from another cluster does not count).
func (c *Cluster) Running() bool {
	b, err := os.ReadFile(filepath.Join(c.Dir, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return false
	}
	if len(lines) > 1 {
		if d := strings.TrimSpace(lines[1]); d != "" && filepath.Clean(d) != filepath.Clean(c.Dir) {
			return false
		}
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// DSN returns a libpq/pgx connection string for database db ("" =
// "postgres") as the superuser over the unix socket.
func (c *Cluster) DSN(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", c.SocketDir, c.Port, Superuser, db)
}

// Connect opens a pgx connection to database db ("" = "postgres").
func (c *Cluster) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, c.DSN(db))
}

// Exec runs sql (one or more statements, simple protocol) in database
// "postgres".
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	conn, err := c.Connect(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("scratch: %s: %w", sql, err)
	}
	return nil
}

// QueryString runs one query in database "postgres" and returns the first
// column of all rows joined with "\n". Values are formatted with %v after
// driver.Valuer conversion (so numeric prints as digits); NULL is "".
func (c *Cluster) QueryString(ctx context.Context, sql string) (string, error) {
	conn, err := c.Connect(ctx, "")
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return "", fmt.Errorf("scratch: %s: %w", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return "", err
		}
		if len(vals) == 0 {
			continue
		}
		out = append(out, formatValue(vals[0]))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("scratch: %s: %w", sql, err)
	}
	return strings.Join(out, "\n"), nil
}

func formatValue(v any) string {
	if v == nil {
		return ""
	}
	if _, ok := v.(fmt.Stringer); !ok {
		if dv, ok := v.(driver.Valuer); ok {
			if x, err := dv.Value(); err == nil {
				if x == nil {
					return ""
				}
				v = x
			}
		}
	}
	return fmt.Sprintf("%v", v)
}

// Checksums runs `pg_checksums --check -D dir` as the run-as user and
// returns its output; the server must be cleanly stopped. pg_checksums
// comes from o.BinDir, else o.ClientBinDir, else the Debian installation of
// dir's major version, else the newest one; pg_checksums refuses a
// pg_control format other than its own (it reads 13 to 16 alike).
func Checksums(ctx context.Context, dir string, o Options) (string, error) {
	bin, w, err := o.resolve()
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	client := o.ClientBinDir
	if d := "/usr/lib/postgresql/" + clusterMajor(abs) + "/bin"; client == "" && isExecutable(filepath.Join(d, "pg_checksums")) {
		client = d
	}
	cbin, err := clientDir(bin, client, "pg_checksums")
	if err != nil {
		return "", err
	}
	return w.run(ctx, cbin, "pg_checksums", "--check", "-D", abs)
}
