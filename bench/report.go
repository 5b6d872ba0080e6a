package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

type facts struct {
	date      string
	cpu       string
	nproc     int
	memory    string
	kernel    string
	fs        string
	postgres  string
	rsync     string
	goVersion string
	commit    string
}

func gatherFacts(ctx context.Context, b *bench) facts {
	f := facts{
		date:      time.Now().UTC().Format("2006-01-02 15:04 MST"),
		nproc:     runtime.NumCPU(),
		goVersion: runtime.Version(),
	}
	if fh, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				f.cpu = strings.TrimSpace(v)
				break
			}
		}
		fh.Close()
	}
	if fh, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var kb int64
			if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); n == 1 {
				f.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				break
			}
		}
		fh.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f.kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := runOut(ctx, "", "findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "-T", b.work); err == nil {
		fields := strings.Fields(out)
		if len(fields) >= 2 {
			f.fs = fields[0] + " on " + fields[1]
			if len(fields) >= 3 {
				f.fs += " (" + fields[2] + ")"
			}
		}
	}
	if f.fs == "" {
		if out, err := runOut(ctx, "", "stat", "-f", "-c", "%T", b.work); err == nil {
			f.fs = strings.TrimSpace(out)
		}
	}
	if bin, err := scratch.FindBinDir(); err == nil {
		if out, err := runOut(ctx, "", filepath.Join(bin, "postgres"), "--version"); err == nil {
			f.postgres = strings.TrimSpace(out)
		}
	}
	if out, err := runOut(ctx, "", "rsync", "--version"); err == nil {
		f.rsync = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	}
	if out, err := exec.CommandContext(ctx, "git", "-C", b.root, "describe", "--always", "--dirty").Output(); err == nil {
		f.commit = strings.TrimSpace(string(out))
	}
	return f
}

// median returns the run with the median time (the lower middle one for an
// even count) and the median time itself (mean of the two middle ones).
func median(ms []measurement) (measurement, float64) {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b measurement) int {
		switch {
		case a.seconds < b.seconds:
			return -1
		case a.seconds > b.seconds:
			return 1
		}
		return 0
	})
	n := len(s)
	med := s[(n-1)/2]
	sec := med.seconds
	if n%2 == 0 {
		sec = (s[n/2-1].seconds + s[n/2].seconds) / 2
	}
	return med, sec
}

func maxRSS(ms []measurement) int64 {
	var m int64 = -1
	for _, x := range ms {
		m = max(m, x.rssKiB)
	}
	return m
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3f×", a/b)
}

func bytesCell(n int64, est bool) string {
	if n < 0 {
		return "n/a"
	}
	if est {
		return "≈" + humanBytes(n)
	}
	return humanBytes(n)
}

