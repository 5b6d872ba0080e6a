package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kballard/go-shellquote"

	"github.com/pgtwopass/pgtwopass/pkg/sync/destination"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// remoteCommand returns the command line that starts the receiver: the
// remote shell, the login, and the receiver's command, quoted for the
// remote host's shell.
func remoteCommand(r Remote, o Options, l destination.Layout) ([]string, error) {
	tsNew := l.Tablespaces
	rsh, err := shellquote.Split(o.Rsh)
	if err != nil || len(rsh) == 0 {
		return nil, pass.InputErr("give the remote shell as a command line, e.g. --rsh 'ssh -p 2222'", "invalid --rsh %q", o.Rsh)
	}
	words := []string{"receive"}
	oids := make([]string, 0, len(tsNew))
	for oid := range tsNew {
		oids = append(oids, oid)
	}
	sort.Strings(oids)
	for _, oid := range oids {
		words = append(words, "--tablespace", oid+"="+tsNew[oid])
	}
	if l.WALDir != "" {
		words = append(words, "--waldir", l.WALDir)
	}
	words = append(words, "--", r.Path)
	return append(rsh, r.login(), o.RemotePath+" "+shellquote.Join(words...)), nil
}

// Dial starts the receiver for the copy dest names ([user@]host:PATH)
// through the remote shell and connects to it; l says where the parts of
// the copy outside PATH go there. ctx bounds the session:
// when it ends, the bandwidth limit stops holding frames back, so that an
// interrupted job ends at once.
func Dial(ctx context.Context, dest string, o Options, l destination.Layout, obs pass.Observer) (*Client, error) {
	r, ok := ParseRemote(dest)
	if !ok {
		return nil, pass.InputErr("give [user@]host:PATH", "DEST %s is not on another host", dest)
	}
	if o.Rsh == "" {
		o.Rsh = DefaultRsh
	}
	if o.RemotePath == "" {
		o.RemotePath = DefaultRemotePath
	}
	switch {
	case r.Path == "":
		return nil, pass.InputErr("give the directory on the other host: [user@]host:/path/to/copy", "DEST %s names no directory", dest)
	case !strings.HasPrefix(r.Path, "/"):
		return nil, pass.InputErr("give an absolute path on the other host: [user@]host:/path/to/copy", "DEST %s: the path on %s must be absolute", dest, r.Host)
	}
	args, err := remoteCommand(r, o, l)
	if err != nil {
		return nil, err
	}
	sh := &shell{stderr: newTailBuffer(4096, o.Stderr), exited: make(chan struct{})}
	sh.cmd = exec.Command(args[0], args[1:]...)
	// Its own process group: a ^C reaches pgtwopass, which ends the session
	// cleanly, not the remote shell in the middle of a frame.
	sh.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.cmd.Stderr = sh.stderr
	if sh.stdin, err = sh.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := sh.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := sh.cmd.Start(); err != nil {
		return nil, pass.InputErr("install a remote shell, or name one with --rsh", "cannot start the remote shell %q: %v", args[0], err)
	}
	go func() {
		sh.waitErr = sh.cmd.Wait()
		close(sh.exited)
	}()
	c, err := NewClient(ctx, stdout, sh, r, o, obs)
	if err != nil {
		if !errors.As(err, new(*pass.InputError)) {
			err = sh.startFailed(r, o, args[0], err)
		}
		return nil, err
	}
	return c, nil
}

// A link carries a Client's connection and outlives it: the remote shell's
// process, or a pipe to a receiver in the same process.
type link interface {
	// Write sends bytes to the receiver; Close ends that stream.
	io.WriteCloser
	// Exited is closed when the link has ended (the remote shell exited).
	Exited() <-chan struct{}
	// Describe says how it ended, once Exited is closed: "" when it ended
	// cleanly, else the exit status with the end of its stderr.
	Describe() string
	// Kill ends it at once.
	Kill()
}

// shell is the remote shell's process.
type shell struct {
	// config
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	// state
	exited  chan struct{}
	waitErr error // set before exited is closed
}

func (s *shell) Write(p []byte) (int, error) { return s.stdin.Write(p) }
func (s *shell) Close() error                { return s.stdin.Close() }
func (s *shell) Exited() <-chan struct{}     { return s.exited }

func (s *shell) Describe() string {
	what := ""
	if s.waitErr != nil {
		what = fmt.Sprintf("the remote shell exited with %v", s.waitErr)
	}
	if tail := s.stderr.tail(); tail != "" {
		if what != "" {
			what += ": "
		}
		what += tail
	}
	return what
}

func (s *shell) Kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
}

// startFailed describes a receiver that did not answer the hello, with the
// remote shell's exit status and stderr.
func (s *shell) startFailed(r Remote, o Options, rsh string, err error) error {
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.Kill()
	}
	what := fmt.Sprintf("the receiver on %s did not answer (%v)", r.Host, err)
	select {
	case <-s.exited:
		if s.waitErr != nil {
			what = fmt.Sprintf("the receiver on %s did not start: %s exited with %v", r.Host, rsh, s.waitErr)
		}
	default:
	}
	if tail := s.stderr.tail(); tail != "" {
		what += ": " + tail
	}
	return pass.InputErr(fmt.Sprintf("check that %s reaches %s and that %q runs pgtwopass there (--rsh, --remote-path)", rsh, r.Host, o.RemotePath), "%s", what)
}

// tailBuffer passes the remote shell's stderr on, and keeps its end for
// error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
	out io.Writer
}

func newTailBuffer(n int, out io.Writer) *tailBuffer { return &tailBuffer{max: n, out: out} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	t.mu.Unlock()
	if t.out != nil {
		t.out.Write(p)
	}
	return len(p), nil
}

func (t *tailBuffer) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 && len(s)-i < 200 {
		// The last lines say the most.
		if j := strings.LastIndexByte(s[:i], '\n'); j >= 0 {
			s = s[j+1:]
		}
	}
	return strings.ReplaceAll(s, "\n", "; ")
}
