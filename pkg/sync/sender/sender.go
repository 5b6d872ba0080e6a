// Package sender is the side of a pass that reads SRC: it walks the data
// directory, reads the files the destination asks for, hashes their blocks
// (xxh3-128) and sends the runs of blocks whose hashes differ from the
// copy's. It knows the destination only as a [pass.Destination], so it
// drives a copy on this host and a receiver on another host alike.
//
// [Run] runs one pass.
package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/internal/faults"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// errVanished marks a file the live pass could not read whole because the
// running server removed, shortened or replaced it: it gets no record, and
// the next pass compares it again.
var errVanished = errors.New("changed under the live pass")

// Config says what one pass of the sender does.
type Config struct {
	Kind manifest.PassKind
	// Source is SRC: absolute, symlinks resolved.
	Source   string
	Excluder pass.Excluder
	// BlockSize is --block-size; 0 takes the manifest's, or the default.
	BlockSize int
	Jobs      int
	DryRun    bool
	// Quick asks the destination for a quick cold pass, with this margin.
	Quick       bool
	QuickMargin time.Duration
	// BackupManifest makes a cold pass compute every file's CRC-32C and the
	// destination write PostgreSQL's backup_manifest, whose WAL range is
	// Timeline and CheckpointLSN.
	BackupManifest          bool
	Timeline, CheckpointLSN string
	// IDs maps the source's owners to the copy's.
	IDs pass.IDMap
	// Quiet: the destination reports no events (a dry run that predicts).
	Quiet bool
	// WAL, for a WAL-guided cold pass, is its read plan; nil otherwise.
	WAL *WAL
	// Note warns of what the walk finds that the copy does not carry as it
	// is (pass.Notes): the first pass of a job does.
	Note     bool
	Observer pass.Observer
}

// WAL is the read plan of a WAL-guided cold pass.
type WAL struct {
	// Plan says, per file, whether to read it whole or which of its blocks
	// the WAL names (package walplan).
	Plan interface {
		For(rel string) (whole bool, blocks []uint32)
	}
	// Since and Margin: see pass.WALRequest.
	Since  time.Time
	Margin time.Duration
}

// BlockSize returns the block size of a pass: --block-size (want), which
// must match the copy's (h, the manifest's header, nil for a new copy),
// else the copy's, else the default.
func BlockSize(want int, h *manifest.Header) (int, error) {
	if h != nil {
		switch {
		case want == 0:
			return int(h.BlockSize), nil
		case want != int(h.BlockSize):
			return 0, pass.InputErr(fmt.Sprintf("use --block-size %d (or no --block-size) with this copy, or start a new copy", h.BlockSize),
				"DEST was copied with block size %d, not %d", h.BlockSize, want)
		}
	}
	if want == 0 {
		return pass.DefaultBlockSize, nil
	}
	return want, nil
}

// sender is one live or cold pass on the sender's side.
type sender struct {
	// config
	cfg   *Config
	dst   pass.Destination
	bs    int
	chunk int  // bytes read at a time: a multiple of bs
	crc   bool // compute each file's CRC-32C (see Run)
	obs   pass.Observer

	// state
	named                 [][]uint32 // of a WAL-guided cold pass: the blocks the WAL names, by entry
	read, written, blocks atomic.Int64
	examined              atomic.Int64
	readBusy, writeBusy   atomic.Int64 // ns, summed over workers
	readWall, writeWall   time.Duration
	notes                 pass.Notes
	entries               []pass.Entry // the walk
	walked                time.Time    // when the walk began
	dirs                  *srcDirs     // SRC's directories, open while files are read
}

