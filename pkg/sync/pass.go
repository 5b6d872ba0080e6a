package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// errVanished marks a file the live pass could not read whole because the
// running server removed, shortened or replaced it: it gets no record, and
// the next pass compares it again.
var errVanished = errors.New("changed under the live pass")

// pass is the sender's side of one live or cold pass: it walks SRC, reads
// the files the destination asks for, hashes their blocks and writes the
// blocks whose hashes differ from the copy's.
type pass struct {
	// config
	kind     manifest.PassKind
	opts     *Options
	src      *source
	dst      dest
	bs       int
	chunk    int // bytes read at a time: a multiple of bs
	quick    bool
	crc      bool // compute each file's CRC-32C (see newPass)
	ids      idMap
	inFlight int
	quiet    bool // the destination reports no events
	remote   bool // the destination is a receiver that checks HashesSum
	obs      Observer

	// state
	read, written, blocks atomic.Int64
	examined              atomic.Int64
	readBusy, writeBusy   atomic.Int64 // ns, summed over workers
	readWall, writeWall   time.Duration
	errOnce               stdsync.Once
	err                   error
	cancel                context.CancelFunc
}

func newPass(kind manifest.PassKind, opts *Options, src *source, dst dest, h *manifest.Header, ids idMap, inFlight int) (*pass, error) {
	bs := opts.BlockSize
	if h != nil {
		switch {
		case bs == 0:
			bs = int(h.BlockSize)
		case bs != int(h.BlockSize):
			return nil, inputErr(fmt.Sprintf("use --block-size %d (or no --block-size) with this copy, or start a new copy", h.BlockSize),
				"DEST was copied with block size %d, not %d", h.BlockSize, bs)
		}
	}
	if bs == 0 {
		bs = DefaultBlockSize
	}
	p := &pass{kind: kind, opts: opts, src: src, dst: dst, bs: bs, chunk: max(chunkSize, bs), ids: ids, inFlight: inFlight,
		obs: opts.Observer, quick: kind == manifest.Cold && opts.ColdPass == ColdQuick}
	_, p.remote = dst.(*remoteDest)
	// The CRC-32C of a file costs more CPU than reading and hashing it
	// (about 13 GB/s against 22 GB/s for xxh3-128 here), and only
	// PostgreSQL's backup_manifest needs it. The cold pass, which is
	// downtime, computes it only when it writes one; live passes always do,
	// so that a quick cold pass can list the files it trusts by their stat.
	// A record without it is flagged manifest.FlagNoCRC32C.
	p.crc = kind == manifest.Live || opts.BackupManifest
	return p, nil
}

func (p *pass) stats(started time.Time) PassStats {
	return PassStats{
		Kind: p.kind, DryRun: p.opts.DryRun, Started: started, Finished: time.Now(),
		FilesExamined: p.examined.Load(), BytesRead: p.read.Load(), BytesWritten: p.written.Load(), BlocksWritten: p.blocks.Load(),
		ReadTime: p.readWall, WriteTime: p.writeWall,
	}
}