func rssCell(kib int64) string {
	if kib < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// target is one of the targets, evaluated.
type target struct {
	ok   bool
	info bool // not a target: shown for what it explains
	text string
}

func (t target) String() string {
	switch {
	case t.info:
		return "INFO   " + t.text
	case t.ok:
		return "MET    " + t.text
	}
	return "MISSED " + t.text
}

func (b *bench) medianSeconds(m map[string][]measurement, key, mode string) (float64, bool) {
	ms := m[key+"/"+mode]
	if len(ms) == 0 {
		return 0, false
	}
	_, s := median(ms)
	return s, true
}

func (b *bench) targets() []target {
	var out []target
	for _, mode := range b.caches {
		full, ok1 := b.medianSeconds(b.cold, "checksum", mode)
		quick, ok2 := b.medianSeconds(b.cold, "quick", mode)
		rs, ok3 := b.medianSeconds(b.cold, "rsync", mode)
		raw, ok4 := b.medianSeconds(b.cold, "raw", mode)
		if ok1 && ok3 {
			out = append(out, target{ok: full <= 0.2*rs, info: mode == "cold", text: fmt.Sprintf("full-checksum cold pass ≤ 0.2× rsync --checksum (%s cache): %.2fs = %s of %.2fs", mode, full, ratio(full, rs), rs)})
		}
		if ok1 && ok4 {
			out = append(out, target{ok: full <= 1.3*raw, info: mode == "cold", text: fmt.Sprintf("full-checksum cold pass ≤ 1.3× the raw parallel read (%s cache): %.2fs = %s of %.2fs", mode, full, ratio(full, raw), raw)})
		}
		if ok2 && ok3 {
			out = append(out, target{ok: quick <= 0.05*rs, info: mode == "cold", text: fmt.Sprintf("quick cold pass ≤ 0.05× rsync --checksum (%s cache): %.2fs = %s of %.2fs", mode, quick, ratio(quick, rs), rs)})
		}
	}
	if st := b.main; st != nil {
		for _, key := range []string{"checksum", "quick"} {
			var worst int64 = -1
			for _, mode := range b.caches {
				for _, m := range b.cold[key+"/"+mode] {
					worst = max(worst, m.written)
				}
			}
			if worst >= 0 && st.diff.differBytes > 0 {
				name := "full-checksum"
				if key == "quick" {
					name = "quick"
				}
				out = append(out, target{ok: float64(worst) <= 1.1*float64(st.diff.differBytes),
					text: fmt.Sprintf("%s cold pass writes ≤ 1.1× the bytes that differ at 8 KiB blocks (most it wrote in any run): %s = %s of %s", name,
						humanBytes(worst), ratio(float64(worst), float64(st.diff.differBytes)), humanBytes(st.diff.differBytes))})
			}
		}
	}
	for _, mode := range b.caches {
		p, ok1 := b.medianSeconds(b.first, "prepare", mode)
		rs, ok2 := b.medianSeconds(b.first, "rsync-a", mode)
		if ok1 && ok2 {
			out = append(out, target{ok: p <= rs, info: mode == "cold", text: fmt.Sprintf("first live pass into an empty DEST no slower than rsync -a (%s cache): %.2fs = %s of %.2fs", mode, p, ratio(p, rs), rs)})
		}
	}
	var peak int64 = -1
	for _, mode := range b.caches {
		for _, k := range []string{"checksum", "quick"} {
			peak = max(peak, maxRSS(b.cold[k+"/"+mode]))
		}
		peak = max(peak, maxRSS(b.first["prepare/"+mode]))
	}
	var where []string
	for _, r := range b.rss {
		peak = max(peak, r.finishKiB, r.prepareKiB)
		where = append(where, fmt.Sprintf("scale %d (%s): finish %s, prepare %s", r.scale, humanBytes(r.srcBytes), rssCell(r.finishKiB), rssCell(r.prepareKiB)))
	}
	if peak >= 0 {
		out = append(out, target{ok: peak <= 100*1024, text: fmt.Sprintf("peak RSS of pgtwopass ≤ 100 MiB: %s at most (%s)", rssCell(peak), strings.Join(where, "; "))})
	}
	// Not growing with the data: at most 10% more from one size to the
	// next, where the largest file is the same (a pass holds the hashes of
	// the files in flight, and PostgreSQL splits relations into 1 GiB
	// segments); where the largest file grows, the growth is shown.
	for i := 1; i < len(b.rss); i++ {
		small, big := b.rss[i-1], b.rss[i]
		grow := float64(big.finishKiB) / float64(max(small.finishKiB, 1))
		text := fmt.Sprintf("peak RSS of the cold pass not growing with the data: %s at %s, %s at %s (%.2f× for %.1f× the data; largest file %s, then %s)",
			rssCell(small.finishKiB), humanBytes(small.srcBytes), rssCell(big.finishKiB), humanBytes(big.srcBytes), grow,
			float64(big.srcBytes)/float64(max(small.srcBytes, 1)), humanBytes(small.largest), humanBytes(big.largest))
		out = append(out, target{ok: big.finishKiB*10 <= small.finishKiB*11, info: big.largest != small.largest, text: text})
	}
	for _, c := range b.checks {
		t := target{ok: c.ok, text: "(correctness) " + c.what}
		if !c.ok {
			t.text += ": " + c.note
		}
		out = append(out, t)
	}
	return out
}

// Markers around the bench's parts of the file -write updates: the main
// scenario's and the many-files scenario's.
const (
	beginMarker    = "<!-- bench:begin: `make bench BENCH_FLAGS=\"-write docs/benchmarks.md\"` replaces everything down to bench:end -->"
	endMarker      = "<!-- bench:end -->"
	mfBeginMarker  = "<!-- bench-manyfiles:begin: `make bench` (-write) replaces everything down to bench-manyfiles:end -->"
	mfEndMarker    = "<!-- bench-manyfiles:end -->"
	walBeginMarker = "<!-- bench-walmode:begin: `make bench` (-write) replaces everything down to bench-walmode:end -->"
	walEndMarker   = "<!-- bench-walmode:end -->"
)

// writeSection puts the report between the markers of file, keeping the
// rest of it; a file without them gets the report at its end.
func writeSection(file, rep string) error { return writeBetween(file, rep, beginMarker, endMarker) }

// writeBetween puts rep between the markers begin and end of file.
func writeBetween(file, rep, begin, end string) error {
	old, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	section := begin + "\n\n" + rep + "\n" + end + "\n"
	s := string(old)
	i := strings.Index(s, begin[:strings.Index(begin, "begin")+len("begin")])
	j := strings.Index(s, end)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + section + strings.TrimPrefix(s[j+len(end):], "\n")
	case s == "":
		s = section
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + section
	}
	return os.WriteFile(file, []byte(s), 0o644)
}

