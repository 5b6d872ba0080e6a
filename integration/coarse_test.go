package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// coarseFS mounts a file system with one-second timestamps: ext4 made with
// 128-byte inodes, loop-mounted, as ext3-era volumes and some network file
// systems are. It needs root (CI runs as root).
func coarseFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP LOUDLY: mounting a file system with one-second timestamps needs root; CI runs this as root")
	}
	dir := pgTempDir(t)
	img, mnt := filepath.Join(dir, "ext4-128.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"truncate", "-s", "256M", img},
		{"mkfs.ext4", "-q", "-F", "-I", "128", img},
		{"mount", "-o", "loop", img, mnt},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s (the test needs e2fsprogs and loop devices)", strings.Join(cmd, " "), err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	if err := os.Chmod(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// The premise: timestamps in whole seconds.
	probe := filepath.Join(mnt, "probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(probe, time.Unix(1e9, 123456789), time.Unix(1e9, 123456789)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(probe); err != nil || fi.ModTime().Nanosecond() != 0 {
		t.Fatalf("test premise: %s keeps timestamps in whole seconds (%v, %v)", mnt, fi.ModTime(), err)
	}
	os.Remove(probe)
	return mnt
}

func ctimeSecond(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ctim.Sec
}

// TestCoarseTimestampsNeverSealAWrongCopy: on a DEST with one-second
// timestamps, a pass writes file F = A and commits; in the same second the
// source's F becomes B and the next pass rewrites the copy's F to B and
// ends before its commit (kill -9, Ctrl-C, or an I/O error on a later
// file); the source's F goes back to A. The copy's F now has B under a stat
// equal to the committed record's (same size, same second). The cold pass
// must not trust that record: it writes A back, and the sealed copy equals
// the source. An idle live pass over SRC (nanosecond timestamps) and this
// DEST changes nothing.
func TestCoarseTimestampsNeverSealAWrongCopy(t *testing.T) {
	needPG(t)
	mnt := coarseFS(t)
	src := newCluster(t, 0)
	for _, end := range []struct {
		name string
		env  []string
		kill bool
		// f is the file rewritten: postgresql.conf, the last file of the
		// walk, so that its record is stamped at the end of its pass; g
		// (with an I/O error) a second changed file, whose write fails.
		f, g string
	}{
		{"kill -9", []string{"PGTWOPASS_FAULT_KILL_AFTER_FILES=2"}, true, "postgresql.conf", ""},
		{"Ctrl-C", []string{"PGTWOPASS_FAULT_SIGINT_AFTER_FILES=2", "PGTWOPASS_FAULT_FILE_DELAY=300ms"}, false, "postgresql.conf", ""},
		{"EIO", []string{"PGTWOPASS_FAULT_EIO_AFTER_BLOCKS=1"}, false, "base/1/1259", "base/1/2608"},
	} {
		t.Run(end.name, func(t *testing.T) {
			dest := filepath.Join(mnt, strings.ReplaceAll(end.name, " ", "_"))
			mustRun(t, "finish", "--no-stop", src.Dir, dest)
			sameCoarseTree(t, "the first copy", src.Dir, dest)

			// An idle live pass re-stamps nothing: the source's nanosecond
			// mtimes are what DEST's one-second ones keep.
			var idle summaryJSON
			runJSON(t, &idle, "prepare", "--max-passes", "1", "--json", src.Dir, dest)
			if idle.FilesChanged != 0 {
				t.Errorf("an idle live pass over a DEST with one-second timestamps changes nothing, it changed %d files", idle.FilesChanged)
			}

			f, copyF := filepath.Join(src.Dir, end.f), filepath.Join(dest, end.f)
			var premise bool
			for attempt := 0; attempt < 8 && !premise; attempt++ {
				// Commit F = A at second S (a cold pass: no wait at its end).
				mustRun(t, "finish", "--no-stop", src.Dir, dest)
				s := ctimeSecond(t, copyF)
				// In the same second: F = B in the source, and a pass that
				// rewrites the copy's F and ends before its commit.
				flipByte(t, f, 100)
				if end.g != "" {
					flipByte(t, filepath.Join(src.Dir, end.g), 4096) // the write that fails
				}
				r := runWith(t, runOpts{env: end.env}, "prepare", "--max-passes", "1", src.Dir, dest)
				if r.code == 0 {
					t.Fatalf("test premise: the fault (%s) ends the pass before its commit, but it exited 0", end.name)
				}
				if end.kill && r.signal != syscall.SIGKILL {
					t.Fatalf("test premise: the pass is killed, got %s", r)
				}
				rewritten := sameBytes(t, f, copyF) // the copy's F holds B
				flipByte(t, f, 100)                 // the source's F is A again
				if end.g != "" {
					flipByte(t, filepath.Join(src.Dir, end.g), 4096)
				}
				premise = rewritten && ctimeSecond(t, copyF) == s
				if !premise {
					t.Logf("attempt %d: the copy's F rewritten: %v; the second ticked between the passes: %v; again", attempt, rewritten, ctimeSecond(t, copyF) != s)
				}
			}
			if !premise {
				t.Fatalf("test premise: the rewrite of F lands in the second of its record (8 attempts)")
			}
			var res summaryJSON
			runJSON(t, &res, "finish", "--no-stop", "--json", src.Dir, dest)
			sameCoarseTree(t, "a copy sealed after a pass that ended before its commit, in the second of the last record", src.Dir, dest)
			if stdout, _, code := run(t, "verify", src.Dir, dest); code != 0 {
				t.Errorf("verify finds the sealed copy different from the source (exit %d):\n%s", code, stdout)
			}
			if res.BytesWritten == 0 {
				t.Errorf("the cold pass must write F back (the copy held B), it wrote nothing")
			}
		})
	}
}

// sameCoarseTree is sameTree for a copy on a file system that keeps
// timestamps in whole seconds: mtimes compared to the second.
func sameCoarseTree(t *testing.T, what, src, dst string) {
	t.Helper()
	diffs, err := scratch.CompareTrees(src, dst, scratch.CompareOptions{Skip: skipForCopy, Owners: true, MtimeGranularity: time.Second})
	if err != nil {
		t.Fatalf("compare trees: %v", err)
	}
	if len(diffs) > 0 {
		if len(diffs) > 40 {
			diffs = append(diffs[:40], "...")
		}
		t.Errorf("%s: the copy differs from the source in %d ways:\n%s", what, len(diffs), strings.Join(diffs, "\n"))
	}
}

// sameBytes reports whether files a and b hold the same bytes.
func sameBytes(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}