// run runs the pass. The copy stays unsealed unless a cold pass completes.
func (p *pass) run(ctx context.Context) (PassStats, *commitReply, error) {
	started := time.Now()
	entries, err := walk(p.src.dir, p.opts.excluder())
	if err != nil {
		return p.stats(started), nil, err
	}
	p.ids.apply(entries)
	var total int64
	for i := range entries {
		if entries[i].isRegular() {
			total += entries[i].stat.Size
		}
	}
	p.obs.Event(Event{Kind: PassStarted, Pass: p.kind, Total: total})
	req := &passRequest{Kind: p.kind, BlockSize: p.bs, DryRun: p.opts.DryRun, Quick: p.quick,
		QuickMargin: p.opts.QuickMargin.Nanoseconds(), InFlight: p.inFlight, Quiet: p.quiet, Jobs: p.opts.Jobs}
	dp, err := p.dst.beginPass(ctx, req, entries)
	if err != nil {
		return p.stats(started), nil, err
	}
	if p.opts.DryRun {
		err = p.dryRun(ctx, dp, entries)
	} else {
		copyStart := time.Now()
		err = p.copyFiles(ctx, dp, entries)
		p.splitWall(time.Since(copyStart))
	}
	if err != nil {
		dp.abort()
		return p.stats(started), nil, err
	}
	st := p.stats(started)
	c := &commitRequest{
		Pass: manifest.Pass{Kind: p.kind, Started: started.UnixNano(), Finished: st.Finished.UnixNano(),
			BytesRead: st.BytesRead, BytesWritten: st.BytesWritten, ReadNs: st.ReadTime.Nanoseconds(), WriteNs: st.WriteTime.Nanoseconds()},
	}
	if p.kind == manifest.Cold && p.opts.BackupManifest {
		c.BackupManifest = true
		c.Timeline = p.src.control.Fields["Latest checkpoint's TimeLineID"]
		c.CheckpointLSN = p.src.control.Fields["Latest checkpoint location"]
	}
	rep, err := dp.commit(ctx, c)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%s pass %w", p.kind, ErrInterrupted)
		}
		return p.stats(started), nil, err
	}
	st = p.stats(started)
	st.FilesSkipped, st.FilesChanged, st.FilesDeleted = rep.FilesSkipped, rep.FilesChanged, rep.FilesDeleted
	st.BytesRead += rep.BytesRead
	p.obs.Event(Event{Kind: PassFinished, Pass: p.kind, Stats: &st})
	return st, rep, nil
}

// splitWall divides the wall time of copying files between reading and
// writing in proportion to the workers' busy time in each: the measured
// rates from which the downtime of a cold pass is predicted.
func (p *pass) splitWall(wall time.Duration) {
	r, w := p.readBusy.Load(), p.writeBusy.Load()
	if r+w == 0 {
		return
	}
	p.readWall = time.Duration(float64(wall) * float64(r) / float64(r+w))
	p.writeWall = wall - p.readWall
}

// dryRun counts what the pass would read: the files the destination asks
// for, by their size.
func (p *pass) dryRun(ctx context.Context, dp destPass, entries []entry) error {
	for {
		b, err := dp.next(ctx)
		if err != nil || b == nil {
			return err
		}
		if b.Index < 0 || b.Index >= len(entries) || entries[b.Index].rel != b.Rel {
			return fmt.Errorf("the destination asked for %q, which is not in the walk", b.Rel)
		}
		p.examined.Add(1)
		p.read.Add(entries[b.Index].stat.Size)
		p.obs.Event(Event{Kind: FileChanged, Pass: p.kind, Path: b.Rel, Msg: "would read"})
	}
}

func (p *pass) srcPath(rel string) string {
	return filepath.Join(p.src.dir, filepath.FromSlash(rel))
}

// fail records the pass's first error and stops it.
func (p *pass) fail(err error) {
	p.errOnce.Do(func() {
		p.err = err
		p.cancel()
	})
}

// fileCopy is the sender's side of one file: read, hashed and compared by
// the workers that handle its chunks.
type fileCopy struct {
	// config
	b         *basis
	e         entry // as fstat saw the source just before reading
	src       *os.File
	n         int // chunks
	readStart int64

	// state
	hashes    []manifest.Hash
	crcs      []uint32 // CRC-32C of each chunk, combined when the file completes
	remaining atomic.Int32
	mu        stdsync.Mutex
	err       error
}

