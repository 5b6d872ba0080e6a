package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// runOut runs a command to completion and returns its stdout; on failure the
// error carries its stderr.
func runOut(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tailLines(errb.String()+out.String(), 30))
	}
	return out.String(), nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// timed is one timed run of a child process.
type timed struct {
	wall   time.Duration // from start to exit
	maxRSS int64         // peak RSS in KiB (the child and its waited-for children); -1 unknown
	stdout string
	stderr string
}

// gnuTime is GNU time, which reports a command's peak RSS. Go's own
// rusage of a child is no good for that: Go starts children with
// vfork (CLONE_VM), and Linux charges the parent's RSS at the exec to the
// child's ru_maxrss, so every child would seem at least as big as the
// bench. GNU time forks a small copy of itself, whose RSS is about 2 MiB.
const gnuTime = "/usr/bin/time"

// runTimed runs a command under GNU time and measures its wall time and
// peak RSS. env nil means the current environment.
func runTimed(ctx context.Context, env []string, name string, args ...string) (timed, error) {
	rss, err := os.CreateTemp("", "pgtwopass-bench-rss-")
	if err != nil {
		return timed{}, err
	}
	rss.Close()
	defer os.Remove(rss.Name())
	cmd := exec.CommandContext(ctx, gnuTime, append([]string{"-q", "-f", "%M", "-o", rss.Name(), name}, args...)...)
	if env != nil {
		cmd.Env = env
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err = cmd.Run()
	r := timed{wall: time.Since(t0), stdout: out.String(), stderr: errb.String(), maxRSS: -1}
	if b, rerr := os.ReadFile(rss.Name()); rerr == nil {
		if n, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); perr == nil {
			r.maxRSS = n
		}
	}
	if err != nil {
		return r, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, tailLines(r.stderr+r.stdout, 30))
	}
	return r, nil
}

// load1 is the 1-minute load average.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// syncAll runs sync(2) and returns how long it took: the time to make
// durable what a command left in the page cache.
func syncAll() time.Duration {
	t0 := time.Now()
	syscall.Sync()
	return time.Since(t0)
}

// dropCaches empties the page cache, dentries and inodes (root only).
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// canDropCaches reports whether the cold-cache mode is possible.
func canDropCaches() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	f, err := os.OpenFile("/proc/sys/vm/drop_caches", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// copyTree is `cp -a src dst` (dst must not exist).
func copyTree(ctx context.Context, src, dst string) error {
	_, err := runOut(ctx, "", "cp", "-a", src, dst)
	return err
}

// excluded reports whether rel is left out of a copy by pgtwopass's default
// excludes (same rules: a pattern without a slash matches the name at any
// depth, one with a slash the whole relative path).
func excluded(rel string) bool {
	name := path.Base(rel)
	for _, p := range pgsync.DefaultExcludes {
		subject := name
		if strings.Contains(p, "/") {
			subject = rel
		}
		if ok, _ := path.Match(p, subject); ok {
			return true
		}
	}
	return false
}

// rsyncExcludes are pgtwopass's default excludes as rsync filter rules
// (anchored at the transfer root when the pattern has a slash).
func rsyncExcludes() []string {
	var out []string
	for _, p := range pgsync.DefaultExcludes {
		if strings.Contains(p, "/") {
			p = "/" + p
		}
		out = append(out, "--exclude="+p)
	}
	return out
}

// treeSize sums the sizes of the regular files of dir that a copy includes,
// and returns the largest.
func treeSize(dir string) (n int64, files int, largest int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." && excluded(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
			files++
			largest = max(largest, fi.Size())
		}
		return nil
	})
	return n, files, largest, err
}

func humanBytes(n int64) string {
	switch {
	case n < 0:
		return "n/a"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
}

// cleanEnv is the environment without libpq's PG* variables and without
// pgtwopass's fault and profile variables (PGTWOPASS_BINDIR is kept), plus
// extra: the bench's children must not pick up a user's settings.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") && k != "PGTWOPASS_BINDIR" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}
