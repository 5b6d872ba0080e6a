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
	groups := owner.Groups
	if len(groups) == 0 {
		groups = []uint32{owner.GID}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: owner.UID, Gid: owner.GID, Groups: groups}
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

func withoutVar(env []string, name string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// run runs cmd, capturing its combined output into the error on failure.
// WaitDelay stops Wait from hanging on a daemon that inherited the output
// pipe; that case is not treated as a failure.
func run(cmd *exec.Cmd, what string) error {
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return fmt.Errorf("failed to %s: %w%s", what, err, tail(out))
	}
	return nil
}

// Controller stops and starts the source server.
type Controller interface {
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
	String() string
}

type pgCtl struct {
	binDir, dataDir, logFile string
	owner                    Owner
	opts                     []string // postmaster options minus binary and -D
}

// NewPgCtl returns a Controller that runs binDir/pg_ctl (as the data
// directory owner when running as root). It reads postmaster.opts now,
// before any stop, so that Start restarts the server with the same options.
// logFile is the server log for Start; "" means a file in os.TempDir().
func NewPgCtl(binDir, dataDir string, owner Owner, logFile string) (Controller, error) {
	c := &pgCtl{binDir: binDir, dataDir: dataDir, owner: owner, logFile: logFile}
	if _, args, err := ReadPostmasterOpts(dataDir); err == nil {
		c.opts = withoutDataDir(args)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if c.logFile == "" {
		name := filepath.Base(dataDir)
		if pm, err := ReadPostmasterPID(dataDir); err == nil && pm != nil && pm.Port != 0 {
			name = strconv.Itoa(pm.Port)
		}
		c.logFile = filepath.Join(os.TempDir(), "pgtwopass-server-"+name+".log")
	}
	if err := prepareLog(c.logFile, owner); err != nil {
		return nil, err
	}
	return c, nil
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
	cmd := exec.Command("/bin/sh", "-c", `test -w "$1"`, "sh", path)
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
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "pg_ctl"), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	RunAs(cmd, c.owner)
	return cmd
}

func (c *pgCtl) Stop(ctx context.Context) error {
	cmd := c.command(ctx, "stop", "-D", c.dataDir, "-m", "fast", "-w", "-t", "3600")
	return run(cmd, "stop the server with pg_ctl")
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
	if err := run(c.command(ctx, args...), "start the server with pg_ctl"); err != nil {
		return fmt.Errorf("%w (server log: %s)", err, c.logFile)
	}
	return nil
}

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
	return run(exec.CommandContext(ctx, "systemctl", "stop", s.unit), "stop systemd unit "+s.unit)
}

func (s systemd) Start(ctx context.Context) error {
	return run(exec.CommandContext(ctx, "systemctl", "start", s.unit), "start systemd unit "+s.unit)
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
	return run(exec.CommandContext(ctx, "/bin/sh", "-c", c.stop), "run stop command")
}

func (c shellCommand) Start(ctx context.Context) error {
	if c.start == "" {
		return errors.New("no start command given; pass --start-command")
	}
	return run(exec.CommandContext(ctx, "/bin/sh", "-c", c.start), "run start command")
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
