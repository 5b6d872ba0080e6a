package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// The many-files scenario (issue 14): clusters of -manyfiles-tables small
// tables (`create table tN(id int, v text)` and one row each: its main fork,
// a TOAST table and its index, about three files a table), made by DO
// blocks of a thousand tables. At each size, from a copy made by a first
// prepare, with the source stopped and its page cache warm, interleaved:
//
//   - the idle live pass (prepare --max-passes 1, nothing changed), the cold
//     pass on the unchanged cluster (finish --no-stop), rsync -a --checksum
//     --delete on a copy of its own, and the raw read;
//   - the cold pass to "another host" through a remote shell that delays
//     what crosses it by each of -delays ms each way (pgtwopass -e and
//     rsync -e);
//   - then 1% of the tables updated (the server started, every hundredth
//     table updated, CHECKPOINT, stopped): the cold pass from the copy as the
//     live pass left it, rsync --checksum from the same copy, the raw read.
//
// It reports the seconds and the µs per file at both sizes, the cost per
// file between them, the system calls per file (strace -c -f) and, with
// -cpuprofile, the top of a CPU profile of the cold and the idle live pass.

type mfSize struct {
	tables int
	dir    string
	src    string
	dest   string // the copy pgtwopass keeps up to date
	rdest  string // rsync's copy
	remote string // the copy "on the other host"
	// the copy and rsync's as the live pass left them before the updates
	pristine, rpristine string

	cluster  *scratch.Cluster
	files    int
	bytes    int64
	build    time.Duration // to make the cluster
	first    pgtwopassRun  // the first prepare, into an empty copy
	updated  int           // tables updated for the second part
	manifest int64         // the size of the copy's manifest
	// its records, and the time to read and to write one (in process, page
	// cache warm; writing includes the commit's fsync)
	mRecords      int
	mRead, mWrite time.Duration

	runs     map[string][]measurement // by phase/variant
	syscalls map[string]straceCount   // by variant, one run each
	profile  string
}

// straceCount is strace -c -f's summary of one run: calls by system call.
type straceCount struct {
	total int64
	calls map[string]int64
}

var mfUnchanged = []variant{
	{"live", "pgtwopass prepare --max-passes 1 (idle live pass)"},
	{"cold", "pgtwopass finish --no-stop (cold pass)"},
	{"rsync", "rsync -a --checksum --delete"},
	{"raw", "raw parallel read"},
}

var mfUpdated = []variant{
	{"cold", "pgtwopass finish --no-stop (cold pass)"},
	{"rsync", "rsync -a --checksum --delete"},
	{"raw", "raw parallel read"},
}