// Run runs one pass of cfg.Kind from SRC into dst, whose manifest has the
// header h (nil for a new copy). The copy stays unsealed unless a cold pass
// completes.
func Run(ctx context.Context, cfg *Config, dst pass.Destination, h *manifest.Header) (pass.Stats, *pass.CommitReply, error) {
	started := time.Now()
	bs, err := BlockSize(cfg.BlockSize, h)
	if err != nil {
		return pass.Stats{Kind: cfg.Kind, Started: started, Finished: started}, nil, err
	}
	p := &sender{cfg: cfg, dst: dst, bs: bs, chunk: max(pass.ChunkSize, bs), obs: cfg.Observer}
	if p.obs == nil {
		p.obs = pass.NopObserver{}
	}
	// The CRC-32C of a file costs more CPU than reading and hashing it
	// (about 13 GB/s against 22 GB/s for xxh3-128 here), and only
	// PostgreSQL's backup_manifest needs it. The cold pass, which is
	// downtime, computes it only when it writes one; live passes always do,
	// so that a quick cold pass can list the files it trusts by their stat.
	// A record without it is flagged manifest.FlagNoCRC32C.
	p.crc = cfg.Kind == manifest.Live || cfg.BackupManifest
	return p.run(ctx, started)
}

func (p *sender) stats(started time.Time) pass.Stats {
	return pass.Stats{
		Kind: p.cfg.Kind, DryRun: p.cfg.DryRun, Started: started, Finished: time.Now(),
		FilesExamined: p.examined.Load(), BytesRead: p.read.Load(), BytesWritten: p.written.Load(), BlocksWritten: p.blocks.Load(),
		ReadTime: p.readWall, WriteTime: p.writeWall,
		Specials: int64(len(p.notes.Specials)), HardLinked: int64(len(p.notes.HardLinked)), OutsideLinks: int64(len(p.notes.OutsideLinks)),
	}
}

func (p *sender) run(ctx context.Context, started time.Time) (pass.Stats, *pass.CommitReply, error) {
	cfg := p.cfg
	p.walked = time.Now()
	entries, err := pass.WalkNoting(cfg.Source, cfg.Excluder, &p.notes)
	if err != nil {
		return p.stats(started), nil, err
	}
	if cfg.Note {
		p.warnNotes()
	}
	cfg.IDs.Apply(entries)
	p.entries = entries
	var total int64
	for i := range entries {
		if entries[i].IsRegular() {
			total += entries[i].Stat.Size
		}
	}
	p.obs.Event(pass.Event{Kind: pass.PassStarted, Pass: cfg.Kind, Total: total})
	req := &pass.PassRequest{Kind: cfg.Kind, BlockSize: p.bs, DryRun: cfg.DryRun, Quick: cfg.Quick,
		QuickMargin: cfg.QuickMargin.Nanoseconds(), InFlight: p.dst.InFlight(cfg.Jobs), Quiet: cfg.Quiet, Jobs: cfg.Jobs}
	if w := cfg.WAL; w != nil {
		req.WAL = &pass.WALRequest{Kinds: make([]byte, len(entries)), Blocks: make([][]uint32, len(entries)),
			Since: w.Since.UnixNano(), Margin: w.Margin.Nanoseconds()}
		for i := range entries {
			req.WAL.Kinds[i] = pass.WALWhole
			if !entries[i].IsRegular() {
				continue
			}
			switch whole, blocks := w.Plan.For(entries[i].Rel); {
			case whole, len(blocks) > pass.MaxNamedBlocks:
			case len(blocks) > 0:
				req.WAL.Kinds[i] = pass.WALBlocks
				req.WAL.Blocks[i] = blocks
			default:
				req.WAL.Kinds[i] = pass.WALNone
			}
		}
		p.named = req.WAL.Blocks
	}
	dp, err := p.dst.BeginPass(ctx, req, entries)
	if err != nil {
		return p.stats(started), nil, err
	}
	if cfg.DryRun {
		err = p.dryRun(ctx, dp, entries)
	} else {
		copyStart := time.Now()
		err = p.copyFiles(ctx, dp, entries)
		p.splitWall(time.Since(copyStart))
	}
	if err != nil {
		dp.Abort()
		return p.stats(started), nil, err
	}
	st := p.stats(started)
	c := &pass.CommitRequest{
		Pass: manifest.Pass{Kind: cfg.Kind, Started: started.UnixNano(), Finished: st.Finished.UnixNano(),
			BytesRead: st.BytesRead, BytesWritten: st.BytesWritten, ReadNs: st.ReadTime.Nanoseconds(), WriteNs: st.WriteTime.Nanoseconds()},
	}
	if cfg.Kind == manifest.Cold && cfg.BackupManifest {
		c.BackupManifest, c.Timeline, c.CheckpointLSN = true, cfg.Timeline, cfg.CheckpointLSN
	}
	rep, err := dp.Commit(ctx, c)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%s pass %w", cfg.Kind, pass.ErrInterrupted)
		}
		return p.stats(started), nil, err
	}
	st = p.stats(started)
	st.FilesSkipped, st.FilesChanged, st.FilesDeleted = rep.FilesSkipped, rep.FilesChanged, rep.FilesDeleted
	st.BytesRead += rep.BytesRead
	p.obs.Event(pass.Event{Kind: pass.PassFinished, Pass: cfg.Kind, Stats: &st})
	return st, rep, nil
}

