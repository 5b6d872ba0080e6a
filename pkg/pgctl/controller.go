package pgctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RunAs makes cmd run as owner when the current process is root and owner
// is not root: it sets the credentials (uid, gid, supplementary groups),
// HOME (when the user is known) and cmd.Dir = "/" if unset. The rest of the
// environment, LC_ALL included, is kept.
func RunAs(cmd *exec.Cmd, owner Owner) {
	if os.Geteuid() != 0 || owner.UID == 0 {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = owner.credential()
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	if u, err := user.LookupId(strconv.FormatUint(uint64(owner.UID), 10)); err == nil && u.HomeDir != "" {
		env := cmd.Env
		if env == nil {
			env = os.Environ()
		}
		cmd.Env = append(withoutVar(env, "HOME"), "HOME="+u.HomeDir)
	}
}

// credential is owner's uid, gid and groups, for a child process.
func (o Owner) credential() *syscall.Credential {
	groups := o.Groups
	if len(groups) == 0 {
		groups = []uint32{o.GID}
	}
	return &syscall.Credential{Uid: o.UID, Gid: o.GID, Groups: groups}
}

func withoutVar(env []string, name string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// Controller stops and starts the source server. Stop must return once the
// server is down (or has failed to go down); Start once it accepts
// connections (or has failed to). pgtwopass reads whether the server runs
// from its postmaster.pid before and after each, and lets both run to
// their end once begun: it calls them with a context that an interrupt does
// not cancel. A library user may give its own (pkg/sync ServerOptions).
type Controller interface {
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
	// String names the way, for the log: "pg_ctl (as postgres)".
	String() string
}

// StopsWithServer is a Controller whose stop has nothing left to do once
// the server's postmaster.pid is gone (pg_ctl stop -w, pg_ctlcluster stop,
// systemctl stop): the job may go on from there while the command ends.
// A stop command of the user's may do more, and is waited for.
type StopsWithServer interface {
	Controller
	StopsWithServer()
}

func (*pgCtl) StopsWithServer()       {}
func (systemd) StopsWithServer()      {}
func (pgCtlCluster) StopsWithServer() {}

// ExpectedTimes is a Controller that knows the least time its stop and its
// start take (pg_ctlcluster waits half a second before it looks whether the
// server is up): the downtime prediction assumes them until it has
// measured the real ones.
type ExpectedTimes interface {
	ExpectedTimes() (stop, start time.Duration)
}

// LogNoter is a Controller that says where the server it starts logs, and
// whether that loses what the server wrote before (warn).
type LogNoter interface {
	LogNote() (note string, warn bool)
}

type pgCtl struct {
	binDir, dataDir string
	owner           Owner
	opts            []string // postmaster options minus binary and -D
	// logFile is pg_ctl start's -l: the given one, or the file the running
	// server's stderr is, or /dev/null; logNote says which, logWarn that
	// the server's stderr cannot be reopened.
	logFile string
	logNote string
	logWarn bool
}

// NewPgCtl returns a Controller that runs binDir/pg_ctl (as the data
// directory owner when running as root). It reads postmaster.opts now,
// before any stop, so that Start restarts the server with the same options.
//
// logFile is pg_ctl start's -l. "" means where the running server's stderr
// goes now: the file it is (as pg_ctl -l or pg_ctlcluster left it), else
// /dev/null, since the server's own configuration then says where it logs
// (the logging collector's files, syslog), or the stderr was a terminal or
// a pipe that a restart cannot reopen. pgtwopass chooses no log file.
func NewPgCtl(binDir, dataDir string, owner Owner, logFile string) (Controller, error) {
	c := &pgCtl{binDir: binDir, dataDir: dataDir, owner: owner, logFile: logFile}
	if _, args, err := ReadPostmasterOpts(dataDir); err == nil {
		c.opts = withoutDataDir(args)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if c.logFile != "" {
		c.logNote = "its stderr to " + c.logFile + " (--start-log)"
	} else {
		c.logFile, c.logNote, c.logWarn = serverStderr(dataDir)
	}
	if c.logFile != os.DevNull {
		if err := prepareLog(c.logFile, owner); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// serverStderr says where the stderr of the server running on dataDir
// goes, for a restart with pg_ctl -l: a file, or /dev/null.
func serverStderr(dataDir string) (file, note string, warn bool) {
	const none = "its stderr to /dev/null; it logs where its configuration says (logging_collector, syslog); --start-log FILE keeps its stderr"
	st := ReadServerState(dataDir)
	if !st.Running {
		return os.DevNull, none, false
	}
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", st.PM.PID))
	if err != nil {
		return os.DevNull, none, false
	}
	if target == os.DevNull {
		return os.DevNull, "its stderr to /dev/null, as before", false
	}
	if fi, err := os.Stat(target); err == nil && filepath.IsAbs(target) && fi.Mode().IsRegular() {
		return target, "its stderr to " + target + ", as before", false
	}
	if _, err := os.Stat(filepath.Join(dataDir, "current_logfiles")); err == nil {
		// The logging collector runs: it took the server's stderr (a pipe).
		return os.DevNull, "its log to the logging collector's files, as before", false
	}
	return os.DevNull, fmt.Sprintf("its stderr to /dev/null: it was %s, which a restart cannot reopen; give --start-log FILE to keep it", target), true
}

// prepareLog makes sure the server's user can append to the log that
// pg_ctl start will open, so that a bad path fails before the server is
// stopped rather than when it should start again.
func prepareLog(path string, owner Owner) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("cannot use %s as the server log: %w", path, err)
	}
	f.Close()
	if os.Geteuid() != 0 || owner.UID == 0 {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
		os.Chown(path, int(owner.UID), int(owner.GID))
	}
	cmd := command(context.Background(), "/bin/sh", "-c", `test -w "$1"`, "sh", path)
	RunAs(cmd, owner)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the server's user %s cannot write the server log %s: give a file it can write (--start-log)", owner, path)
	}
	return nil
}

// withoutDataDir drops "-D dir" / "-Ddir" from postmaster arguments.
func withoutDataDir(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-D":
			i++
		case strings.HasPrefix(args[i], "-D"):
		default:
			out = append(out, args[i])
		}
	}
	return out
}

