package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// horizonWait is how long the bench waits after the CHECKPOINT that follows
// pgbench -i and VACUUM FREEZE before the first live pass. pgtwopass's quick
// cold pass trusts a file's stat only when its ctime is older than the start
// of its last read by the safe horizon (2 s): in a real database the cold
// data was last written long before the first live pass; without the wait,
// the freshly checkpointed files would all be too young to be trusted.
const horizonWait = 3 * time.Second

// state is a cluster copied up to the pass-1 state: the source stopped, the
// copy as two live passes left it.
type state struct {
	scale   int
	dir     string // parent of everything below
	src     string // the stopped source data directory
	cluster *scratch.Cluster

	pristine      string // the copy after the second prepare (never modified)
	rsyncPristine string // the same copy as a live rsync -a would have left it
	dest          string // working copy of pristine for pgtwopass runs
	rdest         string // working copy of rsyncPristine for rsync runs

	srcBytes int64 // bytes of the regular files a copy includes
	srcFiles int
	largest  int64      // the largest of them
	diff     diffResult // pristine against src
	manifest int64      // size of the pristine copy's manifest

	prepare1, prepare2 pgtwopassRun // the live passes that made the state
	loadTx             int64        // transactions of the hot-set load
	hotFrom, hotTo     int          // the accounts the load updates
}

// pgtwopassRun is one run of the pgtwopass binary with --json.
type pgtwopassRun struct {
	timed
	sum summaryJSON
}

// summaryJSON is pgtwopass's --json output.
type summaryJSON struct{ pgsync.Summary }

func (s summaryJSON) blocksWritten() int64 {
	var n int64
	for _, p := range s.Passes {
		n += p.BlocksWritten
	}
	return n
}

// passSeconds is the time of the passes, without pgtwopass's start-up and
// checks.
func (s summaryJSON) passSeconds() float64 {
	var n float64
	for _, p := range s.Passes {
		n += p.Seconds
	}
	return n
}

func (s summaryJSON) filesSkipped() int64 {
	var n int64
	for _, p := range s.Passes {
		n += p.FilesSkipped
	}
	return n
}

// pgtwopass runs the binary with --json and --log-format json (the log goes
// to the returned stderr) and decodes its summary.
func (b *bench) pgtwopass(ctx context.Context, extraEnv []string, args ...string) (pgtwopassRun, error) {
	full := append([]string{args[0], "--json", "--log-format", "json"}, args[1:]...)
	t, err := runTimed(ctx, cleanEnv(extraEnv...), b.bin, full...)
	r := pgtwopassRun{timed: t}
	if jerr := json.Unmarshal([]byte(t.stdout), &r.sum); jerr != nil && err == nil {
		err = fmt.Errorf("pgtwopass %v: cannot decode --json output: %w\n%s", args, jerr, tailLines(t.stdout, 10))
	}
	if err == nil && !r.sum.OK {
		err = fmt.Errorf("pgtwopass %v: %s", args, r.sum.Error)
	}
	return r, err
}

