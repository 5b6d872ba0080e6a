package pgctl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// SQL as the data directory's owner.
//
// PostgreSQL's peer authentication (pg_hba.conf "local all postgres peer",
// Debian's default) lets a client in when the OS user at the other end of the
// unix socket has the role's name; the kernel records that user when the
// client connects (SO_PEERCRED). Root is not postgres, so root cannot
// connect as postgres. pgtwopass, when it runs as root, therefore connects
// through a helper: this same program, started again with the owner's uid,
// gid and groups, which connects to the server's socket and hands the
// connected socket back over a socketpair (SCM_RIGHTS), then exits. The
// server sees the owner; the SQL itself runs in this process. This is
// exactly what `sudo -u postgres psql` gets, without sudo.

// helperEnv marks the process that serves as the helper; its value is
// "connect".
const helperEnv = "PGTWOPASS_PGCTL_HELPER"

// helperServed is set by ServeOwnerHelper: this program can be its own
// helper. A program that never called it would, started again, run its
// own main (a test binary would run its tests again), so it connects as
// itself instead.
var helperServed atomic.Bool

// ServeOwnerHelper lets this program connect to a server as the data
// directory's owner when it runs as root. Call it first thing in main
// (and in TestMain): in the helper process it does the helper's work and
// exits; elsewhere it returns at once.
func ServeOwnerHelper() {
	if os.Getenv(helperEnv) != "connect" {
		helperServed.Store(true)
		return
	}
	if err := serveConnect(os.NewFile(3, "socketpair")); err != nil {
		fmt.Fprintf(os.Stderr, "pgtwopass connect helper: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveConnect reads a unix socket path (one line) from sp, connects to it
// and sends back one byte 0 with the connected socket, or 1 and the error.
func serveConnect(sp *os.File) error {
	line, err := bufio.NewReader(sp).ReadString('\n')
	if err != nil {
		return fmt.Errorf("failed to read the request: %w", err)
	}
	path := strings.TrimSuffix(line, "\n")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		if err = unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			unix.Close(fd)
		}
	}
	rc, rerr := sp.SyscallConn()
	if rerr != nil {
		return rerr
	}
	var serr error
	cerr := rc.Write(func(s uintptr) bool {
		if err != nil {
			serr = unix.Sendmsg(int(s), append([]byte{1}, fmt.Sprintf("connect to %s: %v", path, err)...), nil, nil, 0)
		} else {
			serr = unix.Sendmsg(int(s), []byte{0}, unix.UnixRights(fd), nil, 0)
		}
		return serr != unix.EAGAIN
	})
	return errors.Join(cerr, serr)
}

// dialAsOwner connects to the unix socket path as owner, through the
// helper.
func dialAsOwner(ctx context.Context, path string, owner Owner) (net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ours := os.NewFile(uintptr(fds[0]), "helper")
	theirs := os.NewFile(uintptr(fds[1]), "helper")
	defer ours.Close()
	// /proc/self/exe: this program, whatever its path and whether or not
	// the owner may search the directories on that path.
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"pgtwopass-connect-helper"}
	cmd.Env = []string{helperEnv + "=connect"}
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Dir = "/"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: owner.credential()}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return nil, fmt.Errorf("failed to start the helper that connects as %s: %w", owner, err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Kill()
		case <-done:
		}
	}()
	reply, fd, err := askHelper(ours, path)
	werr := cmd.Wait()
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("the helper that connects as %s failed: %v (%v)%s", owner, err, werr, tail(stderr.Bytes()))
	case fd < 0:
		return nil, fmt.Errorf("failed to connect as %s: %s", owner, reply)
	}
	f := os.NewFile(uintptr(fd), "postgres")
	defer f.Close()
	return net.FileConn(f)
}

// askHelper sends path and reads the helper's answer: the connected socket
// (fd >= 0), or an error message from the helper (fd -1).
func askHelper(sp *os.File, path string) (msg string, fd int, err error) {
	if strings.ContainsRune(path, '\n') {
		return "", -1, fmt.Errorf("a socket path with a newline: %q", path)
	}
	if _, err := sp.WriteString(path + "\n"); err != nil {
		return "", -1, err
	}
	rc, err := sp.SyscallConn()
	if err != nil {
		return "", -1, err
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var rerr error
	if err := rc.Read(func(s uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(s), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	}); err != nil {
		return "", -1, err
	}
	if rerr != nil {
		return "", -1, rerr
	}
	if n == 0 {
		return "", -1, errors.New("it ended without an answer")
	}
	if buf[0] != 0 {
		return string(buf[1:n]), -1, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return "", -1, fmt.Errorf("no socket in its answer (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, f := range fds {
			unix.Close(f)
		}
		return "", -1, fmt.Errorf("no socket in its answer (%v)", err)
	}
	return "", fds[0], nil
}