// shellQuote quotes s for /bin/sh, which pg_ctl uses to run postgres.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (c *pgCtl) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := command(ctx, filepath.Join(c.binDir, "pg_ctl"), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	RunAs(cmd, c.owner)
	return cmd
}

func (c *pgCtl) Stop(ctx context.Context) error {
	cmd := c.command(ctx, "stop", "-D", c.dataDir, "-m", "fast", "-w", "-t", "3600")
	return run(cmd, "stop", "stop the server with pg_ctl")
}

func (c *pgCtl) Start(ctx context.Context) error {
	args := []string{"start", "-D", c.dataDir, "-w", "-t", "3600", "-l", c.logFile}
	if len(c.opts) > 0 {
		quoted := make([]string, len(c.opts))
		for i, o := range c.opts {
			quoted[i] = shellQuote(o)
		}
		args = append(args, "-o", strings.Join(quoted, " "))
	}
	if err := run(c.command(ctx, args...), "start", "start the server with pg_ctl"); err != nil {
		if c.logFile != os.DevNull {
			return fmt.Errorf("%w (server log: %s)", err, c.logFile)
		}
		return err
	}
	return nil
}

func (c *pgCtl) LogNote() (string, bool) { return c.logNote, c.logWarn }

func (c *pgCtl) String() string {
	if os.Geteuid() == 0 && c.owner.UID != 0 {
		return "pg_ctl (as " + c.owner.String() + ")"
	}
	return "pg_ctl"
}

type systemd struct{ unit string }

// NewSystemd returns a Controller that runs `systemctl stop|start unit`.
func NewSystemd(unit string) Controller { return systemd{unit} }

func (s systemd) Stop(ctx context.Context) error {
	return run(command(ctx, "systemctl", "stop", s.unit), "stop", "stop systemd unit "+s.unit)
}

func (s systemd) Start(ctx context.Context) error {
	return run(command(ctx, "systemctl", "start", s.unit), "start", "start systemd unit "+s.unit)
}

func (s systemd) String() string { return "systemd unit " + s.unit }

type shellCommand struct{ stop, start string }

// NewCommand returns a Controller that runs stopCmd / startCmd through
// /bin/sh -c. Either may be "", and then that operation fails.
func NewCommand(stopCmd, startCmd string) Controller { return shellCommand{stopCmd, startCmd} }

func (c shellCommand) Stop(ctx context.Context) error {
	if c.stop == "" {
		return errors.New("no stop command given; pass --stop-command")
	}
	return run(command(ctx, "/bin/sh", "-c", c.stop), "stop", "run stop command")
}

func (c shellCommand) Start(ctx context.Context) error {
	if c.start == "" {
		return errors.New("no start command given; pass --start-command")
	}
	return run(command(ctx, "/bin/sh", "-c", c.start), "start", "run start command")
}

func (c shellCommand) String() string {
	switch {
	case c.stop == "":
		return fmt.Sprintf("command %q", c.start)
	case c.start == "" || c.start == c.stop:
		return fmt.Sprintf("command %q", c.stop)
	}
	return fmt.Sprintf("commands %q / %q", c.stop, c.start)
}
