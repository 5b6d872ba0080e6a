package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// walRun is a WAL-guided finish and what it read.
type walRun struct {
	sum  summaryJSON
	read map[string][][2]int64 // source path -> byte ranges the cold pass read
}

// walFinish runs finish --cold-pass=wal (the server runs; no --restart, so
// that the copy can be compared with the stopped source) with the read log
// armed and env added (e.g. PGTWOPASS_FAULT_BEFORE_STOP), and requires it
// to succeed.
func walFinish(t *testing.T, src *scratch.Cluster, dest string, env []string, args ...string) walRun {
	t.Helper()
	log := filepath.Join(t.TempDir(), "reads")
	argv := append(append([]string{"finish", "--json", "--cold-pass=wal"}, args...), src.Dir, dest)
	r := runWith(t, runOpts{env: append([]string{"PGTWOPASS_FAULT_READ_LOG=" + log}, env...)}, argv...)
	if r.code != 0 {
		t.Fatalf("pgtwopass %s: want exit 0, got %s", strings.Join(argv, " "), r)
	}
	var w walRun
	if err := json.Unmarshal([]byte(r.stdout), &w.sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	w.read = map[string][][2]int64{}
	if f, err := os.Open(log); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) != 3 {
				continue
			}
			off, _ := strconv.ParseInt(fs[1], 10, 64)
			n, _ := strconv.ParseInt(fs[2], 10, 64)
			w.read[fs[0]] = append(w.read[fs[0]], [2]int64{off, n})
		}
		f.Close()
	}
	if strings.Contains(r.stderr, "falls back") {
		t.Logf("%s", stderrLines(r.stderr, "")[0])
	}
	return w
}

// cold returns the cold pass of the run.
func (w walRun) cold(t *testing.T) passJSON {
	t.Helper()
	for _, p := range w.sum.Passes {
		if p.Kind == "cold" {
			return p
		}
	}
	t.Fatalf("the run has no cold pass: %+v", w.sum.Passes)
	return passJSON{}
}

// crossCheck compares every block of the stopped source with the copy's
// state before the WAL-guided cold pass (before, a snapshot): every block
// that differed must have been read by the cold pass; the ones that were
// not are listed. Then the sealed copy must equal the source.
func (w walRun) crossCheck(t *testing.T, src, before, dest string) {
	t.Helper()
	var missed []string
	filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		if skipForCopy(rel) {
			return nil
		}
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(before, rel))
		if err != nil {
			b = nil
		}
		for off := 0; off < len(a); off += 8192 {
			end := min(off+8192, len(a))
			if off < len(b) && end <= len(b) && string(a[off:end]) == string(b[off:end]) {
				continue
			}
			if !w.wasRead(p, int64(off)) {
				missed = append(missed, fmt.Sprintf("%s block %d", rel, off/8192))
			}
		}
		return nil
	})
	if len(missed) > 0 {
		if len(missed) > 20 {
			missed = append(missed[:20], "...")
		}
		t.Errorf("blocks that differed between the source and the copy before the WAL-guided cold pass, and that it did not read:\n%s", strings.Join(missed, "\n"))
	}
	sameTree(t, "the copy sealed by the WAL-guided cold pass", src, dest)
}

func (w walRun) wasRead(path string, off int64) bool {
	for _, r := range w.read[path] {
		if off >= r[0] && off < r[0]+r[1] {
			return true
		}
	}
	return false
}

// snapshot copies dir (the copy, before the cold pass) for crossCheck.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	snap := filepath.Join(t.TempDir(), "snap")
	system(t, "cp", "-a", dir, snap)
	return snap
}

// TestWALGuidedColdPassUnderLoad: under a uniform pgbench load, finish
// --cold-pass=wal reads, of the relation files, only the blocks the WAL
// names: much less than the cluster, and every block that changed since the
// copy's last pass. The sealed copy equals the stopped source, passes
// pg_checksums, starts and answers as the source does.
func TestWALGuidedColdPassUnderLoad(t *testing.T) {
	needPG(t)
	t.Parallel()
	src := newCluster(t, 10)
	dest := filepath.Join(pgTempDir(t), "copy")
	startCluster(t, src)
	load, err := src.Load(ctxFor(t, 3*time.Minute), 4, 60)
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()
	mustRun(t, "prepare", src.Dir, dest)
	time.Sleep(2 * time.Second)
	before := filepath.Join(t.TempDir(), "before")
	// The copy as the catch-up pass leaves it: snapshot it right before
	// the stop.
	w := walFinish(t, src, dest, []string{"PGTWOPASS_FAULT_BEFORE_STOP=cp -a " + dest + " " + before})
	load.Stop()
	if w.sum.ColdPassMode != "wal" || w.sum.FallbackReason != "" {
		t.Fatalf("a cluster with data checksums under pgbench runs the WAL-guided cold pass: mode %q, fallback %q", w.sum.ColdPassMode, w.sum.FallbackReason)
	}
	cold := w.cold(t)
	total := dirBytes(t, src.Dir)
	t.Logf("the WAL-guided cold pass read %d of %d bytes (%.1f%%), wrote %d", cold.BytesRead, total, 100*float64(cold.BytesRead)/float64(total), cold.BytesWritten)
	w.logReads(t, src.Dir)
	if cold.BytesRead*2 > total {
		t.Errorf("the WAL-guided cold pass reads the blocks the WAL names, not the cluster: read %d of %d bytes", cold.BytesRead, total)
	}
	w.crossCheck(t, src.Dir, before, dest)
	checksumsOK(t, "the WAL-guided copy", dest)
	cp := openCopy(t, dest)
	startCluster(t, cp)
	startCluster(t, src)
	sameData(t, src, cp)
}

// dirBytes is the size of the regular files below dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// logReads logs what the cold pass read, by directory.
func (w walRun) logReads(t *testing.T, src string) {
	t.Helper()
	by := map[string]int64{}
	for p, rs := range w.read {
		rel, _ := filepath.Rel(src, p)
		d := filepath.Dir(rel)
		for _, r := range rs {
			by[d] += r[1]
		}
	}
	t.Logf("bytes read by directory: %v", by)
}
