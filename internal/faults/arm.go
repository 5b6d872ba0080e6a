//go:build pgtwopass_faults

package faults

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Armed reports that this binary was built with the fault hooks' arming.
const Armed = true

// init arms the hooks from the environment, for the crash tests
// (integration/faults_test.go). Each variable arms one fault:
//
//	PGTWOPASS_FAULT_KILL_AFTER_BLOCKS=K  SIGKILL itself once K blocks are written
//	PGTWOPASS_FAULT_KILL_AFTER_FILES=K   SIGKILL itself once K files are complete
//	PGTWOPASS_FAULT_SIGINT_AFTER_FILES=K SIGINT itself once K files are complete (a Ctrl-C mid-pass)
//	PGTWOPASS_FAULT_EIO_AFTER_BLOCKS=K   every write after the first K blocks fails with EIO
//	PGTWOPASS_FAULT_FILE_DELAY=DURATION  sleep after each file (to signal a pass mid-way)
//	PGTWOPASS_FAULT_EIO_READ=SUFFIX      reads of source files whose path ends in SUFFIX fail with EIO
//	PGTWOPASS_FAULT_QUICK_MARGIN=DURATION the quick cold pass's safe horizon (default 2s)
//	PGTWOPASS_FAULT_READ_LOG=FILE        append "path offset length" for every read of a source file in a cold pass
//	PGTWOPASS_FAULT_BEFORE_STOP=CMD      run CMD (sh -c) right before finish stops the source server
//	PGTWOPASS_FAULT_KILL_AFTER_STOP_BLOCKS=K  SIGKILL itself once K blocks are written after the stop (in the cold pass)
//	PGTWOPASS_FAULT_BEFORE_RESTART=CMD   run CMD (/bin/sh -c) before starting the source server again
//	PGTWOPASS_FAULT_PHASE_DELAY=PHASE=DURATION[,PHASE=DURATION]
//	                                     make a phase of finish last DURATION longer, so that a
//	                                     test can signal pgtwopass while it runs: "checkpoint"
//	                                     and "seal" sleep in pgtwopass, "stop" and "start" in the
//	                                     child process that stops or starts the server (a shell
//	                                     that sleeps, then runs the command). Each writes
//	                                     "pgtwopass: fault: PHASE: DURATION" to stderr once it runs.
func init() {
	if err := arm(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtwopass: error: %v\n", err)
		os.Exit(2)
	}
}