// manyFiles runs the scenario at every size.
func (b *bench) manyFiles(ctx context.Context) error {
	rsh := filepath.Join(b.work, "rsh")
	if err := os.WriteFile(rsh, []byte(rshScript), 0o755); err != nil {
		return err
	}
	for _, n := range b.cfg.mfTables {
		s := &mfSize{tables: n, dir: filepath.Join(b.work, fmt.Sprintf("tables%d", n)), runs: map[string][]measurement{}, syscalls: map[string]straceCount{}}
		b.mf = append(b.mf, s)
		if err := b.mfBuild(ctx, s); err != nil {
			return err
		}
		if err := b.mfUnchanged(ctx, s); err != nil {
			return err
		}
		if err := b.mfRemote(ctx, s); err != nil {
			return err
		}
		if err := b.mfUpdated(ctx, s); err != nil {
			return err
		}
		if !b.cfg.keep {
			if err := os.RemoveAll(s.dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// mfBuild makes the cluster of s.tables tables, stopped, its first copy by
// prepare, and rsync's copy by rsync -a.
func (b *bench) mfBuild(ctx context.Context, s *mfSize) error {
	s.src = filepath.Join(s.dir, "src")
	s.dest = filepath.Join(s.dir, "copy")
	s.rdest = filepath.Join(s.dir, "rsync")
	s.remote = filepath.Join(s.dir, "remote")
	s.pristine = filepath.Join(s.dir, "copy.pristine")
	s.rpristine = filepath.Join(s.dir, "rsync.pristine")
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	logf("%d tables: initdb", s.tables)
	c, err := scratch.InitDB(ctx, s.src, scratch.Options{})
	if err != nil {
		return err
	}
	b.clusters = append(b.clusters, c)
	s.cluster = c
	// fsync off while the tables are made: the cluster is stopped cleanly
	// (and the page cache synced) before anything is measured.
	if err := c.Start(ctx, "fsync=off"); err != nil {
		return err
	}
	const perBlock = 1000 // a transaction's locks stay within max_locks_per_transaction
	for first := 1; first <= s.tables; first += perBlock {
		last := min(first+perBlock-1, s.tables)
		if err := c.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN FOR i IN %d..%d LOOP
  EXECUTE format('CREATE TABLE t%%s (id int, v text)', i);
  EXECUTE format('INSERT INTO t%%s VALUES (1, %%L)', i, 'x');
END LOOP; END $$`, first, last)); err != nil {
			return err
		}
		if last%10000 == 0 || last == s.tables {
			logf("%d tables: %d made", s.tables, last)
		}
	}
	if err := c.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	if err := c.Stop(ctx, "fast"); err != nil {
		return err
	}
	syncAll()
	s.build = time.Since(t0)
	if s.bytes, s.files, _, err = treeSize(s.src); err != nil {
		return err
	}
	logf("%d tables: %d files, %s, made in %s; first prepare", s.tables, s.files, humanBytes(s.bytes), s.build.Round(time.Second))
	if s.first, err = b.pgtwopass(ctx, nil, "prepare", "--max-passes", "1", s.src, s.dest); err != nil {
		return err
	}
	logf("%d tables: first prepare %.1fs; rsync -a for rsync's copy, a first finish to the remote copy", s.tables, s.first.wall.Seconds())
	args := append([]string{"-a", "--delete"}, rsyncExcludes()...)
	if _, err := runOut(ctx, "", "rsync", append(args, s.src+"/", s.rdest+"/")...); err != nil {
		return err
	}
	if _, err := b.pgtwopass(ctx, nil, "finish", "--no-stop", "-e", filepath.Join(b.work, "rsh"), "--remote-path", b.bin, s.src, remoteHost+":"+s.remote); err != nil {
		return err
	}
	return nil
}

// mfUnchanged times the variants on the unchanged cluster.
func (b *bench) mfUnchanged(ctx context.Context, s *mfSize) error {
	for r := range b.cfg.runs {
		for _, v := range rotate(mfUnchanged, r) {
			m, err := b.mfRun(ctx, s, v.key, nil)
			if err != nil {
				return fmt.Errorf("%d tables, %s: %w", s.tables, v.label, err)
			}
			s.runs["unchanged/"+v.key] = append(s.runs["unchanged/"+v.key], m)
			logf("%d tables round %d unchanged %-50s %6.2fs (%5.1f µs a file) load %.2f", s.tables, r+1, v.label, m.seconds, 1e6*m.seconds/float64(s.files), m.load)
		}
	}
	b.checkCopy(s.src, s.dest, fmt.Sprintf("%d tables, after the cold pass", s.tables))
	if fi, err := os.Stat(filepath.Join(s.dest, manifest.DirName, manifest.FileName)); err == nil {
		s.manifest = fi.Size()
	}
	var err error
	if s.mRecords, s.mRead, s.mWrite, err = manifestCost(filepath.Join(s.dest, manifest.DirName, manifest.FileName), filepath.Join(s.dir, "manifest.bench")); err != nil {
		return err
	}
	if err := b.mfStrace(ctx, s); err != nil {
		return err
	}
	if b.cfg.cpuprofile != "" {
		if err := b.mfProfile(ctx, s); err != nil {
			return err
		}
	}
	// The state the updates start from: the copy as a live pass leaves it.
	if _, err := b.pgtwopass(ctx, nil, "prepare", "--max-passes", "1", s.src, s.dest); err != nil {
		return err
	}
	if err := copyTree(ctx, s.dest, s.pristine); err != nil {
		return err
	}
	return copyTree(ctx, s.rdest, s.rpristine)
}

// mfRun runs one variant, warm cache; env is added to pgtwopass's.
func (b *bench) mfRun(ctx context.Context, s *mfSize, key string, env []string) (measurement, error) {
	m := newMeasurement()
	var err error
	if m.load, err = b.ready(ctx, "warm", s.src); err != nil {
		return m, err
	}
	switch key {
	case "live", "cold":
		args := []string{"prepare", "--max-passes", "1"}
		if key == "cold" {
			args = []string{"finish", "--no-stop"}
		}
		r, err := b.pgtwopass(ctx, env, append(args, s.src, s.dest)...)
		if err != nil {
			return m, err
		}
		m.seconds, m.passSeconds, m.rssKiB = r.wall.Seconds(), r.sum.passSeconds(), r.maxRSS
		m.read, m.written, m.skipped = r.sum.BytesRead, r.sum.BytesWritten, r.sum.filesSkipped()
	case "rsync":
		args := append([]string{"-a", "--checksum", "--delete", "--stats"}, rsyncExcludes()...)
		t, err := runTimed(ctx, nil, "rsync", append(args, s.src+"/", s.rdest+"/")...)
		if err != nil {
			return m, err
		}
		m.seconds, m.rssKiB = t.wall.Seconds(), t.maxRSS
		m.written = rsyncStat(t.stdout, "Literal data")
	case "raw":
		t, err := runTimed(ctx, nil, b.exe, rawReadArg, strconv.Itoa(b.cfg.jobs), s.src)
		if err != nil {
			return m, err
		}
		m.seconds, m.rssKiB = t.wall.Seconds(), t.maxRSS
		m.read, _ = strconv.ParseInt(strings.TrimSpace(t.stdout), 10, 64)
	}
	m.syncSeconds = syncAll().Seconds()
	return m, nil
}

// mfRemote times the cold pass of the unchanged cluster to the remote copy
// through the delaying remote shell, and rsync's likewise.
func (b *bench) mfRemote(ctx context.Context, s *mfSize) error {
	rrem := filepath.Join(s.dir, "rsync-remote")
	if err := copyTree(ctx, s.rdest, rrem); err != nil {
		return err
	}
	for r := range b.cfg.runs {
		for _, d := range b.cfg.delays {
			rsh := fmt.Sprintf("%s %s %g", b.exe, delayRshArg, d)
			for _, key := range []string{"pgtwopass", "rsync"} {
				m := newMeasurement()
				var err error
				if m.load, err = b.ready(ctx, "warm", s.src); err != nil {
					return err
				}
				if key == "pgtwopass" {
					res, err := b.pgtwopass(ctx, nil, "finish", "--no-stop", "-e", rsh, "--remote-path", b.bin, s.src, remoteHost+":"+s.remote)
					if err != nil {
						return fmt.Errorf("%d tables, pgtwopass at %g ms: %w", s.tables, d, err)
					}
					m.seconds, m.passSeconds, m.sent, m.recv = res.wall.Seconds(), res.sum.passSeconds(), res.sum.BytesSent, res.sum.BytesReceived
				} else {
					args := append([]string{"-a", "--checksum", "--delete", "--stats", "-e", rsh}, rsyncExcludes()...)
					t, err := runTimed(ctx, nil, "rsync", append(args, s.src+"/", remoteHost+":"+rrem+"/")...)
					if err != nil {
						return fmt.Errorf("%d tables, rsync at %g ms: %w", s.tables, d, err)
					}
					m.seconds = t.wall.Seconds()
					m.sent, m.recv = rsyncStat(t.stdout, "Total bytes sent"), rsyncStat(t.stdout, "Total bytes received")
				}
				k := fmt.Sprintf("remote/%s/%g", key, d)
				s.runs[k] = append(s.runs[k], m)
				logf("%d tables round %d remote %-9s at %4g ms %6.2fs sent %s received %s load %.2f", s.tables, r+1, key, d, m.seconds, humanBytes(m.sent), humanBytes(m.recv), m.load)
			}
		}
	}
	b.checkCopy(s.src, s.remote, fmt.Sprintf("%d tables, after the cold pass to the other host", s.tables))
	return nil
}

// mfUpdated updates 1% of the tables and times the variants from the copy
// as the live pass left it.
func (b *bench) mfUpdated(ctx context.Context, s *mfSize) error {
	c := s.cluster
	if err := c.Start(ctx); err != nil {
		return err
	}
	s.updated = (s.tables + 99) / 100
	if err := c.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d BY 100 LOOP
  EXECUTE format('UPDATE t%%s SET v = %%L', i, 'y');
END LOOP; END $$`, s.tables)); err != nil {
		return err
	}
	if err := c.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	if err := c.Stop(ctx, "fast"); err != nil {
		return err
	}
	logf("%d tables: %d updated, server stopped", s.tables, s.updated)
	for r := range b.cfg.runs {
		for _, v := range rotate(mfUpdated, r) {
			switch v.key {
			case "cold":
				if err := restoreInto(ctx, s.pristine, s.dest, true); err != nil {
					return err
				}
			case "rsync":
				if err := restoreInto(ctx, s.rpristine, s.rdest, false); err != nil {
					return err
				}
			}
			m, err := b.mfRun(ctx, s, v.key, nil)
			if err != nil {
				return fmt.Errorf("%d tables, %s after the updates: %w", s.tables, v.label, err)
			}
			s.runs["updated/"+v.key] = append(s.runs["updated/"+v.key], m)
			logf("%d tables round %d updated %-50s %6.2fs wrote %s load %.2f", s.tables, r+1, v.label, m.seconds, humanBytes(m.written), m.load)
		}
	}
	b.checkCopy(s.src, s.dest, fmt.Sprintf("%d tables, after the cold pass that follows the updates", s.tables))
	b.checkCopy(s.src, s.rdest, fmt.Sprintf("%d tables, after rsync --checksum that follows the updates", s.tables))
	return nil
}

// manifestCost reads the manifest at path, record by record, and writes
// its records to a new manifest at tmp (removed), the best of three each:
// the records, and the time per record of each.
func manifestCost(path, tmp string) (n int, read, write time.Duration, err error) {
	var recs []*manifest.File
	var h manifest.Header
	for i := range 3 {
		t0 := time.Now()
		r, err := manifest.Open(path)
		if err != nil {
			return 0, 0, 0, err
		}
		h = r.Header
		var got []*manifest.File
		for {
			f, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				r.Close()
				return 0, 0, 0, err
			}
			got = append(got, f)
		}
		r.Close()
		if d := time.Since(t0); i == 0 || d < read {
			read = d
		}
		recs = got
	}
	for i := range 3 {
		t0 := time.Now()
		w, err := manifest.Create(tmp, int(h.BlockSize))
		if err != nil {
			return 0, 0, 0, err
		}
		for _, f := range recs {
			if err := w.Add(f); err != nil {
				w.Abort()
				return 0, 0, 0, err
			}
		}
		if err := w.Commit(h); err != nil {
			return 0, 0, 0, err
		}
		if d := time.Since(t0); i == 0 || d < write {
			write = d
		}
	}
	os.Remove(tmp)
	if len(recs) == 0 {
		return 0, 0, 0, nil
	}
	return len(recs), read / time.Duration(len(recs)), write / time.Duration(len(recs)), nil
}

// restoreInto makes dst a copy of src; retrust makes its manifest vouch for
// the restored files again (see restoreCopy).
func restoreInto(ctx context.Context, src, dst string, retrustIt bool) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := copyTree(ctx, src, dst); err != nil {
		return err
	}
	if retrustIt {
		return retrust(dst)
	}
	return nil
}

// mfStrace counts the system calls of one idle live pass, one cold pass
// and one raw read.
func (b *bench) mfStrace(ctx context.Context, s *mfSize) error {
	if _, err := exec.LookPath("strace"); err != nil {
		logf("strace is missing: no system call counts")
		return nil
	}
	for _, key := range []string{"live", "cold", "raw"} {
		out := filepath.Join(s.dir, "strace-"+key)
		args := []string{"-c", "-f", "-o", out}
		switch key {
		case "live":
			args = append(args, b.bin, "prepare", "--max-passes", "1", s.src, s.dest)
		case "cold":
			args = append(args, b.bin, "finish", "--no-stop", s.src, s.dest)
		case "raw":
			args = append(args, b.exe, rawReadArg, strconv.Itoa(b.cfg.jobs), s.src)
		}
		if _, err := runOut(ctx, "", "strace", args...); err != nil {
			return err
		}
		text, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		s.syscalls[key] = parseStrace(string(text))
	}
	return nil
}

var straceLine = regexp.MustCompile(`^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$`)

func parseStrace(text string) straceCount {
	c := straceCount{calls: map[string]int64{}}
	for _, l := range strings.Split(text, "\n") {
		m := straceLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		if m[2] == "total" {
			c.total = n
			continue
		}
		c.calls[m[2]] = n
	}
	return c
}

// mfProfile profiles the cold and the idle live pass, -profile-runs runs
// each merged.
func (b *bench) mfProfile(ctx context.Context, s *mfSize) error {
	dir, err := filepath.Abs(b.cfg.cpuprofile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var parts []string
	for _, key := range []string{"cold", "live"} {
		var profs []string
		for i := range b.cfg.profileRuns {
			prof := filepath.Join(dir, fmt.Sprintf("tables%d-%s-%d.pprof", s.tables, key, i+1))
			if _, err := b.mfRun(ctx, s, key, []string{"PGTWOPASS_CPUPROFILE=" + prof}); err != nil {
				return err
			}
			profs = append(profs, prof)
		}
		out, err := runOut(ctx, b.root, goTool(), append([]string{"tool", "pprof", "-top", "-nodecount=20", b.bin}, profs...)...)
		if err != nil {
			return err
		}
		parts = append(parts, fmt.Sprintf("%s, %d tables, %d runs merged (profiles %s)\n\n%s", map[string]string{"cold": "cold pass", "live": "idle live pass"}[key],
			s.tables, len(profs), filepath.Join(dir, fmt.Sprintf("tables%d-%s-*.pprof", s.tables, key)), strings.TrimRight(out, "\n")))
	}
	if _, err := runOut(ctx, "", "cp", b.bin, filepath.Join(dir, "pgtwopass")); err != nil {
		return err
	}
	s.profile = strings.Join(parts, "\n\n")
	return nil
}

// mfReport renders the scenario as Markdown.
func (b *bench) mfReport() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	med := func(s *mfSize, k string) (float64, bool) {
		if len(s.runs[k]) == 0 {
			return 0, false
		}
		_, sec := median(s.runs[k])
		return sec, true
	}
	perFile := func(s *mfSize, sec float64) float64 { return 1e6 * sec / float64(s.files) }
	p("## Clusters with many relations (`make bench`, issue 14)\n\n")
	p("Clusters of small tables (`CREATE TABLE tN (id int, v text)` and one row each, made by DO blocks: a main fork, a TOAST table and its index, about three files a table), PostgreSQL's server stopped, page cache warm. ")
	p("Median of %d runs per variant, interleaved; *s* is the wall time of the whole command, *µs/file* that divided by the files of the source. ", b.cfg.runs)
	p("The raw read is the bench's own (`filepath.WalkDir`, `os.Open`, 1 MiB reads, %d goroutines). rsync runs on a copy of its own, made by `rsync -a` of the same source.\n\n", b.cfg.jobs)
	p("```\n%s\n```\n\n", b.command())
	if len(b.mf) == 0 {
		return w.String()
	}
	p("| tables | files | bytes | made in | first prepare | manifest | its records | read a record | write a record |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range b.mf {
		p("| %d | %d | %s | %s | %.2fs | %s | %d | %.2f µs | %.2f µs |\n", s.tables, s.files, humanBytes(s.bytes), s.build.Round(time.Second), s.first.wall.Seconds(),
			humanBytes(s.manifest), s.mRecords, float64(s.mRead.Nanoseconds())/1e3, float64(s.mWrite.Nanoseconds())/1e3)
	}
	p("\n*read a record*, *write a record*: the copy's manifest read back record by record (`manifest.Reader`) and written anew (`manifest.Writer`, the commit's fsync included), in the bench's process, the best of three.\n\n")
	p("\n### Unchanged cluster\n\n")
	p("| tables | variant | s | pass s | µs/file | × raw read | × rsync --checksum | written | peak RSS | load |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range b.mf {
		raw, _ := med(s, "unchanged/raw")
		rs, _ := med(s, "unchanged/rsync")
		for _, v := range mfUnchanged {
			k := "unchanged/" + v.key
			sec, ok := med(s, k)
			if !ok {
				continue
			}
			m, _ := median(s.runs[k])
			p("| %d | %s | %.2f | %s | %.1f | %s | %s | %s | %s | %s |\n", s.tables, v.label, sec, passCell(m), perFile(s, sec), ratio(sec, raw), ratio(sec, rs),
				bytesCell(m.written, false), rssCell(maxRSS(s.runs[k])), loadCell(s.runs[k]))
		}
	}
	p("\n### After updates in 1%% of the tables\n\n")
	p("The server started, every hundredth table updated (`UPDATE tN SET v = 'y'`), `CHECKPOINT`, the server stopped; each run starts from the copy as a live pass left it before the updates.\n\n")
	p("| tables | variant | s | µs/file | × raw read | × rsync --checksum | written | load |\n|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range b.mf {
		raw, _ := med(s, "updated/raw")
		rs, _ := med(s, "updated/rsync")
		for _, v := range mfUpdated {
			k := "updated/" + v.key
			sec, ok := med(s, k)
			if !ok {
				continue
			}
			m, _ := median(s.runs[k])
			p("| %d | %s | %.2f | %.1f | %s | %s | %s | %s |\n", s.tables, v.label, sec, perFile(s, sec), ratio(sec, raw), ratio(sec, rs), bytesCell(m.written, false), loadCell(s.runs[k]))
		}
	}
	if len(b.mf) >= 2 {
		a, z := b.mf[0], b.mf[len(b.mf)-1]
		p("\n### Cost per file between the sizes\n\n")
		p("The difference of the medians between %d and %d tables divided by the difference of their files (%d): what one more file costs, without the costs that do not grow with the files (start-up, checks, fsyncs, the seal).\n\n", a.tables, z.tables, z.files-a.files)
		p("| variant | µs per file |\n|---|---:|\n")
		for _, k := range []string{"unchanged/live", "unchanged/cold", "unchanged/rsync", "unchanged/raw", "updated/cold", "updated/rsync"} {
			x, ok1 := med(a, k)
			y, ok2 := med(z, k)
			if ok1 && ok2 {
				p("| %s | %.1f |\n", strings.Replace(k, "/", ": ", 1), 1e6*(y-x)/float64(z.files-a.files))
			}
		}
	}
	p("\n### Cold pass to another host\n\n")
	p("Through a remote shell that holds every chunk crossing it, in each direction, for the given delay (`bench %s MS`: this machine's kernel has no netem), unchanged cluster.\n\n", delayRshArg)
	p("| tables | delay each way | pgtwopass s | pgtwopass − at 0 ms | sent / received | rsync -e s | load |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range b.mf {
		base, _ := med(s, fmt.Sprintf("remote/pgtwopass/%g", b.cfg.delays[0]))
		for _, d := range b.cfg.delays {
			k := fmt.Sprintf("remote/pgtwopass/%g", d)
			sec, ok := med(s, k)
			if !ok {
				continue
			}
			m, _ := median(s.runs[k])
			rs, _ := med(s, fmt.Sprintf("remote/rsync/%g", d))
			p("| %d | %g ms | %.2f | %+.2f | %s / %s | %.2f | %s |\n", s.tables, d, sec, sec-base, humanBytes(m.sent), humanBytes(m.recv), rs, loadCell(s.runs[k]))
		}
	}
	if len(b.mf[0].syscalls) > 0 {
		p("\n### System calls per file\n\n")
		p("`strace -c -f` of one run each (the calls of every thread, divided by the source's files).\n\n")
		p("| tables | pass | all | the most frequent |\n|---:|---|---:|---|\n")
		for _, s := range b.mf {
			for _, key := range []string{"live", "cold", "raw"} {
				c, ok := s.syscalls[key]
				if !ok {
					continue
				}
				p("| %d | %s | %.1f | %s |\n", s.tables, map[string]string{"live": "idle live pass", "cold": "cold pass", "raw": "raw read"}[key], float64(c.total)/float64(s.files), topCalls(c, float64(s.files), 8))
			}
		}
	}
	p("\n### Targets\n\n")
	for _, t := range b.mfTargets() {
		p("- %s\n", t)
	}
	for _, s := range b.mf {
		if s.profile != "" {
			p("\n### CPU profile, %d tables\n\n```\n%s\n```\n", s.tables, s.profile)
		}
	}
	p("\n### All runs (seconds, in run order)\n\n")
	for _, s := range b.mf {
		keys := make([]string, 0, len(s.runs))
		for k := range s.runs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p("- %d tables, %s: %s\n", s.tables, k, secondsList(s.runs[k]))
		}
	}
	return w.String()
}

