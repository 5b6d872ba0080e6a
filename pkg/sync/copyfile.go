package sync

import (
	"bytes"
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

	"golang.org/x/sys/unix"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// errVanished marks a file the live pass could not copy whole because the
// running server removed, shortened or replaced it: it gets no record, and
// the next pass compares it again.
var errVanished = errors.New("changed under the live pass")

// fileCopy is the copy of one regular file, shared by the workers that
// handle its chunks.
type fileCopy struct {
	// config
	e        entry // as fstat saw the source just before reading
	old      *manifest.File
	trust    bool // old's hashes describe the copy as it is
	readDest bool // no trusted record: compare with the copy's contents
	dstFI    fs.FileInfo
	src, dst *os.File
	n        int // chunks

	// state
	rec       manifest.File
	crcs      []uint32 // CRC-32C of each chunk, combined when the file completes
	remaining atomic.Int32
	wrote     atomic.Bool
	mu        stdsync.Mutex
	err       error
	done      chan struct{}
}

type chunk struct {
	fc  *fileCopy
	off int64
	len int
}

func (fc *fileCopy) chunks() []chunk {
	cs := make([]chunk, 0, fc.n)
	size := fc.e.stat.Size
	for off := int64(0); off < size; off += chunkSize {
		cs = append(cs, chunk{fc: fc, off: off, len: int(min(chunkSize, size-off))})
	}
	return cs
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

var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// trusted reports whether rec still describes the copy's contents: the
// copy's stat is what it was after pgtwopass last wrote it. pg_control is
// never trusted: it moves at every seal, and is one block.
func (p *pass) trusted(rec *manifest.File, fi fs.FileInfo) bool {
	return rec != nil && fi != nil && fi.Mode().IsRegular() && rec.Path != controlFile && statOf(fi) == rec.Dest
}

// sameSource reports whether the source's stat is what it was when rec's
// contents were read: size, mtime, ctime and inode.
func sameSource(rec *manifest.File, e *entry) bool {
	return rec.Flags&manifest.FlagChangedWhileCopied == 0 && rec.Source == e.stat
}

// plan decides what to do with one file and opens it. It returns nil for a
// file that vanished before it could be opened (live pass only).
func (p *pass) plan(e *entry, rec *manifest.File) (*fileCopy, error) {
	dpath := p.dstPath(e.rel)
	dfi, err := os.Lstat(dpath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("failed to stat %s: %w", dpath, err)
		}
		dfi = nil
	}
	trust := p.trusted(rec, dfi)
	if trust && sameSource(rec, e) && (p.kind == manifest.Live || p.quick && p.pastHorizon(rec)) {
		p.skipped.Add(1)
		return p.keep(e, rec, dpath, dfi)
	}

	spath := p.srcPath(e.rel)
	// Taken before the stat, so that the stat is no older than ReadStart.
	readStart := time.Now()
	src, err := os.Open(spath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && p.kind == manifest.Live {
			return nil, nil
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
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if dfi != nil {
		flags = os.O_WRONLY
		if !trust {
			flags = os.O_RDWR
		}
	}
	dst, err := os.OpenFile(dpath, flags, 0o600)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("failed to open %s for writing: %w", dpath, err)
	}
	fc := &fileCopy{
		e: newEntry(e.rel, sfi), trust: trust, readDest: !trust && dfi != nil, dstFI: dfi,
		src: src, dst: dst, done: make(chan struct{}),
	}
	if trust {
		fc.old = rec
	}
	fc.rec = manifest.File{Path: e.rel, Source: fc.e.stat, ReadStart: readStart.UnixNano()}
	if nb := manifest.NumBlocks(fc.e.stat.Size, p.bs); nb > 0 {
		fc.rec.Hashes = make([]manifest.Hash, nb)
	}
	fc.n = int((fc.e.stat.Size + chunkSize - 1) / chunkSize)
	fc.crcs = make([]uint32, fc.n)
	fc.remaining.Store(int32(fc.n))
	p.examined.Add(1)
	return fc, nil
}

// keep carries the record of a file the live pass trusts by its stat,
// fixing the copy's owner and mode if someone changed them.
func (p *pass) keep(e *entry, rec *manifest.File, dpath string, dfi fs.FileInfo) (*fileCopy, error) {
	fc := &fileCopy{rec: *rec, done: closedDone}
	changed, err := p.applyMeta(dpath, e, dfi)
	if err != nil || !changed {
		return fc, err
	}
	if err := syncPath(dpath); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(dpath)
	if err != nil {
		return nil, err
	}
	fc.rec.Dest = statOf(fi)
	p.changed.Add(1)
	return fc, nil
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("failed to fsync %s: %w", path, err)
	}
	return nil
}

// copyChunk reads one chunk of the source, hashes it block by block and
// writes the blocks whose hashes differ from the manifest's (or, without a
// trusted record, whose bytes differ from the copy's).
func (p *pass) copyChunk(ctx context.Context, c chunk) {
	fc := c.fc
	defer func() {
		if fc.remaining.Add(-1) == 0 {
			p.finishFile(fc)
		}
	}()
	if fc.failed() != nil {
		return
	}
	if err := ctx.Err(); err != nil {
		fc.fail(err)
		return
	}
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := (*bp)[:c.len]
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
	fc.crcs[c.off/chunkSize] = crc32c.Checksum(buf)
	var dbuf []byte
	dn := 0
	if fc.readDest {
		dp := p.bufs.Get().(*[]byte)
		defer p.bufs.Put(dp)
		dbuf = (*dp)[:c.len]
		dn, err = fc.dst.ReadAt(dbuf, c.off)
		if err != nil && !errors.Is(err, io.EOF) {
			fc.fail(fmt.Errorf("failed to read %s: %w", p.dstPath(fc.e.rel), err))
			return
		}
		p.read.Add(int64(dn))
	}
	var written int64
	run := -1 // start of a run of changed blocks
	flush := func(end int) error {
		if run < 0 {
			return nil
		}
		if hook := Faults.BeforeWrite; hook != nil {
			if err := hook(p.dstPath(fc.e.rel), int64(manifest.NumBlocks(int64(end-run), p.bs))); err != nil {
				return fmt.Errorf("failed to write %s: %w", p.dstPath(fc.e.rel), err)
			}
		}
		t := time.Now()
		_, err := fc.dst.WriteAt(buf[run:end], c.off+int64(run))
		p.writeBusy.Add(int64(time.Since(t)))
		readStart = readStart.Add(time.Since(t)) // writing is not reading
		if err != nil {
			return fmt.Errorf("failed to write %s: %w", p.dstPath(fc.e.rel), err)
		}
		written += int64(end - run)
		p.blocks.Add(int64(manifest.NumBlocks(int64(end-run), p.bs)))
		run = -1
		return nil
	}
	first := int(c.off / int64(p.bs))
	for b, i := 0, first; b < c.len; b, i = b+p.bs, i+1 {
		end := min(b+p.bs, c.len)
		h := manifest.HashBlock(buf[b:end])
		fc.rec.Hashes[i] = h
		var same bool
		switch {
		case fc.trust:
			same = i < len(fc.old.Hashes) && fc.old.Hashes[i] == h
		case fc.readDest:
			same = end <= dn && bytes.Equal(buf[b:end], dbuf[b:end])
		}
		if same {
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
	if written > 0 {
		fc.wrote.Store(true)
		p.written.Add(written)
	}
	p.obs.Progress(int64(n+dn), written)
}

// finishFile completes a file once its chunks are done: size, metadata,
// fsync, and the copy's stat for the record.
func (p *pass) finishFile(fc *fileCopy) {
	defer close(fc.done)
	defer fc.src.Close()
	defer fc.dst.Close()
	if fc.failed() != nil {
		return
	}
	if err := p.completeFile(fc); err != nil {
		fc.fail(err)
	}
}

func (p *pass) completeFile(fc *fileCopy) error {
	dpath := p.dstPath(fc.e.rel)
	size := fc.e.stat.Size
	changed := fc.wrote.Load() || fc.dstFI == nil
	if fc.dstFI == nil || fc.dstFI.Size() != size {
		if err := fc.dst.Truncate(size); err != nil {
			return fmt.Errorf("failed to set the size of %s: %w", dpath, err)
		}
		changed = true
	}
	sfi, err := fc.src.Stat()
	if err != nil {
		return fmt.Errorf("failed to stat %s: %w", p.srcPath(fc.e.rel), err)
	}
	if after := statOf(sfi); after != fc.e.stat {
		if p.kind == manifest.Cold {
			return fmt.Errorf("%s changed while the cold pass read it: is the server really stopped?", p.srcPath(fc.e.rel))
		}
		fc.rec.Flags |= manifest.FlagChangedWhileCopied
	}
	for i, crc := range fc.crcs {
		fc.rec.CRC32C = crc32c.Combine(fc.rec.CRC32C, crc, min(chunkSize, size-int64(i)*chunkSize))
	}
	metaChanged, err := p.applyMeta(dpath, &fc.e, nil)
	if err != nil {
		return err
	}
	if changed || metaChanged {
		t := time.Now()
		err := fc.dst.Sync()
		p.writeBusy.Add(int64(time.Since(t)))
		if err != nil {
			return fmt.Errorf("failed to fsync %s: %w", dpath, err)
		}
		p.changed.Add(1)
		p.obs.Event(Event{Kind: FileChanged, Pass: p.kind, Path: fc.e.rel})
	}
	dfi, err := fc.dst.Stat()
	if err != nil {
		return fmt.Errorf("failed to stat %s: %w", dpath, err)
	}
	fc.rec.Dest = statOf(dfi)
	if hook := Faults.AfterFile; hook != nil {
		hook(fc.e.rel)
	}
	return nil
}

// unseal moves an installed pg_control of the copy aside before anything
// else is written, so that the copy cannot be started until a cold pass
// completes.
func (p *pass) unseal() error {
	installed := filepath.Join(p.dst.dir, filepath.FromSlash(controlFile))
	if _, err := os.Lstat(installed); err != nil {
		return nil
	}
	held := p.dstPath(controlFile)
	if err := os.Rename(installed, held); err != nil {
		return fmt.Errorf("failed to unseal the copy: %w", err)
	}
	if err := manifest.SyncDir(filepath.Dir(installed)); err != nil {
		return err
	}
	if err := manifest.SyncDir(filepath.Dir(held)); err != nil {
		return err
	}
	p.obs.Event(Event{Kind: Step, Pass: p.kind, Msg: "unsealed the copy: its pg_control is held in " + manifest.DirName + " until a cold pass completes"})
	return nil
}

// seal installs global/pg_control, the last file, once everything else and
// the manifest are durable.
func (p *pass) seal(entries []entry) error {
	held := p.dstPath(controlFile)
	installed := filepath.Join(p.dst.dir, filepath.FromSlash(controlFile))
	if err := os.Rename(held, installed); err != nil {
		return fmt.Errorf("failed to seal the copy: %w", err)
	}
	if err := manifest.SyncDir(filepath.Dir(held)); err != nil {
		return err
	}
	// The rename moved global's mtime: give it the source's again.
	for i := range entries {
		if e := &entries[i]; e.rel == filepath.Dir(controlFile) {
			if err := p.setMeta(filepath.Dir(installed), e, nil); err != nil {
				return err
			}
		}
	}
	if err := manifest.SyncDir(filepath.Dir(installed)); err != nil {
		return err
	}
	p.obs.Event(Event{Kind: Step, Pass: p.kind, Msg: "sealed the copy: global/pg_control installed"})
	return nil
}

type unixTimespec = unix.Timespec

func nsec(ns int64) unixTimespec { return unix.NsecToTimespec(ns) }

func lutimes(path string, ts []unixTimespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}
