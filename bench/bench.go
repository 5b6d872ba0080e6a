package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

type bench struct {
	cfg      config
	root     string // the repository
	work     string // the work directory
	bin      string // the pgtwopass binary built for the run
	exe      string // this program (the raw-read child)
	caches   []string
	coldNote string // why the cold-cache mode was skipped

	clusters []*scratch.Cluster
	loads    []*hotLoad

	facts        facts
	main         *state
	cold         map[string][]measurement // by variant key + "/" + cache
	first        map[string][]measurement
	remote       map[string][]measurement
	predictions  []predictionRun
	scattered    *diffResult // after a load on random rows (block sizes)
	scatteredTx  int64
	coldManifest int64 // size of the copy's manifest after a checksum cold pass
	checks       []check
	rss          []rssRow
	profile      string // pprof -top of the cold pass
	walSizes     []*walModeSize
	faultsBin    string    // pgtwopass built with the test hooks (walModeRatio)
	mf           []*mfSize // the many-files scenario
	elapsed      time.Duration

	// the machine's load: the 1-minute load average at each timed run,
	// how long the bench waited for it to drop, and the runs measured at
	// a higher load because it did not drop in time
	runLoads    []float64
	quietWaited time.Duration
	loudRuns    int
}

// measurement is one timed run of a variant.
type measurement struct {
	seconds     float64 // wall time of the command
	passSeconds float64 // pgtwopass: the passes' own time (without start-up and checks)
	syncSeconds float64 // sync(2) right after: what was left unwritten
	read        int64   // bytes read; -1 unknown
	readEst     bool    // read is an estimate, not measured
	written     int64   // bytes written; -1 unknown
	writtenEst  bool
	sent, recv  int64 // over the remote shell; -1 unknown
	rssKiB      int64 // peak RSS of the process; -1 unknown
	blocks      int64 // blocks written (pgtwopass)
	skipped     int64 // files trusted by their stat (pgtwopass)
	load        float64
}

func newMeasurement() measurement {
	return measurement{read: -1, written: -1, sent: -1, recv: -1, rssKiB: -1}
}

// check is a correctness check of a copy after a variant ran.
type check struct {
	what string
	ok   bool
	note string
}

type rssRow struct {
	scale      int
	srcBytes   int64
	largest    int64 // the largest source file
	finishKiB  int64 // peak RSS of finish --no-stop (checksum cold pass)
	prepareKiB int64 // peak RSS of the first prepare (into an empty copy)
}

type variant struct {
	key   string
	label string
}

var coldVariants = []variant{
	{"checksum", "pgtwopass finish (checksum)"},
	{"quick", "pgtwopass finish --cold-pass=quick"},
	{"rsync", "rsync -a --checksum --delete"},
	{"raw", "raw parallel read"},
}

var firstVariants = []variant{
	{"prepare", "pgtwopass prepare"},
	{"rsync-a", "rsync -a"},
	{"cp", "cp -a"},
}