// splitWall divides the wall time of copying files between reading and
// writing in proportion to the workers' busy time in each: the measured
// rates from which the downtime of a cold pass is predicted.
func (p *sender) splitWall(wall time.Duration) {
	r, w := p.readBusy.Load(), p.writeBusy.Load()
	if r+w == 0 {
		return
	}
	p.readWall = time.Duration(float64(wall) * float64(r) / float64(r+w))
	p.writeWall = wall - p.readWall
}

// dryRun counts what the pass would read: the files the destination asks
// for, by their size.
func (p *sender) dryRun(ctx context.Context, dp pass.DestinationPass, entries []pass.Entry) error {
	for {
		bases, err := dp.Next(ctx, maxBatchFiles)
		if err != nil || len(bases) == 0 {
			return err
		}
		for _, b := range bases {
			if b.Index < 0 || b.Index >= len(entries) || entries[b.Index].Rel != b.Rel {
				return fmt.Errorf("the destination asked for %q, which is not in the walk", b.Rel)
			}
			p.examined.Add(1)
			size := entries[b.Index].Stat.Size
			if b.Partial {
				runs := p.partialRuns(size, p.partialBlocks(b, size))
				size = 0
				for _, r := range runs {
					size += r.len
				}
			}
			p.read.Add(size)
			p.obs.Event(pass.Event{Kind: pass.FileChanged, Pass: p.cfg.Kind, Path: b.Rel, Msg: "would read"})
		}
	}
}

func (p *sender) srcPath(rel string) string {
	return filepath.Join(p.cfg.Source, filepath.FromSlash(rel))
}

// fileCopy is the sender's side of one file: read, hashed and compared by
// the workers that handle its chunks.
type fileCopy struct {
	// config
	b         *pass.Basis
	e         pass.Entry // as fstat saw the source just before reading
	src       int        // the source's descriptor; -1 when not open
	path      string     // the source's path, for messages
	n         int        // chunks
	readStart int64
	// runs are the byte ranges to read; nil reads the whole file. blocks,
	// with them, are the blocks they hold, whose hashes hashes holds.
	runs   []byteRun
	blocks []uint32

	// state
	hashes    []manifest.Hash
	crcs      []uint32 // CRC-32C of each chunk, combined when the file completes
	remaining atomic.Int32
	mu        sync.Mutex
	err       error
}

type chunk struct {
	fc  *fileCopy
	off int64
	len int
	pos int // the place of its first block in fc.hashes
}

func (fc *fileCopy) fail(err error) {
	fc.mu.Lock()
	if fc.err == nil {
		fc.err = err
	}
	fc.mu.Unlock()
}

func (fc *fileCopy) failed() error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.err
}

