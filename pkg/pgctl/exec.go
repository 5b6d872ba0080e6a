package pgctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/faults"
)

// command returns cmd name args in a process group of its own.
//
// A terminal's Ctrl-C sends SIGINT to its foreground process group: to
// pgtwopass and, were they in it, to the pg_ctl, systemctl or user command
// stopping or starting the server, which would die half-way (a server left
// down by an interrupted stop, with no one to start it again). In their own
// group they do not receive it; pgtwopass decides what a signal means. Such
// a child gets no terminal: a command that prompts (sudo asking for a
// password) stops on SIGTTIN, so stop and start commands must not prompt.
//
// The context ends the command as exec.CommandContext does; callers that
// must let a stop or a start run to its end pass one that is not cancelled
// (context.WithoutCancel).
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// run runs cmd, capturing its combined output into the error on failure.
// WaitDelay stops Wait from hanging on a daemon that inherited the output
// pipe; that case is not treated as a failure. phase names the server's
// step it runs ("stop", "start", ...) for the fault hooks of the tests.
func run(cmd *exec.Cmd, phase, what string) error {
	cmd.WaitDelay = 5 * time.Second
	started := faults.WrapCommand(phase, cmd)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Start()
	if err == nil {
		started()
		err = cmd.Wait()
	}
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return fmt.Errorf("failed to %s: %w%s", what, err, tail(out.Bytes()))
	}
	return nil
}