func (b *bench) run(ctx context.Context) error {
	t0 := time.Now()
	if err := b.setup(ctx); err != nil {
		return err
	}
	switch b.cfg.only {
	case "manyfiles":
		return b.runManyFiles(ctx, t0)
	case "walmode":
		if err := b.walModeScenario(ctx); err != nil {
			return err
		}
		b.elapsed = time.Since(t0)
		return b.writeWALMode()
	}
	st, err := b.buildState(ctx, b.cfg.scale, filepath.Join(b.work, fmt.Sprintf("scale%d", b.cfg.scale)))
	if err != nil {
		return err
	}
	b.main = st
	if err := b.coldPasses(ctx, st); err != nil {
		return err
	}
	if b.cfg.firstPass {
		if err := b.firstPasses(ctx, st); err != nil {
			return err
		}
	}
	if b.cfg.remote {
		if err := b.remotePasses(ctx, st); err != nil {
			return err
		}
	}
	if b.cfg.cpuprofile != "" {
		if err := b.cpuProfile(ctx, st); err != nil {
			return err
		}
	}
	if err := b.rssScales(ctx, st); err != nil {
		return err
	}
	if len(b.cfg.walScales) > 0 {
		if err := b.walModeScenario(ctx); err != nil {
			return err
		}
	}
	// Last: they start the source again and change it.
	if b.cfg.predictionRuns > 0 {
		if err := b.predictionRuns(ctx, st); err != nil {
			return err
		}
	}
	if len(b.cfg.blockSizes) > 0 {
		if err := b.scatteredRun(ctx, st); err != nil {
			return err
		}
	}
	if b.cfg.manyFiles {
		if err := b.manyFiles(ctx); err != nil {
			return err
		}
	}
	b.elapsed = time.Since(t0)
	rep := b.report()
	fmt.Print(rep)
	if b.cfg.write != "" {
		if err := writeSection(b.cfg.write, rep); err != nil {
			return err
		}
		logf("wrote %s", b.cfg.write)
	}
	if len(b.walSizes) > 0 {
		if err := b.writeWALMode(); err != nil {
			return err
		}
	}
	if b.cfg.manyFiles {
		return b.writeManyFiles()
	}
	return nil
}

// writeWALMode prints the report of the WAL-mode scenario and writes it to
// -write between its own markers.
func (b *bench) writeWALMode() error {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	p("## The cold pass modes against a switchover (`make bench`, issue 11)\n\n```\n%s\n```\n", b.command())
	b.walModeReport(p)
	p("\n")
	fmt.Print(w.String())
	if b.cfg.write == "" {
		return nil
	}
	if err := writeBetween(b.cfg.write, w.String(), walBeginMarker, walEndMarker); err != nil {
		return err
	}
	logf("wrote the WAL-mode section of %s", b.cfg.write)
	return nil
}

// runManyFiles runs the many-files scenario alone (-only manyfiles).
func (b *bench) runManyFiles(ctx context.Context, t0 time.Time) error {
	if err := b.manyFiles(ctx); err != nil {
		return err
	}
	b.elapsed = time.Since(t0)
	return b.writeManyFiles()
}

// writeManyFiles prints the many-files report and writes it to -write
// between its own markers.
func (b *bench) writeManyFiles() error {
	rep := b.mfReport()
	fmt.Print(rep)
	if b.cfg.write == "" {
		return nil
	}
	if err := writeBetween(b.cfg.write, rep, mfBeginMarker, mfEndMarker); err != nil {
		return err
	}
	logf("wrote the many-files section of %s", b.cfg.write)
	return nil
}

// command is how the bench was run.
func (b *bench) command() string {
	return fmt.Sprintf("make bench BENCH_FLAGS=\"%s\"", strings.Join(b.cfg.args, " "))
}

