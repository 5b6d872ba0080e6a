// Command bench measures pgtwopass's downtime against rsync, the tool the
// PostgreSQL documentation's "File System Level Backup" uses: `make bench`.
//
// It builds a pgbench cluster, makes a copy with two live passes (the second
// under a hot-set write load on the newest rows), stops the server, and
// saves that "pass-1 state". From that identical state it then times, with a
// warm and a cold page cache, interleaved, the median of -runs runs of:
//
//   - pgtwopass finish --no-stop (the full-checksum cold pass),
//   - pgtwopass finish --no-stop --cold-pass=quick,
//   - rsync -a --checksum --delete (what the documentation runs while the
//     server is down),
//   - a raw parallel read of the source (the physical limit of a pass that
//     reads every block),
//
// the first live pass into an empty directory (pgtwopass prepare, rsync -a,
// cp -a), and the cold pass into a copy on "another host" through a stand-in
// remote shell (pgtwopass -e against rsync -e, whose delta algorithm is then
// active). It reports bytes read and written, the bytes that really differ
// at each block size and the manifest's size there, the peak RSS at two data
// sizes, and checks the targets of issue 4. Last, it restarts the source and
// measures the downtime prediction's error: finish stops it under the load.
// Before each timed run it waits (up to -quiet-timeout) for the 1-minute load
// average to drop below -max-load. See docs/benchmarks.md for a report.
//
// Nothing is written in the repository unless -write is given (it replaces
// the part of the file between the bench's markers). The work directory
// (under /var/tmp by default) is removed at the end unless -keep.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	scale          int
	runs           int
	firstRuns      int
	clients        int
	loadSeconds    int
	hotPercent     float64
	hotRange       string
	work           string
	caches         []string
	rssScales      []int
	blockSizes     []int
	firstPass      bool
	remote         bool
	predictionRuns int
	cpuprofile     string
	profileRuns    int
	write          string
	keep           bool
	jobs           int
	walScales      []int
	only           string
	manyFiles      bool
	mfTables       []int
	delays         []float64
	maxLoad        float64
	quietTimeout   time.Duration
	quietBudget    time.Duration
	args           []string
}