type chunk struct {
	fc  *fileCopy
	off int64
	len int
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
// files and across the chunks of large files.
func (p *pass) copyFiles(ctx context.Context, dp destPass, entries []entry) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.cancel = cancel
	jobs := make(chan chunk, 2*p.opts.Jobs)
	var workers stdsync.WaitGroup
	for range p.opts.Jobs {
		workers.Add(1)
		go func() {
			defer workers.Done()
			// One chunk buffer per worker for the whole pass: a sync.Pool
			// drops its buffers at every garbage collection, and the 4 MiB
			// buffers allocated again raised the peak RSS with the data.
			buf := make([]byte, p.chunk)
			for c := range jobs {
				p.copyChunk(ctx, dp, c, buf)
			}
		}()
	}
	// The producer: the files the destination asks for, in walk order.
	func() {
		defer close(jobs)
		for {
			b, err := dp.next(ctx)
			if err != nil {
				p.fail(err)
				return
			}
			if b == nil {
				return
			}
			if b.Index < 0 || b.Index >= len(entries) || entries[b.Index].rel != b.Rel || !entries[b.Index].isRegular() {
				p.fail(fmt.Errorf("the destination asked for %q, which is not a file of the walk", b.Rel))
				return
			}
			fc, err := p.open(b)
			if err != nil {
				p.fail(err)
				return
			}
			if fc.n == 0 {
				p.finishFile(dp, fc)
				continue
			}
			for i, c := range fc.chunks(p.chunk) {
				select {
				case jobs <- c:
				case <-ctx.Done():
					fc.fail(ctx.Err())
					for range fc.n - i {
						if fc.remaining.Add(-1) == 0 {
							p.finishFile(dp, fc)
						}
					}
					return
				}
			}
		}
	}()
	workers.Wait()
	if p.err == nil && ctx.Err() != nil {
		p.err = ctx.Err()
	}
	if p.err != nil && errors.Is(p.err, context.Canceled) {
		return fmt.Errorf("%s pass %w", p.kind, ErrInterrupted)
	}
	return p.err
}