func (b *bench) setup(ctx context.Context) error {
	var err error
	if b.root, err = repoRoot(); err != nil {
		return err
	}
	if _, err := scratch.FindBinDir(); err != nil {
		return fmt.Errorf("%w (make deps installs PostgreSQL)", err)
	}
	if err := b.ensureTools(ctx); err != nil {
		return err
	}
	for _, c := range b.cfg.caches {
		if c == "cold" {
			if err := canDropCaches(); err != nil {
				b.coldNote = fmt.Sprintf("cold-cache runs skipped: dropping the page cache needs root (%v)", err)
				logf("%s", b.coldNote)
				continue
			}
		}
		b.caches = append(b.caches, c)
	}
	if len(b.caches) == 0 {
		return errors.New("no cache mode left to measure (cold needs root): use -cache warm")
	}
	if b.exe, err = os.Executable(); err != nil {
		return err
	}

	parent := b.cfg.work
	if parent == "" {
		parent = defaultWorkParent()
	}
	if abs, err := filepath.Abs(parent); err == nil {
		parent = abs
	}
	if within(parent, b.root) {
		return fmt.Errorf("-work %s is inside the repository: use a directory outside it", parent)
	}
	if b.cfg.cpuprofile != "" {
		if abs, err := filepath.Abs(b.cfg.cpuprofile); err == nil && within(abs, b.root) {
			return fmt.Errorf("-cpuprofile %s is inside the repository: use a directory outside it", abs)
		}
	}
	need := int64(max(b.cfg.scale, 20)) * 16 << 20 * 8
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(parent, &sfs); err == nil {
		if free := int64(sfs.Bavail) * sfs.Bsize; free < need {
			return fmt.Errorf("%s has %s free; scale %d needs about %s (source, copies and baselines)", parent, humanBytes(free), b.cfg.scale, humanBytes(need))
		}
	}
	if b.work, err = os.MkdirTemp(parent, "pgtwopass-bench-"); err != nil {
		return err
	}
	logf("work directory %s", b.work)

	b.bin = filepath.Join(b.work, "pgtwopass")
	logf("go build -o %s ./cmd/pgtwopass", b.bin)
	if _, err := runOut(ctx, b.root, goTool(), "build", "-o", b.bin, "./cmd/pgtwopass"); err != nil {
		return err
	}
	b.facts = gatherFacts(ctx, b)
	b.cold = map[string][]measurement{}
	b.first = map[string][]measurement{}
	b.remote = map[string][]measurement{}
	return nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// ensureTools installs rsync and GNU time when they are missing, with
// scripts/install-deps.sh (apt-get, as root).
func (b *bench) ensureTools(ctx context.Context) error {
	_, errRsync := exec.LookPath("rsync")
	_, errTime := os.Stat(gnuTime)
	if errRsync == nil && errTime == nil {
		return nil
	}
	logf("rsync or GNU time is missing: scripts/install-deps.sh --with-rsync --with-time")
	if _, err := runOut(ctx, b.root, "bash", "scripts/install-deps.sh", "--with-rsync", "--with-time"); err != nil {
		return fmt.Errorf("%w\ninstall rsync and GNU time (apt-get install rsync time) and run again", err)
	}
	if _, err := exec.LookPath("rsync"); err != nil {
		return errors.New("rsync is still missing after scripts/install-deps.sh --with-rsync")
	}
	if _, err := os.Stat(gnuTime); err != nil {
		return errors.New("GNU time is still missing after scripts/install-deps.sh --with-time")
	}
	return nil
}

// ready waits for a quiet machine, then puts the page cache in mode: cold
// empties it; warm reads the source once (untimed), so that it is cached.
// It returns the 1-minute load average it measured at.
func (b *bench) ready(ctx context.Context, mode, src string) (float64, error) {
	load, err := b.quiet(ctx)
	if err != nil {
		return load, err
	}
	syscall.Sync()
	if mode == "cold" {
		return load, dropCaches()
	}
	_, err = rawRead(src, b.cfg.jobs)
	return load, err
}

// quiet waits until the 1-minute load average is below -max-load, polling
// every 30 s, for at most -quiet-timeout each time and -quiet-budget in all;
// then the run is measured anyway, and counted as loud. It returns the load
// it measured at.
func (b *bench) quiet(ctx context.Context) (float64, error) {
	l := load1()
	if b.cfg.maxLoad <= 0 || l < 0 {
		b.runLoads = append(b.runLoads, l)
		return l, nil
	}
	t0 := time.Now()
	for l >= b.cfg.maxLoad {
		waited := time.Since(t0)
		if waited >= b.cfg.quietTimeout || b.quietWaited+waited >= b.cfg.quietBudget {
			b.loudRuns++
			logf("load average %.2f is still ≥ %.2f: measuring anyway", l, b.cfg.maxLoad)
			break
		}
		logf("load average %.2f ≥ %.2f: waiting 30 s for a quieter machine", l, b.cfg.maxLoad)
		if err := sleep(ctx, 30*time.Second); err != nil {
			return l, err
		}
		l = load1()
	}
	b.quietWaited += time.Since(t0)
	b.runLoads = append(b.runLoads, l)
	return l, nil
}

func rotate[T any](s []T, r int) []T {
	r %= len(s)
	return append(append([]T{}, s[r:]...), s[:r]...)
}

// rsyncStat returns the number after label in rsync --stats's output
// ("Literal data", "Total bytes sent", ...); -1 when missing.
func rsyncStat(out, label string) int64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `: ([\d,.]+)`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(m[1]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// coldPasses times the cold-pass variants from the pass-1 state.
func (b *bench) coldPasses(ctx context.Context, st *state) error {
	checked := map[string]bool{}
	for r := range b.cfg.runs {
		for _, mode := range b.caches {
			for _, v := range rotate(coldVariants, r) {
				m, err := b.runCold(ctx, st, v.key, mode)
				if err != nil {
					return fmt.Errorf("%s (%s cache): %w", v.label, mode, err)
				}
				logf("round %d %s %-36s %7.2fs (+sync %.2fs) read %s wrote %s rss %s load %.2f", r+1, mode, v.label, m.seconds, m.syncSeconds,
					humanBytes(m.read), humanBytes(m.written), humanBytes(m.rssKiB*1024), m.load)
				k := v.key + "/" + mode
				b.cold[k] = append(b.cold[k], m)
				if v.key != "raw" && !checked[v.key] {
					checked[v.key] = true
					dst := st.dest
					if v.key == "rsync" {
						dst = st.rdest
					}
					b.checkCopy(st.src, dst, "after "+v.label)
					if v.key == "checksum" {
						if fi, err := os.Stat(filepath.Join(st.dest, manifest.DirName, manifest.FileName)); err == nil {
							b.coldManifest = fi.Size()
						}
					}
				}
			}
		}
	}
	return nil
}

// runCold restores the pass-1 state for one variant, puts the page cache in
// mode, and times the variant.
func (b *bench) runCold(ctx context.Context, st *state, key, mode string) (measurement, error) {
	switch key {
	case "checksum", "quick":
		if err := st.restoreCopy(ctx); err != nil {
			return measurement{}, err
		}
	case "rsync":
		if err := st.restoreRsync(ctx); err != nil {
			return measurement{}, err
		}
	}
	m := newMeasurement()
	var err error
	if m.load, err = b.ready(ctx, mode, st.src); err != nil {
		return m, err
	}
	switch key {
	case "checksum", "quick":
		args := []string{"finish", "--no-stop"}
		if key == "quick" {
			args = append(args, "--cold-pass=quick")
		}
		r, err := b.pgtwopass(ctx, nil, append(args, st.src, st.dest)...)
		if err != nil {
			return m, err
		}
		m.seconds, m.rssKiB, m.passSeconds = r.wall.Seconds(), r.maxRSS, r.sum.passSeconds()
		m.read, m.written = r.sum.BytesRead, r.sum.BytesWritten
		m.blocks, m.skipped = r.sum.blocksWritten(), r.sum.filesSkipped()
	case "rsync":
		args := append([]string{"-a", "--checksum", "--delete", "--stats"}, rsyncExcludes()...)
		t, err := runTimed(ctx, nil, "rsync", append(args, st.src+"/", st.rdest+"/")...)
		if err != nil {
			return m, err
		}
		m.seconds, m.rssKiB = t.wall.Seconds(), t.maxRSS
		m.written = rsyncStat(t.stdout, "Literal data")
		// rsync --checksum reads every source file and every copy file of
		// the same size to compare them, then the source files it sends.
		m.read, m.readEst = st.srcBytes+st.diff.sameSizeBytes+st.diff.wholeFileBytes, true
	case "raw":
		t, err := runTimed(ctx, nil, b.exe, rawReadArg, strconv.Itoa(b.cfg.jobs), st.src)
		if err != nil {
			return m, err
		}
		m.seconds, m.rssKiB = t.wall.Seconds(), t.maxRSS
		m.read, _ = strconv.ParseInt(strings.TrimSpace(t.stdout), 10, 64)
		m.written = 0
	}
	m.syncSeconds = syncAll().Seconds()
	return m, nil
}

// checkCopy compares a copy with the source, block by block.
func (b *bench) checkCopy(src, dst, what string) {
	d, err := blockDiff(src, dst, false, nil)
	c := check{what: what + ", the copy equals the source"}
	switch {
	case err != nil:
		c.note = err.Error()
	case d.differBytes != 0 || d.extraFiles != 0:
		c.note = fmt.Sprintf("%d blocks differ in %d files, %d files missing, %d extra", d.differBlocks, d.filesDiffer, d.missingFiles, d.extraFiles)
	default:
		c.ok = true
	}
	if !c.ok {
		logf("CHECK FAILED: %s: %s", c.what, c.note)
	}
	b.checks = append(b.checks, c)
}

// firstPasses times the first pass into an empty directory (the server is
// stopped: the source does not change between variants).
func (b *bench) firstPasses(ctx context.Context, st *state) error {
	target := filepath.Join(st.dir, "first")
	for r := range b.cfg.firstRuns {
		for _, mode := range b.caches {
			for _, v := range rotate(firstVariants, r) {
				m := newMeasurement()
				var err error
				if m.load, err = b.ready(ctx, mode, st.src); err != nil {
					return err
				}
				// The last run's copy goes right before the run, after any
				// wait for a quiet machine: on a virtual machine that hands
				// free memory back to its host (virtio-balloon free page
				// reporting), pages freed long before cost the next writer
				// a fault in the host each.
				if err := os.RemoveAll(target); err != nil {
					return err
				}
				if v.key != "cp" {
					if err := os.Mkdir(target, 0o700); err != nil {
						return err
					}
				}
				syscall.Sync()
				switch v.key {
				case "prepare":
					res, err := b.pgtwopass(ctx, nil, "prepare", "--max-passes", "1", st.src, target)
					if err != nil {
						return err
					}
					m.seconds, m.rssKiB, m.read, m.written = res.wall.Seconds(), res.maxRSS, res.sum.BytesRead, res.sum.BytesWritten
					m.passSeconds = res.sum.passSeconds()
				case "rsync-a":
					args := append([]string{"-a", "--stats"}, rsyncExcludes()...)
					t, err := runTimed(ctx, nil, "rsync", append(args, st.src+"/", target+"/")...)
					if err != nil {
						return err
					}
					m.seconds, m.rssKiB = t.wall.Seconds(), t.maxRSS
					m.written = rsyncStat(t.stdout, "Literal data")
					m.read, m.readEst = st.srcBytes, true
				case "cp":
					t, err := runTimed(ctx, nil, "cp", "-a", st.src, target)
					if err != nil {
						return err
					}
					m.seconds, m.rssKiB = t.wall.Seconds(), t.maxRSS
					m.read, m.readEst, m.written, m.writtenEst = st.srcBytes, true, st.srcBytes, true
				}
				m.syncSeconds = syncAll().Seconds()
				logf("round %d %s first pass %-20s %7.2fs (+sync %.2fs) rss %s load %.2f", r+1, mode, v.label, m.seconds, m.syncSeconds, humanBytes(m.rssKiB*1024), m.load)
				k := v.key + "/" + mode
				b.first[k] = append(b.first[k], m)
			}
		}
	}
	if err := os.RemoveAll(target); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// cpuProfile runs the checksum and the quick cold pass -profile-runs times
// more each (warm cache) with PGTWOPASS_CPUPROFILE and keeps pprof's top of
// the merged profiles (one pass gives too few samples).
func (b *bench) cpuProfile(ctx context.Context, st *state) error {
	if err := os.MkdirAll(b.cfg.cpuprofile, 0o755); err != nil {
		return err
	}
	// Keep a copy of the binary next to the profiles, for later pprof runs.
	if _, err := runOut(ctx, "", "cp", b.bin, filepath.Join(b.cfg.cpuprofile, "pgtwopass")); err != nil {
		return err
	}
	dir, err := filepath.Abs(b.cfg.cpuprofile)
	if err != nil {
		return err
	}
	var parts []string
	for _, mode := range []string{"checksum", "quick"} {
		var profs, walls []string
		for i := range b.cfg.profileRuns {
			prof := filepath.Join(dir, fmt.Sprintf("cold-%s-%d.pprof", mode, i+1))
			if err := st.restoreCopy(ctx); err != nil {
				return err
			}
			if _, err := b.ready(ctx, "warm", st.src); err != nil {
				return err
			}
			logf("profiling the %s cold pass into %s", mode, prof)
			r, err := b.pgtwopass(ctx, []string{"PGTWOPASS_CPUPROFILE=" + prof}, "finish", "--no-stop", "--cold-pass="+mode, st.src, st.dest)
			if err != nil {
				return err
			}
			profs = append(profs, prof)
			walls = append(walls, fmt.Sprintf("%.2f", r.wall.Seconds()))
		}
		out, err := runOut(ctx, b.root, goTool(), append([]string{"tool", "pprof", "-top", "-nodecount=30", b.bin}, profs...)...)
		if err != nil {
			return err
		}
		parts = append(parts, fmt.Sprintf("%s cold pass, warm cache, %d runs merged (wall %s s), profiles %s\n\n%s", mode, len(profs), strings.Join(walls, ", "),
			filepath.Join(dir, "cold-"+mode+"-*.pprof"), strings.TrimRight(out, "\n")))
	}
	b.profile = strings.Join(parts, "\n\n")
	fmt.Fprintf(os.Stderr, "\n%s\n\n", b.profile)
	return nil
}

// rssScales reports the peak RSS of the checksum cold pass and of the first
// prepare at each -rss-scales scale; the main scale reuses its measurements.
func (b *bench) rssScales(ctx context.Context, main *state) error {
	scales := append([]int{}, b.cfg.rssScales...)
	if len(scales) == 0 {
		scales = []int{main.scale}
	}
	sort.Ints(scales)
	for _, scale := range scales {
		if scale == main.scale {
			row := rssRow{scale: scale, srcBytes: main.srcBytes, largest: main.largest, prepareKiB: main.prepare1.maxRSS}
			for _, mode := range b.caches {
				for _, m := range b.cold["checksum/"+mode] {
					row.finishKiB = max(row.finishKiB, m.rssKiB)
				}
			}
			b.rss = append(b.rss, row)
			continue
		}
		dir := filepath.Join(b.work, fmt.Sprintf("scale%d", scale))
		st, err := b.buildState(ctx, scale, dir)
		if err != nil {
			return err
		}
		row := rssRow{scale: scale, srcBytes: st.srcBytes, largest: st.largest, prepareKiB: st.prepare1.maxRSS}
		for range b.cfg.runs {
			m, err := b.runCold(ctx, st, "checksum", "warm")
			if err != nil {
				return err
			}
			row.finishKiB = max(row.finishKiB, m.rssKiB)
			logf("scale %d: cold pass %.2fs, peak RSS %s", scale, m.seconds, humanBytes(m.rssKiB*1024))
		}
		b.rss = append(b.rss, row)
		if !b.cfg.keep {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanup stops what the bench started and removes the work directory
// (unless -keep).
func (b *bench) cleanup() error {
	var errs error
	for _, l := range b.loads {
		select {
		case <-l.done:
		default:
			l.stop()
		}
	}
	for _, c := range b.clusters {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		errs = errors.Join(errs, c.Close(ctx))
		cancel()
		if c.Running() {
			errs = errors.Join(errs, fmt.Errorf("the server on %s is still running", c.Dir))
		}
	}
	if b.work == "" {
		return errs
	}
	if b.cfg.keep {
		logf("kept the work directory %s (servers stopped)", b.work)
		return errs
	}
	return errors.Join(errs, os.RemoveAll(b.work))
}
