package integration

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// The test binary is also a stand-in remote shell, as gokrazy/rsync's tests
// re-execute themselves: pgtwopass runs "RSH LOGIN COMMAND" for a DEST of the
// form LOGIN:PATH, and with PGTWOPASS_TEST_RSH set TestMain runs COMMAND with
// /bin/sh on this host, as sshd would on the other. It can also break the
// stream from the sender to the receiver:
//
//	PGTWOPASS_TEST_RSH_CUT=N   pass N bytes, then kill the receiver (kill -9) and exit 255, as ssh does when the connection drops
//	PGTWOPASS_TEST_RSH_FLIP=N  flip one bit of byte N of the stream
//	PGTWOPASS_TEST_RSH_LOG=F   append the LOGIN to file F
const (
	fakeRshEnv     = "PGTWOPASS_TEST_RSH"
	fakeRshCutEnv  = "PGTWOPASS_TEST_RSH_CUT"
	fakeRshFlipEnv = "PGTWOPASS_TEST_RSH_FLIP"
	fakeRshLogEnv  = "PGTWOPASS_TEST_RSH_LOG"
)

// fakeRshEnvFor returns the environment that makes the test binary a remote
// shell, with extra settings.
func fakeRshEnvFor(extra ...string) []string {
	return append([]string{fakeRshEnv + "=1"}, extra...)
}

// testBinary is the path of this test binary, for --rsh.
func testBinary() string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return exe
}

func fakeRsh(args []string) int {
	if len(args) != 2 {
		fmt.Fprintf(os.Stderr, "fake rsh: want LOGIN COMMAND, got %q\n", args)
		return 255
	}
	if log := os.Getenv(fakeRshLogEnv); log != "" {
		if f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			fmt.Fprintln(f, args[0])
			f.Close()
		}
	}
	cmd := exec.Command("/bin/sh", "-c", args[1])
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// A group of its own, so that a cut kills the receiver itself, not
	// only the shell that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cut, _ := strconv.ParseInt(os.Getenv(fakeRshCutEnv), 10, 64)
	flip, flipErr := strconv.ParseInt(os.Getenv(fakeRshFlipEnv), 10, 64)
	if cut <= 0 && flipErr != nil {
		cmd.Stdin = os.Stdin
		return exitCode(cmd.Run())
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return 255
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "fake rsh: %v\n", err)
		return 255
	}
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, err := os.Stdin.Read(buf)
		b := buf[:n]
		if flipErr == nil && flip >= off && flip < off+int64(n) {
			b[flip-off] ^= 0x10
		}
		if cut > 0 && off+int64(n) >= cut {
			in.Write(b[:cut-off])
			// The connection drops: the receiver dies where it stands.
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			fmt.Fprintln(os.Stderr, "fake rsh: connection cut")
			return 255
		}
		if _, werr := in.Write(b); werr != nil {
			break
		}
		off += int64(n)
		if err == io.EOF || err != nil {
			break
		}
	}
	in.Close()
	return exitCode(cmd.Wait())
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.Exited() {
		return ee.ExitCode()
	}
	return 255
}