func main() {
	// Internal mode: the raw parallel read, run as a child process so that
	// it is timed and measured (RSS) like the other variants.
	if len(os.Args) > 2 && os.Args[1] == rawReadArg {
		os.Exit(rawReadMain(os.Args[2:]))
	}
	// Internal mode: a remote shell that delays what crosses it.
	if len(os.Args) > 2 && os.Args[1] == delayRshArg {
		os.Exit(delayRshMain(os.Args[2:]))
	}

	var cfg config
	var caches, rssScales, blockSizes, walScales, mfTables, delays string
	flag.IntVar(&cfg.scale, "scale", 100, "pgbench scale of the main cluster (100 ≈ 1.5 GB)")
	flag.IntVar(&cfg.runs, "runs", 3, "runs of each variant per cache mode (the median is reported)")
	flag.IntVar(&cfg.firstRuns, "first-runs", 5, "runs of each first-pass variant per cache mode (writing 1.7 GB varies more on a virtual machine)")
	flag.IntVar(&cfg.clients, "clients", 4, "pgbench clients of the hot-set write load")
	flag.IntVar(&cfg.loadSeconds, "load-seconds", 8, "seconds of hot-set write load (the second prepare runs during it)")
	flag.Float64Var(&cfg.hotPercent, "hot-percent", 1, "the load updates PERCENT % of the pgbench_accounts rows")
	flag.StringVar(&cfg.hotRange, "hot-range", "end", "which rows the load updates: end (the newest, highest aid) or start (the oldest)")
	flag.StringVar(&cfg.work, "work", "", "parent of the work directory (default /var/tmp, else the temp directory); never the repository")
	flag.StringVar(&caches, "cache", "warm,cold", "page-cache modes to measure: warm, cold or both (cold needs root)")
	flag.StringVar(&rssScales, "rss-scales", "20,100,300", "pgbench scales at which the peak RSS of the cold pass is reported")
	flag.StringVar(&blockSizes, "block-sizes", "4096,8192,16384,32768,65536,131072", "block sizes at which the bytes that differ and the manifest's size are counted")
	flag.BoolVar(&cfg.firstPass, "first-pass", true, "also time the first live pass into an empty directory (prepare vs rsync -a vs cp -a)")
	flag.BoolVar(&cfg.remote, "remote", true, "also time the cold pass over a stand-in remote shell (pgtwopass -e vs rsync -e)")
	flag.IntVar(&cfg.predictionRuns, "prediction-runs", 3, "finish runs that stop the source under the load, for the downtime prediction's error (0: none)")
	flag.Float64Var(&cfg.maxLoad, "max-load", 1.5, "wait before each timed run until the 1-minute load average is below this (0: never wait)")
	flag.DurationVar(&cfg.quietTimeout, "quiet-timeout", 20*time.Minute, "wait at most this long for -max-load before one run, then measure anyway")
	flag.DurationVar(&cfg.quietBudget, "quiet-budget", time.Hour, "wait at most this long for -max-load in all")
	flag.StringVar(&cfg.cpuprofile, "cpuprofile", "", "run the checksum and the quick cold pass once more each with PGTWOPASS_CPUPROFILE=DIR/cold-MODE.pprof and report pprof -top (DIR outside the repository)")
	flag.IntVar(&cfg.profileRuns, "profile-runs", 8, "with -cpuprofile: profiled runs of each cold pass, merged")
	flag.StringVar(&cfg.write, "write", "", "write the report (Markdown) to this file, e.g. docs/benchmarks.md")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (its clusters stopped)")
	flag.StringVar(&walScales, "wal-scales", "50,250", "pgbench scales of the cold pass modes and switchover scenario (issue 11; empty: none): two sizes about 5× apart")
	flag.IntVar(&cfg.jobs, "jobs", 0, "goroutines of the raw parallel read (default: one per CPU, as pgtwopass)")
	flag.StringVar(&cfg.only, "only", "", "run one scenario only: manyfiles (the many-files scenario) or walmode (the cold pass modes against a switchover, -wal-scales), without the main pgbench cluster; -write then replaces only that scenario's section")
	flag.BoolVar(&cfg.manyFiles, "manyfiles", true, "also run the many-files scenario (issue 14)")
	flag.StringVar(&mfTables, "manyfiles-tables", "10000,50000", "sizes of the many-files scenario, in tables of one row (about three files each)")
	flag.StringVar(&delays, "delays", "0,1,25", "delays (ms, each way) of the remote shell of the many-files scenario's cold pass to another host; the first is the baseline")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench [flags]\n\n%s\n\nflags:\n", strings.SplitN(docSummary, "\n\n", 2)[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	cfg.args = os.Args[1:]
	if flag.NArg() > 0 {
		fatalf("unexpected arguments: %q", flag.Args())
	}
	if cfg.jobs <= 0 {
		cfg.jobs = runtime.NumCPU()
	}
	var err error
	if cfg.caches, err = parseCaches(caches); err != nil {
		fatalf("%v", err)
	}
	if cfg.rssScales, err = parseInts(rssScales); err != nil {
		fatalf("-rss-scales: %v", err)
	}
	if cfg.walScales, err = parseInts(walScales); err != nil {
		fatalf("-wal-scales: %v", err)
	}
	if cfg.blockSizes, err = parseInts(blockSizes); err != nil {
		fatalf("-block-sizes: %v", err)
	}
	for _, bs := range cfg.blockSizes {
		if bs%unit != 0 || bs&(bs-1) != 0 {
			fatalf("-block-sizes: %d is not a power of two and a multiple of %d", bs, unit)
		}
	}
	if cfg.mfTables, err = parseInts(mfTables); err != nil {
		fatalf("-manyfiles-tables: %v", err)
	}
	for _, f := range strings.Split(delays, ",") {
		d, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || d < 0 {
			fatalf("-delays: %q is not a number of milliseconds", f)
		}
		cfg.delays = append(cfg.delays, d)
	}
	if cfg.only != "" && cfg.only != "manyfiles" && cfg.only != "walmode" {
		fatalf("-only: %q is neither manyfiles nor walmode", cfg.only)
	}
	if cfg.scale < 1 || cfg.runs < 1 || cfg.firstRuns < 1 || cfg.profileRuns < 1 || cfg.clients < 1 || cfg.loadSeconds < 3 || cfg.hotPercent <= 0 || cfg.hotPercent > 100 || cfg.predictionRuns < 0 {
		fatalf("need -scale ≥ 1, -runs ≥ 1, -clients ≥ 1, -load-seconds ≥ 3, 0 < -hot-percent ≤ 100, -prediction-runs ≥ 0")
	}
	if cfg.hotRange != "end" && cfg.hotRange != "start" {
		fatalf("-hot-range is end or start, not %q", cfg.hotRange)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	b := &bench{cfg: cfg}
	err = b.run(ctx)
	stop()
	if cerr := b.cleanup(); cerr != nil {
		logf("cleanup: %v", cerr)
		err = errors.Join(err, cerr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: error: %v\n", err)
		os.Exit(1)
	}
}

const docSummary = `bench times pgtwopass's cold pass (checksum and quick) against rsync --checksum and a raw parallel read of the source, from one identical pass-1 state, with a warm and a cold page cache; then the first live pass, the cold pass over a remote shell, and the downtime prediction's error.`

func parseCaches(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		switch c {
		case "":
		case "warm", "cold":
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		default:
			return nil, fmt.Errorf("-cache: %q is not warm or cold", c)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-cache: give warm, cold or both")
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

var start = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}

// defaultWorkParent is /var/tmp (a disk file system on most systems, where
// /tmp may be tmpfs), else the temp directory.
func defaultWorkParent() string {
	if st, err := os.Stat("/var/tmp"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/var/tmp", ".pgtwopass-bench-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/var/tmp"
		}
	}
	return os.TempDir()
}

// repoRoot is the module's root: where ./cmd/pgtwopass is built from.
func repoRoot() (string, error) {
	out, err := runOut(context.Background(), "", goTool(), "env", "GOMOD")
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(out)
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the pgtwopass module: run make bench (or go run ./bench) from the repository")
	}
	return filepath.Dir(mod), nil
}

// goTool is the go command: the one in PATH, else $GOROOT/bin/go.
func goTool() string {
	if p, err := lookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