// copyFiles reads every file the destination asks for, in parallel across
// files and across the chunks of large files. The first error cancels the
// pass (its cause is the pass's error).
func (p *sender) copyFiles(ctx context.Context, dp pass.DestinationPass, entries []pass.Entry) error {
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	p.dirs = newSrcDirs(p.cfg.Source)
	defer p.dirs.close()
	work := make(chan task, 2*p.cfg.Jobs)
	var workers errgroup.Group
	for range p.cfg.Jobs {
		workers.Go(func() error {
			// One chunk buffer per worker for the whole pass: a sync.Pool
			// drops its buffers at every garbage collection, and the 4 MiB
			// buffers allocated again raised the peak RSS with the data.
			buf := make([]byte, p.chunk)
			for t := range work {
				if t.small != nil {
					p.copySmall(ctx, fail, dp, t.small, buf)
				} else {
					p.copyChunk(ctx, fail, dp, t.chunk, buf)
				}
				// What the task wrote and ended goes out together.
				if err := dp.Flush(); err != nil {
					fail(err)
				}
			}
			return nil
		})
	}
	p.produce(ctx, fail, dp, entries, work)
	close(work)
	workers.Wait()
	err := context.Cause(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s pass %w", p.cfg.Kind, pass.ErrInterrupted)
	}
	return err
}

// A task is what one worker does at a time: a chunk of a large file, or a
// batch of small files (each at most a chunk), read whole one after the
// other. Batches spread many small files over the workers with one hand-off
// per batch rather than per file.
type task struct {
	chunk chunk
	small []*pass.Basis
}

// Batches of small files hold at most maxBatchFiles files and about a
// chunk of data, so that a batch is a worker's share of work as a chunk is.
const maxBatchFiles = 64

// produce hands the workers the chunks of the large files and batches of the
// small files that the destination asks for, in walk order.
func (p *sender) produce(ctx context.Context, fail context.CancelCauseFunc, dp pass.DestinationPass, entries []pass.Entry, work chan<- task) {
	defer dp.Flush() // the files it ended itself (empty, or cancelled)
	var batch []*pass.Basis
	var batchBytes int64
	send := func(t task) bool {
		select {
		case work <- t:
			return true
		case <-ctx.Done():
			return false
		}
	}
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		t := task{small: batch}
		batch, batchBytes = nil, 0
		if !send(t) {
			// No worker will take them: end them, as a worker that sees
			// the pass cancelled does.
			for _, b := range t.small {
				fc := &fileCopy{b: b, src: -1, err: ctx.Err()}
				p.finishFile(fail, dp, fc)
			}
			return false
		}
		return true
	}
	for {
		// Next may wait for files in flight to be done: the batch goes to
		// the workers first.
		bases, err := dp.Next(ctx, maxBatchFiles)
		if err != nil {
			fail(err)
			return
		}
		if len(bases) == 0 {
			return
		}
		for _, b := range bases {
			if b.Index < 0 || b.Index >= len(entries) || entries[b.Index].Rel != b.Rel || !entries[b.Index].IsRegular() {
				fail(fmt.Errorf("the destination asked for %q, which is not a file of the walk", b.Rel))
				return
			}
			if size := entries[b.Index].Stat.Size; size <= int64(p.chunk) {
				batch = append(batch, b)
				if batchBytes += size; len(batch) >= maxBatchFiles || batchBytes >= int64(p.chunk) {
					if !flush() {
						return
					}
				}
				continue
			}
			if !flush() || !p.produceLarge(ctx, fail, dp, b, send) {
				return
			}
		}
		if !flush() {
			return
		}
	}
}

// produceLarge opens a file larger than a chunk and hands its chunks to the
// workers; false when the pass is over.
func (p *sender) produceLarge(ctx context.Context, fail context.CancelCauseFunc, dp pass.DestinationPass, b *pass.Basis, send func(task) bool) bool {
	fc, err := p.open(b)
	if err != nil {
		fail(err)
		return false
	}
	if fc.n == 0 {
		p.finishFile(fail, dp, fc)
		return true
	}
	for i, c := range p.chunks(fc, p.chunk) {
		if !send(task{chunk: c}) {
			fc.fail(ctx.Err())
			for range fc.n - i {
				if fc.remaining.Add(-1) == 0 {
					p.finishFile(fail, dp, fc)
				}
			}
			return false
		}
	}
	return true
}