func arm() error {
	if v := os.Getenv("PGTWOPASS_FAULT_QUICK_MARGIN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("PGTWOPASS_FAULT_QUICK_MARGIN=%q: want a positive duration", v)
		}
		Hooks.QuickMargin = d
	}
	if v := os.Getenv("PGTWOPASS_FAULT_PHASE_DELAY"); v != "" {
		if err := armPhases(v); err != nil {
			return err
		}
	}
	if cmd := os.Getenv("PGTWOPASS_FAULT_BEFORE_RESTART"); cmd != "" {
		Hooks.BeforeRestart = func() {
			c := exec.Command("/bin/sh", "-c", cmd)
			c.Stdout, c.Stderr = os.Stderr, os.Stderr
			if err := c.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "pgtwopass: PGTWOPASS_FAULT_BEFORE_RESTART failed: %v\n", err)
			}
		}
	}
	if path := os.Getenv("PGTWOPASS_FAULT_READ_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("PGTWOPASS_FAULT_READ_LOG=%q: %v", path, err)
		}
		var mu stdsync.Mutex
		Hooks.SourceRead = func(p string, off, n int64) {
			mu.Lock()
			fmt.Fprintf(f, "%s %d %d\n", p, off, n)
			mu.Unlock()
		}
	}
	var stopped atomic.Bool
	cmd := os.Getenv("PGTWOPASS_FAULT_BEFORE_STOP")
	Hooks.BeforeStop = func() {
		if cmd != "" {
			c := exec.Command("/bin/sh", "-c", cmd)
			c.Stdout, c.Stderr = os.Stderr, os.Stderr
			if err := c.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "PGTWOPASS_FAULT_BEFORE_STOP: %v\n", err)
			}
		}
		stopped.Store(true)
	}
	if suffix := os.Getenv("PGTWOPASS_FAULT_EIO_READ"); suffix != "" {
		Hooks.BeforeRead = func(path string) error {
			if strings.HasSuffix(path, suffix) {
				return syscall.EIO
			}
			return nil
		}
	}
	num := func(name string) (int64, bool, error) {
		v := os.Getenv(name)
		if v == "" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, false, fmt.Errorf("%s=%q: want a number of blocks or files", name, v)
		}
		return n, true, nil
	}
	var blocks, files atomic.Int64
	killBlocks, kb, err := num("PGTWOPASS_FAULT_KILL_AFTER_BLOCKS")
	if err != nil {
		return err
	}
	if k, ok, err := num("PGTWOPASS_FAULT_KILL_AFTER_STOP_BLOCKS"); err != nil {
		return err
	} else if ok {
		var after atomic.Int64
		Hooks.BeforeWrite = func(path string, n int64) error {
			if stopped.Load() && after.Add(n)-n >= k {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
			return nil
		}
	}
	eioBlocks, eb, err := num("PGTWOPASS_FAULT_EIO_AFTER_BLOCKS")
	if err != nil {
		return err
	}
	killFiles, kf, err := num("PGTWOPASS_FAULT_KILL_AFTER_FILES")
	if err != nil {
		return err
	}
	intFiles, inf, err := num("PGTWOPASS_FAULT_SIGINT_AFTER_FILES")
	if err != nil {
		return err
	}
	var delay time.Duration
	if v := os.Getenv("PGTWOPASS_FAULT_FILE_DELAY"); v != "" {
		if delay, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("PGTWOPASS_FAULT_FILE_DELAY=%q: %v", v, err)
		}
	}
	if kb || eb {
		Hooks.BeforeWrite = func(path string, n int64) error {
			done := blocks.Add(n) - n
			if kb && done >= killBlocks {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
			if eb && done >= eioBlocks {
				return syscall.EIO
			}
			return nil
		}
	}
	if kf || inf || delay > 0 {
		var interrupted atomic.Bool
		Hooks.AfterFile = func(string) {
			n := files.Add(1)
			if kf && n >= killFiles {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
			if inf && n >= intFiles && interrupted.CompareAndSwap(false, true) {
				syscall.Kill(os.Getpid(), syscall.SIGINT)
			}
			time.Sleep(delay)
		}
	}
	return nil
}

// armPhases arms PGTWOPASS_FAULT_PHASE_DELAY.
func armPhases(v string) error {
	delays := map[string]time.Duration{}
	for _, item := range strings.Split(v, ",") {
		name, dur, ok := strings.Cut(item, "=")
		d, err := time.ParseDuration(dur)
		switch name {
		case "checkpoint", "seal", "stop", "start":
		default:
			ok = false
		}
		if !ok || err != nil || d <= 0 {
			return fmt.Errorf("PGTWOPASS_FAULT_PHASE_DELAY=%q: want PHASE=DURATION[,...] with PHASE checkpoint, stop, seal or start", v)
		}
		delays[name] = d
	}
	announce := func(name string, d time.Duration) {
		fmt.Fprintf(os.Stderr, "pgtwopass: fault: %s: %v\n", name, d)
	}
	Hooks.Phase = func(name string) {
		if d, ok := delays[name]; ok {
			announce(name, d)
			time.Sleep(d)
		}
	}
	Hooks.WrapCommand = func(phase string, cmd *exec.Cmd) func() {
		d, ok := delays[phase]
		if !ok {
			return nil
		}
		// A shell that sleeps, then becomes the command: a child that is
		// running while the test signals, in whatever process group the
		// command was given.
		args := append([]string{"/bin/sh", "-c", `sleep "$0"; exec "$@"`, strconv.FormatFloat(d.Seconds(), 'f', 3, 64), cmd.Path}, cmd.Args[1:]...)
		cmd.Path, cmd.Args = "/bin/sh", args
		// Announced once the child runs (in its own process group, if it
		// was given one), so that a test's signal cannot come before.
		return func() { announce(phase, d) }
	}
	return nil
}