// buildState makes the pass-1 state at the given scale under dir.
func (b *bench) buildState(ctx context.Context, scale int, dir string) (*state, error) {
	st := &state{scale: scale, dir: dir, src: filepath.Join(dir, "src")}
	st.pristine = filepath.Join(dir, "copy.pristine")
	st.rsyncPristine = filepath.Join(dir, "rsync.pristine")
	st.dest = filepath.Join(dir, "copy")
	st.rdest = filepath.Join(dir, "rsync")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}

	logf("scale %d: initdb and pgbench -i -s %d", scale, scale)
	c, err := scratch.InitDB(ctx, st.src, scratch.Options{})
	if err != nil {
		return nil, err
	}
	b.clusters = append(b.clusters, c)
	st.cluster = c
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	if err := c.PgbenchInit(ctx, scale); err != nil {
		return nil, err
	}
	logf("scale %d: VACUUM FREEZE, CHECKPOINT", scale)
	if err := settle(ctx, c); err != nil {
		return nil, err
	}

	logf("scale %d: prepare (live pass 1, idle server)", scale)
	if st.prepare1, err = b.pgtwopass(ctx, nil, "prepare", st.src, st.pristine); err != nil {
		return nil, err
	}
	logf("scale %d: prepare 1: %.1fs, wrote %s", scale, st.prepare1.wall.Seconds(), humanBytes(st.prepare1.sum.BytesWritten))

	st.hotFrom, st.hotTo = b.hotRange(scale)
	logf("scale %d: hot-set load (%d clients, aid %d..%d) for %ds, prepare during it", scale, b.cfg.clients, st.hotFrom, st.hotTo, b.cfg.loadSeconds)
	load, err := b.startHotLoad(ctx, c, st.hotFrom, st.hotTo)
	if err != nil {
		return nil, err
	}
	loadStart := time.Now()
	if err := sleep(ctx, 2*time.Second); err != nil {
		load.stop()
		return nil, err
	}
	st.prepare2, err = b.pgtwopass(ctx, nil, "prepare", st.src, st.pristine)
	if err != nil {
		load.stop()
		return nil, err
	}
	logf("scale %d: prepare 2 (under load): %.1fs, %d live passes, wrote %s", scale, st.prepare2.wall.Seconds(), len(st.prepare2.sum.Passes), humanBytes(st.prepare2.sum.BytesWritten))
	// The load goes on after the last live pass (the changes the cold pass
	// must copy), at least 2 s and until -load-seconds are over.
	end := max(time.Until(loadStart.Add(time.Duration(b.cfg.loadSeconds)*time.Second)), 2*time.Second)
	if err := sleep(ctx, end); err != nil {
		load.stop()
		return nil, err
	}
	if err := load.stop(); err != nil {
		return nil, err
	}
	s, err := c.QueryString(ctx, "SELECT count(*) FROM pgbench_history")
	if err != nil {
		return nil, err
	}
	st.loadTx, _ = strconv.ParseInt(s, 10, 64)
	if st.loadTx == 0 {
		return nil, fmt.Errorf("the hot-set load committed nothing:\n%s", load.out.String())
	}
	logf("scale %d: load committed %d transactions; stopping the server (pg_ctl stop -m fast)", scale, st.loadTx)
	if err := c.Stop(ctx, "fast"); err != nil {
		return nil, err
	}
	if err := c.Close(ctx); err != nil {
		return nil, err
	}

	// The rsync baseline: the copy without .pgtwopass, its held pg_control
	// in global/: what a live rsync -a at the same moment would have left.
	logf("scale %d: saving the pass-1 state", scale)
	if err := copyTree(ctx, st.pristine, st.rsyncPristine); err != nil {
		return nil, err
	}
	held := filepath.Join(st.rsyncPristine, manifest.DirName, "pg_control")
	if err := os.Rename(held, filepath.Join(st.rsyncPristine, "global", "pg_control")); err != nil {
		return nil, fmt.Errorf("the copy holds no pg_control in %s: %w", manifest.DirName, err)
	}
	if err := os.RemoveAll(filepath.Join(st.rsyncPristine, manifest.DirName)); err != nil {
		return nil, err
	}
	if st.srcBytes, st.srcFiles, st.largest, err = treeSize(st.src); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Join(st.pristine, manifest.DirName, manifest.FileName)); err == nil {
		st.manifest = fi.Size()
	}
	logf("scale %d: comparing the pass-1 copy with the source block by block", scale)
	if st.diff, err = blockDiff(st.src, st.pristine, true, b.cfg.blockSizes); err != nil {
		return nil, err
	}
	logf("scale %d: source %s in %d files; %s differ (%d blocks, %d files)", scale, humanBytes(st.srcBytes), st.srcFiles,
		humanBytes(st.diff.differBytes), st.diff.differBlocks, st.diff.filesDiffer)
	return st, nil
}

// settle is what follows pgbench -i: VACUUM FREEZE, CHECKPOINT, and the
// wait of horizonWait.
func settle(ctx context.Context, c *scratch.Cluster) error {
	if err := c.Exec(ctx, "VACUUM FREEZE"); err != nil {
		return err
	}
	if err := c.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	return sleep(ctx, horizonWait)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// hotRange is the range of pgbench_accounts rows the load updates: the
// -hot-percent newest (highest aid) or, with -hot-range start, the oldest.
func (b *bench) hotRange(scale int) (from, to int) {
	rows := scale * 100000
	n := max(1, int(float64(rows)*b.cfg.hotPercent/100))
	if b.cfg.hotRange == "start" {
		return 1, n
	}
	return rows - n + 1, rows
}

// hotScript updates one account among :lo..:hi and logs it in
// pgbench_history: most of the table stays cold, as in real databases.
const hotScript = `\set aid random(:lo, :hi)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, :aid, :delta, CURRENT_TIMESTAMP);
END;
`

type hotLoad struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	err  error
}