// open opens a source file for reading. A file that vanished before it
// could be opened is done at once (live pass only).
func (p *pass) open(b *basis) (*fileCopy, error) {
	spath := p.srcPath(b.Rel)
	// Taken before the stat, so that the stat is no older than ReadStart.
	readStart := time.Now()
	src, err := os.Open(spath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && p.kind == manifest.Live {
			return &fileCopy{b: b, err: errVanished}, nil
		}
		return nil, fmt.Errorf("failed to open %s: %w", spath, err)
	}
	sfi, err := src.Stat()
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("failed to stat %s: %w", spath, err)
	}
	unix.Fadvise(int(src.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	if hook := Faults.AfterOpen; hook != nil {
		hook(spath)
	}
	fc := &fileCopy{b: b, e: newEntry(b.Rel, sfi), src: src, readStart: readStart.UnixNano()}
	p.ids.applyOne(&fc.e)
	size := fc.e.stat.Size
	fc.hashes = make([]manifest.Hash, manifest.NumBlocks(size, p.bs))
	fc.n = int((size + int64(p.chunk) - 1) / int64(p.chunk))
	fc.crcs = make([]uint32, fc.n)
	fc.remaining.Store(int32(fc.n))
	p.examined.Add(1)
	return fc, nil
}

func (fc *fileCopy) chunks(size int) []chunk {
	cs := make([]chunk, 0, fc.n)
	for off := int64(0); off < fc.e.stat.Size; off += int64(size) {
		cs = append(cs, chunk{fc: fc, off: off, len: int(min(int64(size), fc.e.stat.Size-off))})
	}
	return cs
}

// copyChunk reads one chunk of the source into the worker's buffer, hashes
// it block by block and writes the runs of blocks whose hashes differ from
// the basis.
func (p *pass) copyChunk(ctx context.Context, dp destPass, c chunk, wbuf []byte) {
	fc := c.fc
	defer func() {
		if fc.remaining.Add(-1) == 0 {
			p.finishFile(dp, fc)
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
	if hook := Faults.BeforeRead; hook != nil {
		if err := hook(p.srcPath(fc.e.rel)); err != nil {
			fc.fail(fmt.Errorf("failed to read %s: %w", p.srcPath(fc.e.rel), err))
			return
		}
	}
	readStart := time.Now()
	defer func() { p.readBusy.Add(int64(time.Since(readStart))) }()
	n, err := fc.src.ReadAt(buf, c.off)
	p.read.Add(int64(n))
	if n < c.len {
		if errors.Is(err, io.EOF) && p.kind == manifest.Live {
			fc.fail(errVanished)
		} else if errors.Is(err, io.EOF) {
			fc.fail(fmt.Errorf("%s shrank while the cold pass read it: is the server really stopped?", p.srcPath(fc.e.rel)))
		} else {
			fc.fail(fmt.Errorf("failed to read %s: %w", p.srcPath(fc.e.rel), err))
		}
		return
	}
	if p.crc {
		fc.crcs[c.off/int64(p.chunk)] = crc32c.Checksum(buf)
	}
	var written int64
	run := -1 // start of a run of changed blocks
	flush := func(end int) error {
		if run < 0 {
			return nil
		}
		t := time.Now()
		err := dp.write(fc.b.ID, c.off+int64(run), buf[run:end])
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
	old := fc.b.Hashes
	first := int(c.off / int64(p.bs))
	for b, i := 0, first; b < c.len; b, i = b+p.bs, i+1 {
		end := min(b+p.bs, c.len)
		h := manifest.HashBlock(buf[b:end])
		fc.hashes[i] = h
		if i < len(old) && old[i] == h {
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
func (p *pass) finishFile(dp destPass, fc *fileCopy) {
	if fc.src != nil {
		defer fc.src.Close()
	}
	res, err := p.result(fc)
	if errors.Is(err, errVanished) {
		res, err = &fileResult{ID: fc.b.ID, Vanished: true}, nil
	}
	if err == nil {
		t := time.Now()
		err = dp.done(res)
		p.writeBusy.Add(int64(time.Since(t)))
	}
	if err != nil {
		p.fail(err)
	}
}

func (p *pass) result(fc *fileCopy) (*fileResult, error) {
	if err := fc.failed(); err != nil {
		return nil, err
	}
	sfi, err := fc.src.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat %s: %w", p.srcPath(fc.e.rel), err)
	}
	res := &fileResult{ID: fc.b.ID, Entry: fc.e, ReadStart: fc.readStart, Hashes: fc.hashes}
	if after := statOf(sfi); after != fc.e.stat {
		if p.kind == manifest.Cold {
			return nil, fmt.Errorf("%s changed while the cold pass read it: is the server really stopped?", p.srcPath(fc.e.rel))
		}
		res.Flags |= manifest.FlagChangedWhileCopied
	}
	size := fc.e.stat.Size
	if p.crc {
		for i, crc := range fc.crcs {
			res.CRC32C = crc32c.Combine(res.CRC32C, crc, min(int64(p.chunk), size-int64(i)*int64(p.chunk)))
		}
	} else {
		res.Flags |= manifest.FlagNoCRC32C
	}
	if p.remote {
		res.HashesSum = hashesSum(fc.hashes)
	}
	return res, nil
}

// hashesSum is the xxh3-64 of a file's block hashes, by which a remote
// receiver checks the hashes it rebuilt.
func hashesSum(hs []manifest.Hash) uint64 {
	h := xxh3.New()
	for i := range hs {
		h.Write(hs[i][:])
	}
	return h.Sum64()
}

// idMap gives the copy the owner of the source's name on the
// destination's host: the source owner's uid and gid become the
// destination's, every other id is kept as it is.
type idMap struct {
	fromUID, toUID uint32
	fromGID, toGID uint32
}

func newIDMap(src, dst ownerIDs) idMap {
	return idMap{fromUID: src.UID, toUID: dst.UID, fromGID: src.GID, toGID: dst.GID}
}

func (m idMap) applyOne(e *entry) {
	if e.uid == m.fromUID {
		e.uid = m.toUID
	}
	if e.gid == m.fromGID {
		e.gid = m.toGID
	}
}

func (m idMap) apply(es []entry) {
	if m.fromUID == m.toUID && m.fromGID == m.toGID {
		return
	}
	for i := range es {
		m.applyOne(&es[i])
	}
}
