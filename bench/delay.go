package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// delayRshArg runs the bench binary as a remote shell that delays what
// crosses it: `bench -internal-delay-rsh MS HOST COMMAND...` runs COMMAND on
// this host (HOST is ignored, as the stand-in remote shell does) and holds
// every chunk that it reads from either pipe for MS milliseconds before it
// writes it on, keeping the chunks in order and in flight meanwhile: a link
// with a one-way latency of MS, and no bandwidth limit. This machine's kernel
// has no netem to do it.
const delayRshArg = "-internal-delay-rsh"

func delayRshMain(args []string) int {
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: bench "+delayRshArg+" MS HOST COMMAND...")
		return 2
	}
	ms, err := strconv.ParseFloat(args[0], 64)
	if err != nil || ms < 0 {
		fmt.Fprintln(os.Stderr, "bad MS")
		return 2
	}
	d := time.Duration(ms * float64(time.Millisecond))
	// Like the stand-in shell: sh -c "$*" runs pgtwopass's one word and
	// rsync's several alike.
	cmd := exec.Command("sh", "-c", strings.Join(args[2:], " "))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		delayCopy(in, os.Stdin, d)
		in.Close()
	}()
	// Everything the command wrote goes out before this shell exits; what
	// still comes in after the command exited has no reader (the caller
	// closes its end when this shell exits).
	delayCopy(os.Stdout, out, d)
	err = cmd.Wait()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 1
	}
	return 0
}

// delayChunk is what one read got, and when.
type delayChunk struct {
	b  []byte
	at time.Time
}

// delayCopy copies r to w, writing each chunk read d after it was read.
// Reading goes on while chunks wait, up to 64 MiB of them.
func delayCopy(w io.Writer, r io.Reader, d time.Duration) {
	ch := make(chan delayChunk, 1024)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 64<<10)
			n, err := r.Read(b)
			if n > 0 {
				ch <- delayChunk{b[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if wait := time.Until(c.at.Add(d)); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := w.Write(c.b); err != nil {
			for range ch {
			}
			return
		}
	}
}