// copySmall reads a batch of small files, one after the other: each one
// opened, read whole (one read for a file that still fits a chunk), hashed,
// compared and done.
func (p *sender) copySmall(ctx context.Context, fail context.CancelCauseFunc, dp pass.DestinationPass, bases []*pass.Basis, buf []byte) {
	for _, b := range bases {
		if ctx.Err() != nil {
			p.finishFile(fail, dp, &fileCopy{b: b, src: -1, err: ctx.Err()})
			continue
		}
		fc, err := p.open(b)
		if err != nil {
			fail(err)
			continue
		}
		if fc.n == 0 {
			p.finishFile(fail, dp, fc)
			continue
		}
		if fc.n == 1 && fc.runs == nil {
			p.copyChunk(ctx, fail, dp, chunk{fc: fc, len: int(fc.e.Stat.Size)}, buf)
			continue
		}
		// A file read in part, or one that grew past a chunk since the
		// walk: its chunks here.
		for _, c := range p.chunks(fc, p.chunk) {
			p.copyChunk(ctx, fail, dp, c, buf)
		}
	}
}

// open opens a source file for reading, relative to its directory. A file
// that vanished before it could be opened is done at once (live pass only).
func (p *sender) open(b *pass.Basis) (*fileCopy, error) {
	spath := p.srcPath(b.Rel)
	// Taken before the stat, so that the stat is no older than ReadStart.
	readStart := time.Now()
	src, err := p.dirs.open(b.Rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && p.cfg.Kind == manifest.Live {
			return &fileCopy{b: b, src: -1, err: errVanished}, nil
		}
		return nil, fmt.Errorf("failed to open %s: %w", spath, err)
	}
	fc := &fileCopy{b: b, src: src, path: spath, readStart: readStart.UnixNano()}
	if p.cfg.Kind == manifest.Cold {
		// The server is stopped: the file is as the walk saw it, which
		// the fstat after the read checks. One system call less a file,
		// and the walk's start is the read's for the safe horizon.
		fc.e, fc.readStart = p.entries[b.Index], p.walked.UnixNano()
	} else {
		var st unix.Stat_t
		if err := fstat(src, &st); err != nil {
			unix.Close(src)
			return nil, fmt.Errorf("failed to stat %s: %w", spath, err)
		}
		fc.e = pass.EntryOf(b.Rel, &st)
		p.cfg.IDs.ApplyOne(&fc.e)
	}
	size := fc.e.Stat.Size
	if size > int64(p.chunk) {
		// Read-ahead pays for files read in several chunks; for the
		// others it is a system call per file for nothing.
		unix.Fadvise(src, 0, 0, unix.FADV_SEQUENTIAL)
	}
	faults.AfterOpen(spath)
	if b.Partial {
		// Only the blocks read get hashes: the record stands for the others.
		fc.blocks = p.partialBlocks(b, size)
		fc.hashes = make([]manifest.Hash, len(fc.blocks))
		fc.runs = p.partialRuns(size, fc.blocks)
		fc.n = len(fc.runs)
	} else {
		fc.hashes = make([]manifest.Hash, manifest.NumBlocks(size, p.bs))
		fc.n = int((size + int64(p.chunk) - 1) / int64(p.chunk))
	}
	if p.crc && !b.Partial {
		fc.crcs = make([]uint32, fc.n)
	}
	fc.remaining.Store(int32(fc.n))
	p.examined.Add(1)
	return fc, nil
}

func (p *sender) chunks(fc *fileCopy, size int) []chunk {
	if fc.runs != nil || fc.b.Partial {
		cs := make([]chunk, 0, len(fc.runs))
		for _, r := range fc.runs {
			cs = append(cs, chunk{fc: fc, off: r.off, len: int(r.len), pos: r.pos})
		}
		return cs
	}
	cs := make([]chunk, 0, fc.n)
	for off := int64(0); off < fc.e.Stat.Size; off += int64(size) {
		cs = append(cs, chunk{fc: fc, off: off, len: int(min(int64(size), fc.e.Stat.Size-off)), pos: int(off / int64(p.bs))})
	}
	return cs
}