// startHotLoad runs `pgbench -n -f hot.sql -D lo=FROM -D hi=TO` until
// stopped. pgbench is a client: it runs as the bench's user (root can reach
// the socket).
func (b *bench) startHotLoad(ctx context.Context, c *scratch.Cluster, from, to int) (*hotLoad, error) {
	script := filepath.Join(filepath.Dir(c.Dir), "hot.sql")
	if err := os.WriteFile(script, []byte(hotScript), 0o644); err != nil {
		return nil, err
	}
	l := &hotLoad{done: make(chan struct{})}
	l.cmd = exec.Command(filepath.Join(c.BinDir, "pgbench"), "-n", "-f", script, "-D", "lo="+strconv.Itoa(from), "-D", "hi="+strconv.Itoa(to),
		"-c", strconv.Itoa(b.cfg.clients), "-j", "1", "-T", "86400",
		"-h", c.SocketDir, "-p", strconv.Itoa(c.Port), "-U", scratch.Superuser, "postgres")
	l.cmd.Env = cleanEnv("LC_ALL=C")
	l.cmd.Stdout, l.cmd.Stderr = &l.out, &l.out
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgbench: %w", err)
	}
	b.loads = append(b.loads, l)
	go func() {
		l.err = l.cmd.Wait()
		close(l.done)
	}()
	select {
	case <-l.done:
		return nil, fmt.Errorf("pgbench exited at once: %v\n%s", l.err, l.out.String())
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
		l.stop()
		return nil, ctx.Err()
	}
	return l, nil
}

// stop interrupts pgbench and waits for it. An error means pgbench had
// failed before it was interrupted.
func (l *hotLoad) stop() error {
	select {
	case <-l.done:
		return fmt.Errorf("the pgbench load ended early: %v\n%s", l.err, tailLines(l.out.String(), 20))
	default:
	}
	_ = l.cmd.Process.Signal(os.Interrupt)
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		_ = l.cmd.Process.Kill()
		<-l.done
	}
	return nil
}

// restoreCopy makes st.dest an exact copy of the pass-1 state (untimed).
//
// cp -a copies contents, modes, owners and mtimes, but not inode numbers
// and ctimes, which Linux cannot set. pgtwopass trusts a manifest record
// only while the copy file's stat (size, mtime, ctime, inode) is what it
// was after pgtwopass wrote it; to a restored copy it would rightly react
// by reading the copy's own bytes. So the restore also rewrites the
// manifest with the restored files' stats ("retrust"): every other field,
// the block hashes and the source stats included, stays as the second
// prepare wrote it. The contents are byte-identical, so the hashes still
// describe them: the result is the copy exactly as pgtwopass left it.
func (st *state) restoreCopy(ctx context.Context) error {
	if err := os.RemoveAll(st.dest); err != nil {
		return err
	}
	if err := copyTree(ctx, st.pristine, st.dest); err != nil {
		return err
	}
	return retrust(st.dest)
}

// restoreRsync makes st.rdest a copy of the rsync baseline (untimed).
func (st *state) restoreRsync(ctx context.Context) error {
	if err := os.RemoveAll(st.rdest); err != nil {
		return err
	}
	return copyTree(ctx, st.rsyncPristine, st.rdest)
}

// retrust rewrites dest's manifest with the current stat of each copy file
// whose size matches its record (see restoreCopy).
func retrust(dest string) error {
	mpath := filepath.Join(dest, manifest.DirName, manifest.FileName)
	fi, err := os.Stat(mpath)
	if err != nil {
		return err
	}
	r, err := manifest.Open(mpath)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := manifest.Create(mpath, int(r.Header.BlockSize))
	if err != nil {
		return err
	}
	var n int
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.Abort()
			return err
		}
		if dfi, err := os.Lstat(filepath.Join(dest, filepath.FromSlash(f.Path))); err == nil && dfi.Mode().IsRegular() && dfi.Size() == f.Dest.Size {
			s := dfi.Sys().(*syscall.Stat_t)
			f.Dest = manifest.Stat{Size: dfi.Size(), Mtime: s.Mtim.Nano(), Ctime: s.Ctim.Nano(), Inode: s.Ino}
			n++
		}
		if err := w.Add(f); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Commit(r.Header); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("retrust %s: no record matched a copy file", dest)
	}
	s := fi.Sys().(*syscall.Stat_t)
	if err := os.Lchown(mpath, int(s.Uid), int(s.Gid)); err != nil {
		return err
	}
	return os.Chmod(mpath, fi.Mode().Perm())
}
