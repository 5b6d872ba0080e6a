package scratch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// pgbenchConn returns the connection arguments of pgbench for c.
func (c *Cluster) pgbenchConn() []string {
	return []string{"-h", c.SocketDir, "-p", strconv.Itoa(c.Port), "-U", Superuser}
}

// PgbenchInit creates and fills the pgbench tables in database "postgres":
// `pgbench -i -s scale -q` (scale 1 = 100000 accounts, about 16 MB).
func (c *Cluster) PgbenchInit(ctx context.Context, scale int) error {
	bin, err := clientDir(c.BinDir, c.ClientBinDir, "pgbench")
	if err != nil {
		return err
	}
	args := append([]string{"-i", "-s", strconv.Itoa(scale), "-q"}, c.pgbenchConn()...)
	_, err = c.who.run(ctx, bin, "pgbench", append(args, "postgres")...)
	return err
}

// Load is a background pgbench write load started by Cluster.Load.
type Load struct {
	c       *Cluster
	cmd     *exec.Cmd
	appName string
	out     bytes.Buffer // pgbench stdout+stderr; read only after done
	done    chan struct{}
	waitErr error // cmd.Wait's result; read only after done

	signaled atomic.Bool // we (or ctx) interrupted pgbench
	stopOnce sync.Once
	n        int64
	err      error
}

var loadSeq atomic.Int64

// Load starts `pgbench -c clients -j 1 -T seconds -n` (and -R LoadRate) with the default
// TPC-B-like script (updates pgbench_accounts/tellers/branches, inserts into
// pgbench_history) against database "postgres", which PgbenchInit must have
// prepared. seconds <= 0 means "until Stop" (a day). Load returns once all
// clients are connected, so the load is really running.
//
// The server may be stopped under a Load: pgbench then aborts its clients
// and exits with status 2, which Stop does not count as a failure. Canceling
// ctx interrupts pgbench (SIGINT).
func (c *Cluster) Load(ctx context.Context, clients int, seconds int) (*Load, error) {
	if clients < 1 {
		clients = 1
	}
	if seconds <= 0 {
		seconds = 86400
	}
	bin, err := clientDir(c.BinDir, c.ClientBinDir, "pgbench")
	if err != nil {
		return nil, err
	}
	l := &Load{
		c:       c,
		appName: fmt.Sprintf("scratch-load-%d-%d", os.Getpid(), loadSeq.Add(1)),
		done:    make(chan struct{}),
	}
	args := append([]string{"-c", strconv.Itoa(clients), "-j", "1", "-T", strconv.Itoa(seconds), "-n"},
		c.pgbenchConn()...)
	if c.LoadRate > 0 {
		args = append(args, "-R", strconv.Itoa(c.LoadRate))
	}
	cmd := c.who.command(ctx, bin, "pgbench", append(args, "postgres")...)
	cmd.Env = append(cmd.Env, "PGAPPNAME="+l.appName)
	cmd.Stdout, cmd.Stderr = &l.out, &l.out
	cmd.Cancel = func() error {
		l.signaled.Store(true)
		return cmd.Process.Signal(os.Interrupt)
	}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scratch: pgbench: %w", err)
	}
	l.cmd = cmd
	go func() {
		l.waitErr = cmd.Wait()
		close(l.done)
	}()

	// Wait until every client has a backend.
	q := fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", l.appName)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-l.done:
			_, err := l.Stop()
			if err == nil {
				err = fmt.Errorf("scratch: pgbench exited at once\n%s", strings.TrimSpace(l.out.String()))
			}
			return nil, err
		default:
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := c.QueryString(qctx, q)
		cancel()
		if err == nil && s == strconv.Itoa(clients) {
			return l, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			l.Stop()
			return nil, fmt.Errorf("scratch: pgbench clients did not connect (%v, %q connected)\n%s",
				errors.Join(err, ctx.Err()), s, strings.TrimSpace(l.out.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Done is closed when pgbench has exited.
func (l *Load) Done() <-chan struct{} { return l.done }

// Stop ends the load and returns the number of transactions pgbench
// reports ("number of transactions actually processed"). If pgbench is still
// running, Stop terminates its backends (pg_terminate_backend on its unique
// application_name) so that pgbench prints its summary; if that does not end
// it, pgbench is sent SIGINT (and then SIGKILL), and the count is 0.
//
// The error is nil when pgbench finished, was interrupted, or aborted
// because its connections were terminated or the server went away; it
// carries pgbench's output for any other failure. Stop may be called more
// than once and returns the same results.
func (l *Load) Stop() (transactions int64, err error) {
	l.stopOnce.Do(func() { l.n, l.err = l.stop() })
	return l.n, l.err
}

func (l *Load) stop() (int64, error) {
	select {
	case <-l.done:
	default:
		if l.c.Running() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = l.c.Exec(ctx, fmt.Sprintf(
				"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '%s'", l.appName))
			cancel()
		}
		if !waitTimeout(l.done, 15*time.Second) {
			l.signaled.Store(true)
			_ = l.cmd.Process.Signal(os.Interrupt)
			if !waitTimeout(l.done, 5*time.Second) {
				_ = l.cmd.Process.Kill()
				<-l.done
			}
		}
	}
	return pgbenchResult(l.out.String(), l.waitErr, l.signaled.Load())
}

func waitTimeout(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

var processedRE = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

// goneAway are messages of pgbench client aborts caused by the server
// stopping or the backend being terminated: expected, not failures.
var goneAway = []string{
	"terminating connection due to administrator command",
	"terminating connection due to immediate shutdown",
	"terminating connection due to unexpected postmaster exit",
	"perhaps the backend died",
	"server closed the connection unexpectedly",
	"the database system is shutting down",
	"no connection to the server",
	"could not receive data from server",
	"could not send data to server",
	"connection to server",
}

// pgbenchResult interprets how a pgbench run ended.
func pgbenchResult(out string, waitErr error, signaled bool) (int64, error) {
	var n int64
	if m := processedRE.FindStringSubmatch(out); m != nil {
		n, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if waitErr == nil {
		return n, nil
	}
	fail := func() (int64, error) {
		return n, fmt.Errorf("scratch: pgbench: %w\n%s", waitErr, strings.TrimSpace(out))
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		return fail()
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && signaled {
		return n, nil // interrupted by Stop or ctx
	}
	if ee.ExitCode() != 2 {
		return fail() // 1: bad options or initial connection failure
	}
	// Exit status 2: the run was aborted. Fine only if every abort was the
	// server going away.
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "aborted") || strings.Contains(line, "Run was aborted") {
			continue
		}
		ok := false
		for _, s := range goneAway {
			if strings.Contains(line, s) {
				ok = true
				break
			}
		}
		if !ok {
			return fail()
		}
	}
	return n, nil
}