func passCell(m measurement) string {
	if m.passSeconds <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", m.passSeconds)
}

func loadCell(ms []measurement) string {
	var ls []float64
	for _, m := range ms {
		ls = append(ls, m.load)
	}
	if len(ls) == 0 {
		return "n/a"
	}
	slices.Sort(ls)
	if ls[0] == ls[len(ls)-1] {
		return fmt.Sprintf("%.2f", ls[0])
	}
	return fmt.Sprintf("%.2f–%.2f", ls[0], ls[len(ls)-1])
}

func topCalls(c straceCount, files float64, n int) string {
	type kv struct {
		k string
		v int64
	}
	var kvs []kv
	for k, v := range c.calls {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].v > kvs[j].v })
	var out []string
	for _, x := range kvs[:min(n, len(kvs))] {
		out = append(out, fmt.Sprintf("%s %.2f", x.k, float64(x.v)/files))
	}
	return strings.Join(out, ", ")
}

// mfTargets evaluates issue 14's targets.
func (b *bench) mfTargets() []target {
	var ts []target
	med := func(s *mfSize, k string) (float64, bool) {
		if len(s.runs[k]) == 0 {
			return 0, false
		}
		_, sec := median(s.runs[k])
		return sec, true
	}
	for _, s := range b.mf {
		for _, phase := range []string{"unchanged", "updated"} {
			cold, ok1 := med(s, phase+"/cold")
			raw, ok2 := med(s, phase+"/raw")
			rs, ok3 := med(s, phase+"/rsync")
			if !ok1 || !ok2 || !ok3 {
				continue
			}
			what := map[string]string{"unchanged": "unchanged cluster", "updated": "after updates in 1% of the tables"}[phase]
			ts = append(ts, target{ok: cold <= 1.2*raw, text: fmt.Sprintf("%d tables, %s: cold pass ≤ 1.2 × the raw read: %.2fs against %.2fs (%.2f×)", s.tables, what, cold, raw, cold/raw)})
			ts = append(ts, target{ok: cold < rs, text: fmt.Sprintf("%d tables, %s: cold pass faster than rsync --checksum: %.2fs against %.2fs", s.tables, what, cold, rs)})
		}
		if live, ok := med(s, "unchanged/live"); ok {
			ts = append(ts, target{ok: 1e6*live/float64(s.files) <= 5, text: fmt.Sprintf("%d tables: idle live pass ≤ 5 µs a file: %.1f µs (%.2fs for %d files)", s.tables, 1e6*live/float64(s.files), live, s.files)})
		}
		if len(b.cfg.delays) > 1 {
			base, ok1 := med(s, fmt.Sprintf("remote/pgtwopass/%g", b.cfg.delays[0]))
			last := b.cfg.delays[len(b.cfg.delays)-1]
			far, ok2 := med(s, fmt.Sprintf("remote/pgtwopass/%g", last))
			if ok1 && ok2 {
				ts = append(ts, target{ok: far-base <= 2, text: fmt.Sprintf("%d tables: to another host at %g ms each way, at most 2 s above %g ms: %+.2fs (%.2fs against %.2fs)", s.tables, last, b.cfg.delays[0], far-base, far, base)})
			}
		}
	}
	return ts
}