// copyChunk reads one chunk of the source into the worker's buffer, hashes
// it block by block and writes the runs of blocks whose hashes differ from
// the basis.
func (p *sender) copyChunk(ctx context.Context, fail context.CancelCauseFunc, dp pass.DestinationPass, c chunk, wbuf []byte) {
	fc := c.fc
	defer func() {
		if fc.remaining.Add(-1) == 0 {
			p.finishFile(fail, dp, fc)
		}
	}()
	if fc.failed() != nil {
		return
	}
	if err := ctx.Err(); err != nil {
		fc.fail(err)
		return
	}
	buf := wbuf[:c.len]
	if err := faults.BeforeRead(fc.path); err != nil {
		fc.fail(fmt.Errorf("failed to read %s: %w", fc.path, err))
		return
	}
	readStart := time.Now()
	defer func() { p.readBusy.Add(int64(time.Since(readStart))) }()
	n, err := preadFull(fc.src, buf, c.off)
	p.read.Add(int64(n))
	if p.cfg.Kind == manifest.Cold {
		faults.SourceRead(p.srcPath(fc.e.Rel), c.off, int64(n))
	}
	if n < c.len {
		switch {
		case errors.Is(err, io.EOF) && p.cfg.Kind == manifest.Live:
			fc.fail(errVanished)
		case errors.Is(err, io.EOF):
			fc.fail(fmt.Errorf("%s shrank while the cold pass read it: is the server really stopped?", p.srcPath(fc.e.Rel)))
		default:
			fc.fail(fmt.Errorf("failed to read %s: %w", p.srcPath(fc.e.Rel), err))
		}
		return
	}
	if p.crc && fc.crcs != nil {
		fc.crcs[c.off/int64(p.chunk)] = crc32c.Checksum(buf)
	}
	first := int(c.off / int64(p.bs))
	hashes := fc.hashes[c.pos : c.pos+manifest.NumBlocks(int64(c.len), p.bs)]
	pass.HashBlocks(hashes, buf, p.bs)
	var written int64
	run := -1 // start of a run of changed blocks
	flush := func(end int) error {
		if run < 0 {
			return nil
		}
		t := time.Now()
		err := dp.Write(fc.b.ID, c.off+int64(run), buf[run:end])
		p.writeBusy.Add(int64(time.Since(t)))
		readStart = readStart.Add(time.Since(t)) // writing is not reading
		if err != nil {
			return err
		}
		written += int64(end - run)
		p.blocks.Add(int64(manifest.NumBlocks(int64(end-run), p.bs)))
		run = -1
		return nil
	}
	for k, h := range hashes {
		b := k * p.bs
		if old, ok := fc.basis(first + k); ok && old == h {
			if err := flush(b); err != nil {
				fc.fail(err)
				return
			}
		} else if run < 0 {
			run = b
		}
	}
	if err := flush(c.len); err != nil {
		fc.fail(err)
		return
	}
	p.written.Add(written)
	p.obs.Progress(int64(n), written)
}

// finishFile ends a file once its chunks are done: the source's stat after
// the read, the CRC-32C, and the file's end to the destination.
func (p *sender) finishFile(fail context.CancelCauseFunc, dp pass.DestinationPass, fc *fileCopy) {
	if fc.src >= 0 {
		defer unix.Close(fc.src)
	}
	res, err := p.result(fc)
	if errors.Is(err, errVanished) {
		res, err = &pass.FileResult{ID: fc.b.ID, Vanished: true}, nil
	}
	if err == nil {
		t := time.Now()
		err = dp.Done(res)
		p.writeBusy.Add(int64(time.Since(t)))
	}
	if err != nil {
		fail(err)
	}
}