func (b *bench) loadSummary() string {
	if len(b.runLoads) == 0 {
		return "n/a"
	}
	ls := slices.Clone(b.runLoads)
	slices.Sort(ls)
	s := fmt.Sprintf("%.2f to %.2f (median %.2f) over %d timed runs", ls[0], ls[len(ls)-1], ls[len(ls)/2], len(ls))
	if b.cfg.maxLoad > 0 {
		s += fmt.Sprintf("; the bench waited %s in all for it to drop below %.1f", b.quietWaited.Round(time.Second), b.cfg.maxLoad)
		if b.loudRuns > 0 {
			s += fmt.Sprintf(", and measured %d runs at a higher load because it did not drop within %s", b.loudRuns, b.cfg.quietTimeout)
		}
	}
	return s
}

// report renders everything measured as Markdown (also printed).
func (b *bench) report() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	st := b.main
	f := b.facts
	bs := fmt.Sprintf("%d KiB", blockSize/1024)

	p("## Downtime against rsync (`make bench`)\n\n")
	p("Generated by `make bench`, which installs what it needs (`scripts/install-deps.sh --with-rsync --with-time`) and runs the `bench` Go program of this repository:\n\n")
	p("```\nmake bench BENCH_FLAGS=\"%s\"\n```\n\n", strings.Join(b.cfg.args, " "))
	p("### Machine\n\n")
	p("| | |\n|---|---|\n")
	p("| date | %s |\n", f.date)
	p("| CPU | %s, %d CPUs (nproc) |\n", orNA(f.cpu), f.nproc)
	p("| memory | %s |\n", orNA(f.memory))
	p("| kernel | %s |\n", orNA(f.kernel))
	p("| file system of the work directory | %s |\n", orNA(f.fs))
	p("| PostgreSQL | %s |\n", orNA(f.postgres))
	p("| rsync | %s |\n", orNA(f.rsync))
	p("| Go, pgtwopass | %s, %s |\n", f.goVersion, orNA(f.commit))
	p("| 1-minute load average at the timed runs | %s |\n", b.loadSummary())
	p("| total bench time | %s |\n\n", b.elapsed.Round(time.Second))

	p("### Data\n\n")
	p("- pgbench scale %d: source %s in %d files (without pgtwopass's default excludes), the largest %s.\n", st.scale, humanBytes(st.srcBytes), st.srcFiles, humanBytes(st.largest))
	p("- Live pass 1 (`prepare`, idle server, after `VACUUM FREEZE` and `CHECKPOINT`): %.2fs, wrote %s.\n",
		st.prepare1.wall.Seconds(), humanBytes(st.prepare1.sum.BytesWritten))
	p("- Hot-set load: %d pgbench clients, each transaction updates one of the accounts %d to %d (%.3g %% of `pgbench_accounts`, the %s) and inserts a `pgbench_history` row; %d transactions in about %d s.\n",
		b.cfg.clients, st.hotFrom, st.hotTo, b.cfg.hotPercent, map[string]string{"end": "newest", "start": "oldest"}[b.cfg.hotRange], st.loadTx, b.cfg.loadSeconds)
	p("- Live pass 2 (`prepare` under that load, %d live passes): %.2fs, read %s, wrote %s. The load ran on after it, then `pg_ctl stop -m fast`.\n",
		len(st.prepare2.sum.Passes), st.prepare2.wall.Seconds(), humanBytes(st.prepare2.sum.BytesRead), humanBytes(st.prepare2.sum.BytesWritten))
	p("- **Bytes that differ** between that copy and the stopped source, at %s blocks: **%s** (%d blocks in %d files, %d files missing from the copy, %d files to delete). rsync sends whole files: the files that differ hold %s.\n\n",
		bs, humanBytes(st.diff.differBytes), st.diff.differBlocks, st.diff.filesDiffer, st.diff.missingFiles, st.diff.extraFiles, humanBytes(st.diff.wholeFileBytes))

	p("### Cold pass (the downtime) from the identical pass-1 state\n\n")
	p("Median of %d runs per variant and cache mode, interleaved. *s* is the wall time of the whole command (for pgtwopass: start-up, checks, pass, seal); *pass s* is pgtwopass's own account of the pass; *+sync s* is a `sync` right after the command (what it left unwritten: pgtwopass fsyncs what it writes, rsync does not). Ratios compare medians of *s* in the same cache mode. *differ* is the bytes that differ at %s blocks.\n\n", b.cfg.runs, bs)
	p("| variant | cache | s | pass s | +sync s | × rsync --checksum | × raw read | bytes read | bytes written | differ | written ÷ differ | peak RSS |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, mode := range b.caches {
		rs, _ := b.medianSeconds(b.cold, "rsync", mode)
		raw, _ := b.medianSeconds(b.cold, "raw", mode)
		for _, v := range coldVariants {
			ms := b.cold[v.key+"/"+mode]
			if len(ms) == 0 {
				continue
			}
			m, sec := median(ms)
			label := v.label
			if v.key == "raw" {
				label = fmt.Sprintf("raw parallel read (%d goroutines, 1 MiB reads)", b.cfg.jobs)
			}
			wd, pass := "n/a", "n/a"
			if m.written >= 0 && st.diff.differBytes > 0 && v.key != "raw" {
				wd = ratio(float64(m.written), float64(st.diff.differBytes))
			}
			if v.key == "checksum" || v.key == "quick" {
				pass = fmt.Sprintf("%.2f", medianPass(ms))
			}
			p("| %s | %s | %.2f | %s | %.2f | %s | %s | %s | %s | %s | %s | %s |\n", label, mode, sec, pass, m.syncSeconds, ratio(sec, rs), ratio(sec, raw),
				bytesCell(m.read, m.readEst), bytesCell(m.written, m.writtenEst), humanBytes(st.diff.differBytes), wd, rssCell(maxRSS(ms)))
		}
	}
	p("\nAll runs (seconds, in run order):\n\n")
	for _, mode := range b.caches {
		for _, v := range coldVariants {
			if ms := b.cold[v.key+"/"+mode]; len(ms) > 0 {
				p("- %s, %s: %s", v.label, mode, secondsList(ms))
				if v.key == "checksum" || v.key == "quick" {
					p(" (blocks written %d, files trusted by their stat %d)", ms[0].blocks, ms[0].skipped)
				}
				p("\n")
			}
		}
	}
	p("\n")

	if len(b.first) > 0 {
		p("### First live pass into an empty directory\n\n")
		p("The server is stopped for this measurement (the source does not change between runs); a real first pass runs while it is up. Median of %d runs, interleaved. pgtwopass fsyncs every file before it reports success; *+sync* is what the others left for the disk.\n\n", b.cfg.firstRuns)
		p("| variant | cache | s | +sync s | × rsync -a | bytes read | bytes written | peak RSS |\n")
		p("|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, mode := range b.caches {
			rs, _ := b.medianSeconds(b.first, "rsync-a", mode)
			for _, v := range firstVariants {
				ms := b.first[v.key+"/"+mode]
				if len(ms) == 0 {
					continue
				}
				m, sec := median(ms)
				label := v.label
				if v.key == "prepare" {
					label = "pgtwopass prepare --max-passes 1"
				}
				p("| %s | %s | %.2f | %.2f | %s | %s | %s | %s |\n", label, mode, sec, m.syncSeconds, ratio(sec, rs),
					bytesCell(m.read, m.readEst), bytesCell(m.written, m.writtenEst), rssCell(maxRSS(ms)))
			}
		}
		p("\nAll runs (seconds, in run order):\n\n")
		for _, mode := range b.caches {
			for _, v := range firstVariants {
				if ms := b.first[v.key+"/"+mode]; len(ms) > 0 {
					p("- %s, %s: %s\n", v.label, mode, secondsList(ms))
				}
			}
		}
		p("\n")
	}

	if len(b.remote) > 0 {
		p("### Cold pass to another host (issue 6)\n\n")
		p("From the same pass-1 state, warm cache, median of %d runs, interleaved. DEST is `%s:PATH` reached through a stand-in remote shell, `%s` (a script that drops the host and runs the command here: `shift; exec sh -c \"$*\"`), so the figures count what crosses the shell's pipes, not a network. rsync's delta algorithm is active over a remote shell: it reads both sides in full and sends what its rolling checksums do not match. *sent* and *received* are pgtwopass's `bytes_sent` and `bytes_received` (`--json`), and rsync's `--stats` \"Total bytes sent/received\".\n\n",
			b.cfg.runs, remoteHost, "RSH")
		p("| variant | s | × rsync -e | bytes sent | bytes received | sent ÷ differ | written | peak RSS (sender side) |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|\n")
		rs := 0.0
		if ms := b.remote["rsync"]; len(ms) > 0 {
			_, rs = median(ms)
		}
		for _, v := range remoteVariants {
			ms := b.remote[v.key]
			if len(ms) == 0 {
				continue
			}
			m, sec := median(ms)
			written := humanBytes(m.written)
			if v.key == "rsync" {
				written = "literal data " + written
			}
			p("| %s | %.2f | %s | %s | %s | %s | %s | %s |\n", v.label, sec, ratio(sec, rs), humanBytes(m.sent), humanBytes(m.recv),
				ratio(float64(m.sent), float64(st.diff.differBytes)), written, rssCell(maxRSS(ms)))
		}
		p("\nAll runs (seconds, in run order):\n\n")
		for _, v := range remoteVariants {
			if ms := b.remote[v.key]; len(ms) > 0 {
				p("- %s: %s\n", v.label, secondsList(ms))
			}
		}
		p("\n")
	}

	if len(st.diff.bySize) > 0 {
		p("### Block size: the manifest's size against the bytes the cold pass writes\n\n")
		p("For each block size: the size of the manifest that describes this source (every pass reads the old one and writes a new one; counted from the format in docs/design.md: the header, 99 bytes and the path per file, 16 bytes per block; the copy's real manifest after a checksum cold pass, at 8 KiB, is %s), and the bytes that differ at that block size between a copy and the stopped source, which is what a cold pass with that block size writes (it writes exactly the blocks whose hashes differ, as *written ÷ differ* shows above at 8 KiB). Two loads: the hot set above, whose changes are clustered, and pgbench's TPC-B-like script, which updates random rows of the whole table", humanBytes(b.coldManifest))
		if b.scattered != nil {
			p(" (%d transactions; then `prepare` under it, 2 s more of it, the server stopped, the copy compared)", b.scatteredTx)
		}
		p(".\n\n")
		p("| block size | manifest | hot set: cold pass writes | × at 8 KiB | scattered: cold pass writes | × at 8 KiB |\n")
		p("|---:|---:|---:|---:|---:|---:|\n")
		sizes := make([]int, 0, len(st.diff.bySize))
		for s := range st.diff.bySize {
			sizes = append(sizes, s)
		}
		sort.Ints(sizes)
		for _, s := range sizes {
			d := st.diff.bySize[s]
			sc, scr := "n/a", "n/a"
			if b.scattered != nil && b.scattered.bySize[s] != nil {
				sd := b.scattered.bySize[s]
				sc = fmt.Sprintf("%s (%d blocks)", humanBytes(sd.differBytes), sd.differBlocks)
				scr = ratio(float64(sd.differBytes), float64(b.scattered.differBytes))
			}
			p("| %d KiB | %s | %s (%d blocks) | %s | %s | %s |\n", s/1024, humanBytes(d.manifestBytes), humanBytes(d.differBytes), d.differBlocks,
				ratio(float64(d.differBytes), float64(st.diff.differBytes)), sc, scr)
		}
		p("\n")
	}

	if len(b.rss) > 0 {
		p("### Peak RSS at several data sizes\n\n")
		p("| pgbench scale | source size | largest file | finish --no-stop (checksum cold pass) | prepare (first live pass) |\n|---:|---:|---:|---:|---:|\n")
		for _, r := range b.rss {
			p("| %d | %s | %s | %s | %s |\n", r.scale, humanBytes(r.srcBytes), humanBytes(r.largest), rssCell(r.finishKiB), rssCell(r.prepareKiB))
		}
		p("\n")
	}

	if len(b.predictions) > 0 {
		p("### Downtime prediction on this scenario (issue 5)\n\n")
		p("After the measurements above, the source is started again and, %d times: the hot-set load starts, `prepare` runs under it, then `finish --restart` (under the load) predicts the downtime, stops the server, runs the cold pass and starts the server again. Predicted is `predicted_downtime_seconds`, actual `downtime_seconds` (stop to end of the start); stop and start as `DEST/.pgtwopass/server.json` records them.\n\n", len(b.predictions))
		p("| run | predicted | actual | error | stop | cold pass | start | load average |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		var errs []float64
		for i, r := range b.predictions {
			e := (r.predicted - r.actual) / r.actual * 100
			errs = append(errs, e)
			p("| %d | %.2f s | %.2f s | %+.0f%% | %.2f s | %.2f s | %.2f s | %.2f |\n", i+1, r.predicted, r.actual, e, r.stop, r.cold, r.start, r.load)
		}
		slices.Sort(errs)
		p("\nMedian error %+.0f%%.\n\n", errs[len(errs)/2])
	}

	p("### Targets (issue 4)\n\nThe targets hold for a warm page cache; the cold-cache lines (INFO) are shown for comparison. Times are the whole command's wall time (for pgtwopass also its start-up, about 20 ms, which a real `finish` spends before the stop).\n\n```\n")
	for _, t := range b.targets() {
		p("%s\n", t)
	}
	p("```\n\n")
	if b.profile != "" {
		p("### CPU profiles of the cold pass\n\n```\n%s\n```\n\n", b.profile)
	}
	p("### Method\n\n")
	p("- **Pass-1 state.** `initdb -k`, `pgbench -i -s %d`, `VACUUM FREEZE`, `CHECKPOINT`, a %v wait, `pgtwopass prepare SRC DEST`; then the hot-set load, a second `prepare` %v into it, the load for the rest of %d s (at least 2 s after that prepare), `pg_ctl stop -m fast`. The copy is saved once; every timed run starts from it.\n",
		st.scale, horizonWait, 2*time.Second, b.cfg.loadSeconds)
	p("- **The hot set** is the %s rows: the load updates the accounts %d to %d. pgbench's tables are filled to 100%%, so an update puts the new row version on a new page at the end of the table: with the newest rows hot, the changes stay in the table's last 1 GiB segment, its index and the WAL, as in a database whose old rows are cold (`-hot-range start` updates the oldest rows, and changes the first segment too).\n",
		map[string]string{"end": "newest", "start": "oldest"}[b.cfg.hotRange], st.hotFrom, st.hotTo)
	p("- **Restoring the copy** (untimed): `rm -rf DEST; cp -a DEST.pristine DEST`. `cp -a` cannot keep inode numbers and ctimes, and pgtwopass trusts a manifest record only while the copy file's stat is what it left; so after the restore the bench rewrites the manifest's *copy stat* fields with the restored files' stats (nothing else: block hashes, source stats and read times are those of the second prepare). Without that, pgtwopass would correctly distrust every record and read the copy too.\n")
	p("- **rsync's starting point** is the same copy without `.pgtwopass` and with its held `pg_control` in `global/`: what a live `rsync -a` at the same moment would have left. It is restored with `cp -a` before each run. rsync runs as `rsync -a --checksum --delete` with pgtwopass's default excludes (`%s`). rsync's *bytes written* is `--stats`'s \"Literal data\"; its *bytes read* is an estimate (≈): every source file, every copy file of the same size (compared by checksum), and the files it sends.\n",
		strings.Join(rsyncExcludes(), " "))
	p("- **Raw parallel read**: one goroutine per CPU reads every regular file of the source (16 MiB units, 1 MiB `pread`s) and discards the data, in a child process timed like the others: the physical limit of any pass that reads every block.\n")
	p("- **Cache modes.** *warm*: the source was read just before (untimed), so it is in the page cache. *cold*: `sync; echo 3 > /proc/sys/vm/drop_caches` just before the run (the restore's writes are synced first). On a virtual machine the host may still cache the disk.")
	if b.coldNote != "" {
		p(" %s.", b.coldNote)
	}
	p("\n")
	if b.cfg.maxLoad > 0 {
		p("- **A quiet machine.** Before each timed run the bench waits, polling every 30 s, until the 1-minute load average is below %.1f (at most %s each time, %s in all), then measures anyway.\n", b.cfg.maxLoad, b.cfg.quietTimeout, b.cfg.quietBudget)
	} else {
		p("- **The machine's load** was not waited for (`-max-load 0`).\n")
	}
	p("- **Quick cold pass.** `--cold-pass=quick` skips a file whose stat (size, mtime, ctime, inode) equals the manifest's and whose ctime was older than the start of its last read by the safe horizon (2 s). The bench waits %v after the initial `CHECKPOINT` before the first `prepare`, standing in for cold data last written long ago; files the load wrote after the second prepare read them are read in full.\n", horizonWait)
	p("- **Bytes that differ** are counted by reading both trees: for each source file, every block whose bytes differ from the copy's at the same offset, plus the source's bytes beyond the copy's size (files the copy lacks in full). Files only in the copy are deleted, not written.\n")
	p("- **Peak RSS** is GNU time's maximum resident set size of the command (for rsync, and for pgtwopass with a remote DEST, the largest of its processes). Go's own rusage of a child would count the bench's RSS too (it starts children with vfork).\n")
	p("- After the first run of each copying variant the copy is compared with the source block by block (the *correctness* lines).\n")
	return w.String()
}

// medianPass is the median of the passes' own time.
func medianPass(ms []measurement) float64 {
	s := make([]float64, 0, len(ms))
	for _, m := range ms {
		s = append(s, m.passSeconds)
	}
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

func secondsList(ms []measurement) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%.2f", m.seconds))
	}
	return strings.Join(s, ", ")
}