// basis returns the hash the basis gives block i, if any.
func (fc *fileCopy) basis(i int) (manifest.Hash, bool) {
	b := fc.b
	if !b.Partial {
		if i < len(b.Hashes) {
			return b.Hashes[i], true
		}
		return manifest.Hash{}, false
	}
	if k, ok := slices.BinarySearch(b.Blocks, uint32(i)); ok && k < len(b.Hashes) {
		return b.Hashes[k], true
	}
	return manifest.Hash{}, false
}

func (p *sender) result(fc *fileCopy) (*pass.FileResult, error) {
	if err := fc.failed(); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := fstat(fc.src, &st); err != nil {
		return nil, fmt.Errorf("failed to stat %s: %w", p.srcPath(fc.e.Rel), err)
	}
	res := &pass.FileResult{ID: fc.b.ID, Entry: fc.e, ReadStart: fc.readStart, Hashes: fc.hashes, Blocks: fc.blocks}
	if after := pass.StatOfUnix(&st); after != fc.e.Stat {
		if p.cfg.Kind == manifest.Cold {
			return nil, fmt.Errorf("%s changed while the cold pass read it: is the server really stopped?", p.srcPath(fc.e.Rel))
		}
		res.Flags |= manifest.FlagChangedWhileCopied
	}
	size := fc.e.Stat.Size
	if p.crc && fc.crcs != nil {
		for i, crc := range fc.crcs {
			res.CRC32C = crc32c.Combine(res.CRC32C, crc, min(int64(p.chunk), size-int64(i)*int64(p.chunk)))
		}
	} else {
		res.Flags |= manifest.FlagNoCRC32C
	}
	return res, nil
}

// warnNotes tells the user what the walk found that the copy does not
// carry as it is.
func (p *sender) warnNotes() {
	warn := func(format string, args ...any) {
		p.obs.Event(pass.Event{Kind: pass.Warning, Pass: p.cfg.Kind, Msg: fmt.Sprintf(format, args...)})
	}
	some := func(list []string) string {
		const max = 5
		if len(list) <= max {
			return strings.Join(list, ", ")
		}
		return strings.Join(list[:max], ", ") + fmt.Sprintf(" and %d more", len(list)-max)
	}
	if n := p.notes.Specials; len(n) > 0 {
		warn("left out of the copy: %d socket(s), FIFO(s) or device(s) in SRC, which have no place in a data directory: %s", len(n), some(n))
	}
	if n := p.notes.HardLinked; len(n) > 0 {
		warn("%d file(s) of SRC have more than one hard link (pg_upgrade --link leaves them shared with the old cluster): the copy holds each as a file of its own: %s", len(n), some(n))
	}
	for _, l := range p.notes.OutsideLinks {
		warn("%s is a symlink that leads outside the data directory: the copy links to the same target, which a started copy would share with the source; move what it points to into the cluster, or give the copy its own target after the cutover", l)
	}
}

// byteRun is a range of a file to read, whose first block is the pos-th
// of the blocks read.
type byteRun struct {
	off, len int64
	pos      int
}

// partialBlocks returns the blocks to read of a file of size bytes whose
// basis is Partial (pass.PartialBlocks).
func (p *sender) partialBlocks(b *pass.Basis, size int64) []uint32 {
	var named []uint32
	if b.Index < len(p.named) {
		named = p.named[b.Index]
	}
	return pass.PartialBlocks(named, b.Size, size, p.bs)
}

// partialRuns returns blocks (sorted) of a file of size bytes as byte
// ranges of at most a chunk each.
func (p *sender) partialRuns(size int64, blocks []uint32) []byteRun {
	perChunk := int64(p.chunk / p.bs)
	var runs []byteRun
	for i := 0; i < len(blocks); {
		j := i + 1
		for j < len(blocks) && blocks[j] == blocks[j-1]+1 && int64(j-i) < perChunk {
			j++
		}
		off := int64(blocks[i]) * int64(p.bs)
		end := min(int64(blocks[j-1]+1)*int64(p.bs), size)
		runs = append(runs, byteRun{off: off, len: end - off, pos: i})
		i = j
	}
	return runs
}
