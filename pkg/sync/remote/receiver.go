package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	sync "sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/pgtwopass/pgtwopass/internal/wire"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/destination"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// ReceiveOptions configures the receiving end of a copy to another host.
type ReceiveOptions struct {
	// Dir is the copy's directory on this host (the PATH of host:PATH).
	Dir string
	// Tablespaces maps the OID of each tablespace to the directory of its
	// copy on this host, and WALDir is the directory of the copy's WAL
	// (--waldir). The receiver writes nowhere else.
	Tablespaces map[string]string
	WALDir      string
	// Program names this pgtwopass in the hello (e.g. "pgtwopass 0.3.0").
	Program string
}

// maxFileSize bounds the files a sender may write (PostgreSQL's relation
// segments are 1 GiB), so that a broken or hostile sender cannot make the
// receiver track the hashes of a file of any size.
var maxFileSize int64 = 1 << 40

// maxEntries bounds the entries a sender may send for one pass, so that a
// broken or hostile sender cannot exhaust the receiver's memory.
const maxEntries = 20_000_000

// Receive serves one session of the wire protocol on r and w: a sender
// (pgtwopass prepare, finish, sync, verify or status, on another host)
// drives a copy in o.Dir. It returns when the sender says goodbye or the
// stream ends; a pass that was not committed leaves the copy as an
// interrupted pass would (unsealed, the old manifest in place).
func Receive(ctx context.Context, r io.Reader, w io.Writer, o ReceiveOptions) error {
	s := &receiver{conn: wire.NewConn(r, w), o: o}
	s.obs = receiverObserver{s}
	err := s.serve(ctx)
	if s.pass != nil {
		s.pass.abort()
	}
	if s.d != nil {
		s.d.Close()
	}
	return err
}

type receiver struct {
	// config
	conn *wire.Conn
	o    ReceiveOptions
	obs  pass.Observer

	// state
	d         *destination.Local
	entries   []pass.Entry
	walKinds  []byte
	walBlocks [][]uint32
	pass      *receiverPass
	hashReq   []string
}

// receiverObserver sends the destination's events to the sender.
type receiverObserver struct{ s *receiver }

func (o receiverObserver) Event(e pass.Event)    { o.s.conn.Send(toWireEvent(&e)) }
func (o receiverObserver) Progress(int64, int64) {}

func (s *receiver) sendError(err error) error { return s.conn.Send(toWireError(err)) }

func (s *receiver) serve(ctx context.Context) error {
	if err := s.hello(); err != nil {
		return err
	}
	d, err := destination.New(s.o.Dir, destination.Layout{Tablespaces: s.o.Tablespaces, WALDir: s.o.WALDir}, s.obs)
	if err != nil {
		return s.sendError(err)
	}
	s.d = d
	for {
		f, err := s.conn.Read()
		if err == io.EOF {
			if s.pass != nil {
				return errors.New("the sender went away during a pass: the pass was not committed")
			}
			return nil
		}
		if err != nil {
			err = fmt.Errorf("failed to read from the sender: %w", err)
			s.sendError(err)
			return err
		}
		if f.Type == wire.TBye {
			return nil
		}
		if err := s.handle(ctx, f); err != nil {
			return err
		}
	}
}

func (s *receiver) hello() error {
	f, err := s.conn.Read()
	if err != nil {
		return fmt.Errorf("failed to read the sender's hello: %w", err)
	}
	d := wire.NewDecoder(f.Payload)
	h := wire.DecodeHello(d)
	if f.Type != wire.THello || d.Err() != nil || h.Magic != wire.Magic {
		return fmt.Errorf("the sender did not say hello: not a pgtwopass sender")
	}
	if err := s.conn.Send(wire.Hello{Magic: wire.Magic, Version: wire.Version, Program: s.o.Program}); err != nil {
		return err
	}
	if h.Version != wire.Version {
		err := fmt.Errorf("%w: the sender (%s) speaks protocol version %d, this receiver (%s) speaks %d: install the same pgtwopass on both hosts",
			wire.ErrVersion, h.Program, h.Version, s.o.Program, wire.Version)
		s.sendError(err)
		return err
	}
	return nil
}

// handle answers one frame. It returns an error only when the session
// cannot go on (the stream is broken).
func (s *receiver) handle(ctx context.Context, f wire.Frame) error {
	d := wire.NewDecoder(f.Payload)
	reply := func(m wire.Message, err error) error {
		if err != nil {
			return s.sendError(err)
		}
		return s.conn.Send(m)
	}
	decodeErr := func() error {
		err := d.Err()
		if err != nil {
			s.sendError(err)
		}
		return err
	}
	switch f.Type {
	case wire.TOpen:
		m := wire.DecodeOpen(d)
		if err := decodeErr(); err != nil {
			return err
		}
		rep, err := s.d.Open(ctx, &pass.OpenRequest{SystemIdentifier: m.SystemIdentifier, PGVersion: m.PGVersion, BlockSize: int(m.BlockSize),
			DryRun: m.DryRun, ReadOnly: m.ReadOnly, Quick: m.Quick,
			Owner: pass.OwnerIDs{UID: m.UID, GID: m.GID, User: m.User, Group: m.Group}, Tablespaces: m.Tablespaces,
			BootID: m.BootID, Reads: fromWirePlaces(m.Reads), MkPath: m.MkPath, AllowStarted: m.AllowStarted})
		if err != nil {
			return s.sendError(err)
		}
		out := wire.OpenReply{Header: rep.Header, Exists: rep.Exists, UID: rep.Owner.UID, GID: rep.Owner.GID, AsRoot: rep.AsRoot}
		for _, oid := range slices.Sorted(maps.Keys(rep.Tablespaces)) {
			out.Tablespaces = append(out.Tablespaces, oid, rep.Tablespaces[oid])
		}
		return s.conn.Send(out)

	case wire.TEntries:
		m := wire.DecodeEntries(d)
		if err := decodeErr(); err != nil {
			return err
		}
		if len(s.entries)+len(m.Entries) > maxEntries {
			err := fmt.Errorf("more than %d entries in a pass", maxEntries)
			s.sendError(err)
			return err
		}
		for i := range m.Entries {
			s.entries = append(s.entries, fromWireEntry(&m.Entries[i]))
			s.walKinds = append(s.walKinds, m.Entries[i].WAL)
			s.walBlocks = append(s.walBlocks, m.Entries[i].Blocks)
		}
		return nil

	case wire.TBegin:
		m := wire.DecodeBegin(d)
		if err := decodeErr(); err != nil {
			return err
		}
		entries, wal := s.entries, &pass.WALRequest{Kinds: s.walKinds, Blocks: s.walBlocks}
		s.entries, s.walKinds, s.walBlocks = nil, nil, nil
		if s.pass != nil {
			return s.sendError(errors.New("a pass is already running"))
		}
		sp, err := s.beginPass(ctx, &m, entries, wal)
		if err != nil {
			return s.sendError(err)
		}
		s.pass = sp
		if err := s.conn.Send(wire.Empty(wire.TReady)); err != nil {
			return err
		}
		sp.start(ctx)
		return nil

	case wire.TWrite:
		m := wire.DecodeWrite(d)
		if err := decodeErr(); err != nil {
			return err
		}
		if s.pass != nil {
			s.pass.write(&m)
		}
		return nil

	case wire.TDone:
		m := wire.DecodeDone(d)
		if err := decodeErr(); err != nil {
			return err
		}
		if s.pass != nil {
			s.pass.done(&m)
		}
		return nil

	case wire.TCommit:
		m := wire.DecodeCommit(d)
		if err := decodeErr(); err != nil {
			return err
		}
		if s.pass == nil {
			return s.sendError(errors.New("commit without a pass"))
		}
		sp := s.pass
		s.pass = nil
		rep, err := sp.commit(ctx, &m)
		if err != nil {
			return s.sendError(err)
		}
		return s.conn.Send(wire.Committed{Header: rep.Header, FilesSkipped: rep.FilesSkipped,
			FilesChanged: rep.FilesChanged, FilesDeleted: rep.FilesDeleted, BytesRead: rep.BytesRead})

	case wire.TAbort:
		if s.pass != nil {
			s.pass.abort()
			s.pass = nil
		}
		return s.conn.Send(wire.Empty(wire.TOK))

	case wire.TTimings:
		b, err := json.Marshal(s.d.Timings(ctx))
		return reply(wire.Blob{T: wire.TTimingsReply, Data: b}, err)

	case wire.TSaveTimings:
		var t pass.ServerTimings
		if err := json.Unmarshal(wire.DecodeBlob(d), &t); err != nil || d.Err() != nil {
			return s.sendError(fmt.Errorf("bad server timings: %v", errors.Join(err, d.Err())))
		}
		return reply(wire.Empty(wire.TOK), s.d.SaveTimings(ctx, t))

	case wire.TStatus:
		st, err := s.d.Status(ctx)
		if err != nil {
			return s.sendError(err)
		}
		return s.conn.Send(wire.StatusReply{Dest: st.Dest, Header: &st.Header, Sealed: st.Sealed,
			RanSinceSeal: st.RanSinceSeal, Running: st.Running, PID: uint32(st.PID)})

	case wire.TSealed:
		err := s.d.SealedHashes(ctx, func(rel string, size int64, hashes []manifest.Hash) error {
			return sendHashes(s.conn, rel, size, hashes)
		})
		if err != nil {
			return s.sendError(err)
		}
		return s.conn.Send(wire.Empty(wire.TEndHashes))

	case wire.TDetach:
		return reply(wire.Empty(wire.TOK), s.d.Detach(ctx))

	case wire.TVerifyManifest:
		m := wire.DecodePatterns(d)
		if err := decodeErr(); err != nil {
			return err
		}
		diffs, err := s.d.VerifyManifest(ctx, clampJobs(m.Jobs), pass.Excluder(m.Excludes))
		out := wire.Diffs{}
		for _, x := range diffs {
			out.Diffs = append(out.Diffs, wire.Diff{Path: x.Path, What: x.What})
		}
		return reply(out, err)

	case wire.TWalk:
		m := wire.DecodePatterns(d)
		if err := decodeErr(); err != nil {
			return err
		}
		entries, err := s.d.WalkCopy(ctx, pass.Excluder(m.Excludes))
		if err != nil {
			return s.sendError(err)
		}
		if err := sendEntries(s.conn, entries, nil); err != nil {
			return err
		}
		return s.conn.Send(wire.Empty(wire.TEndEntries))

	case wire.THash:
		m := wire.DecodeHashFiles(d)
		if err := decodeErr(); err != nil {
			return err
		}
		s.hashReq = append(s.hashReq, m.Rels...)
		if len(s.hashReq) > maxEntries {
			err := fmt.Errorf("more than %d files to hash", maxEntries)
			s.sendError(err)
			return err
		}
		if m.More {
			return nil
		}
		rels := s.hashReq
		s.hashReq = nil
		err := s.d.HashFiles(ctx, rels, int(m.BlockSize), clampJobs(m.Jobs), func(rel string, size int64, hashes []manifest.Hash, err error) error {
			if err != nil {
				return err
			}
			return sendHashes(s.conn, rel, size, hashes)
		})
		if err != nil {
			return s.sendError(err)
		}
		return s.conn.Send(wire.Empty(wire.TEndHashes))
	}
	err := fmt.Errorf("%w: unexpected message type %d", wire.ErrCorrupt, f.Type)
	s.sendError(err)
	return err
}

// errAborted is why an aborted pass stops.
var errAborted = errors.New("the pass was aborted")

func clampJobs(n uint32) int { return int(min(max(n, 1), 256)) }

// sendEntries sends entries in batches, with what the WAL says of each
// (w, nil outside a WAL-guided cold pass).
func sendEntries(c *wire.Conn, entries []pass.Entry, w *pass.WALRequest) error {
	var batch wire.Entries
	size := 0
	for i := range entries {
		x := toWireEntry(&entries[i])
		if w != nil && i < len(w.Kinds) {
			x.WAL = w.Kinds[i]
		}
		if w != nil && i < len(w.Blocks) {
			x.Blocks = w.Blocks[i]
		}
		batch.Entries = append(batch.Entries, x)
		size += len(x.Rel) + len(x.Target) + 64 + 4*len(x.Blocks)
		if size >= wire.EntryBatchBytes {
			if err := c.Send(batch); err != nil {
				return err
			}
			batch.Entries, size = batch.Entries[:0], 0
		}
	}
	if len(batch.Entries) > 0 {
		return c.Send(batch)
	}
	return nil
}

// sendHashes sends one file's hashes, in several frames if need be.
func sendHashes(c *wire.Conn, rel string, size int64, hashes []manifest.Hash) error {
	return sendHashParts(hashes, func(part []manifest.Hash, more bool) error {
		return c.Send(wire.HashReply{Rel: rel, Size: size, Hashes: part, More: more})
	})
}

// receiverPass is a pass driven over the wire: a localPass, the generator that
// sends its bases, the workers that complete its files, and the block hashes
// rebuilt from the bases and the blocks received.
type receiverPass struct {
	// config
	s      *receiver
	lp     *destination.Pass
	bs     int
	jobs   int
	dryRun bool

	// state
	ctx         context.Context // ends at the first failure, its cause
	cancel      context.CancelCauseFunc
	named       [][]uint32 // of a WAL-guided cold pass: the blocks the WAL names, by entry
	mu          sync.Mutex
	hashes      map[uint64][]manifest.Hash // file id -> hashes rebuilt so far
	sparse      map[uint64]*sparseFile     // the same, of the files read in part
	dones       chan *pass.FileResult
	workers     errgroup.Group // the generator and the workers
	gen         chan struct{}  // closed when the generator is done; nil before start
	ended       atomic.Bool    // the generator is sending the end of the bases
	donesClosed bool
	aborting    atomic.Bool
	reported    atomic.Bool // the failure was sent to the sender
	dec         *zstd.Decoder
	buf         []byte
}

func (s *receiver) beginPass(ctx context.Context, m *wire.Begin, entries []pass.Entry, wal *pass.WALRequest) (*receiverPass, error) {
	kind := manifest.PassKind(m.Kind)
	if kind != manifest.Live && kind != manifest.Cold {
		return nil, fmt.Errorf("unknown pass kind %d", m.Kind)
	}
	req := &pass.PassRequest{Kind: kind, BlockSize: int(m.BlockSize), DryRun: m.DryRun, Quick: m.Quick, QuickMargin: m.QuickMargin,
		InFlight: int(min(max(m.InFlight, 1), pass.MaxInFlightFiles)), Quiet: m.Quiet, Jobs: clampJobs(m.Jobs)}
	if m.WAL {
		req.WAL = &pass.WALRequest{Kinds: wal.Kinds, Blocks: wal.Blocks, Since: m.WALSince, Margin: m.WALMargin}
	}
	lp, err := s.d.Begin(ctx, req, entries)
	if err != nil {
		return nil, err
	}
	sp := &receiverPass{s: s, lp: lp, bs: req.BlockSize, jobs: clampJobs(m.Jobs), dryRun: req.DryRun,
		hashes: map[uint64][]manifest.Hash{}, sparse: map[uint64]*sparseFile{}}
	if req.WAL != nil {
		sp.named = req.WAL.Blocks
	}
	sp.ctx, sp.cancel = context.WithCancelCause(ctx)
	return sp, nil
}

// fail stops the pass and reports its first error to the sender; the frames
// of the pass that follow are ignored until the sender aborts it.
func (sp *receiverPass) fail(err error) {
	sp.cancel(err)
	if !sp.aborting.Load() && sp.reported.CompareAndSwap(false, true) {
		sp.s.sendError(context.Cause(sp.ctx))
	}
}

// failed returns why the pass failed, or nil.
func (sp *receiverPass) failed() error { return context.Cause(sp.ctx) }

// start runs the generator and the workers.
func (sp *receiverPass) start(ctx context.Context) {
	sp.gen = make(chan struct{})
	sp.dones = make(chan *pass.FileResult, sp.jobs)
	for range sp.jobs {
		sp.workers.Go(func() error {
			for res := range sp.dones {
				if sp.failed() != nil {
					continue
				}
				if err := sp.lp.Done(res); err != nil {
					sp.fail(err)
				}
			}
			return nil
		})
	}
	sp.workers.Go(func() error {
		defer close(sp.gen)
		for {
			bases, err := sp.lp.Next(sp.ctx, pass.BatchFiles)
			if err != nil {
				sp.fail(err)
				return nil
			}
			if len(bases) == 0 {
				sp.ended.Store(true)
				if err := sp.s.conn.Send(wire.Empty(wire.TEndBases)); err != nil {
					sp.fail(err)
				}
				return nil
			}
			for _, b := range bases {
				if !sp.dryRun {
					sp.mu.Lock()
					if b.Partial {
						sp.sparse[b.ID] = &sparseFile{index: b.Index, size: b.Size, blocks: slices.Clone(b.Blocks), basis: slices.Clone(b.Hashes),
							wrote: map[uint32]manifest.Hash{}}
					} else {
						sp.hashes[b.ID] = append([]manifest.Hash(nil), b.Hashes...)
					}
					sp.mu.Unlock()
				}
				// Buffered, and sent together after the batch: one write
				// for the bases of many small files.
				blocks := b.Blocks
				err = sendHashParts(b.Hashes, func(part []manifest.Hash, more bool) error {
					m := wire.Basis{ID: b.ID, Index: uint32(b.Index), Rel: b.Rel, Size: b.Size, Hashes: part, More: more, Partial: b.Partial}
					if b.Partial {
						m.Blocks, blocks = blocks[:len(part)], blocks[len(part):]
					}
					return sp.s.conn.Buffer(m)
				})
				if err != nil {
					sp.fail(err)
					return nil
				}
			}
			if err := sp.s.conn.Flush(); err != nil {
				sp.fail(err)
				return nil
			}
		}
	})
}

// write applies blocks of a file, and rebuilds their hashes.
func (sp *receiverPass) write(m *wire.Write) {
	if sp.failed() != nil {
		return
	}
	data := m.Data
	if m.Compressed {
		if sp.dec == nil {
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true))
			if err != nil {
				sp.fail(err)
				return
			}
			sp.dec = dec
		}
		if cap(sp.buf) < int(m.RawLen) {
			sp.buf = make([]byte, 0, m.RawLen)
		}
		out, err := sp.dec.DecodeAll(m.Data, sp.buf[:0:m.RawLen])
		if err != nil || len(out) != int(m.RawLen) {
			sp.fail(fmt.Errorf("%w: a compressed write does not decompress to %d bytes (%v)", wire.ErrCorrupt, m.RawLen, err))
			return
		}
		data = out
	}
	sp.mu.Lock()
	hs, ok := sp.hashes[m.ID]
	sf := sp.sparse[m.ID]
	sp.mu.Unlock()
	if !ok && sf == nil {
		sp.fail(fmt.Errorf("%w: a write to file %d, which is not in flight", wire.ErrCorrupt, m.ID))
		return
	}
	if m.Off%int64(sp.bs) != 0 || m.Off > maxFileSize-int64(len(data)) {
		sp.fail(fmt.Errorf("%w: a write of %d bytes at offset %d", wire.ErrCorrupt, len(data), m.Off))
		return
	}
	first := int(m.Off / int64(sp.bs))
	end := first + manifest.NumBlocks(int64(len(data)), sp.bs)
	if sf != nil {
		written := make([]manifest.Hash, end-first)
		pass.HashBlocks(written, data, sp.bs)
		sp.mu.Lock()
		for k, h := range written {
			sf.wrote[uint32(first+k)] = h
		}
		sp.mu.Unlock()
	} else {
		if len(hs) < end {
			hs = append(hs, make([]manifest.Hash, end-len(hs))...)
		}
		pass.HashBlocks(hs[first:end], data, sp.bs)
		sp.mu.Lock()
		sp.hashes[m.ID] = hs
		sp.mu.Unlock()
	}
	if err := sp.lp.Write(m.ID, m.Off, data); err != nil {
		sp.fail(err)
	}
}

// done completes a file, once its rebuilt hashes match the sender's.
func (sp *receiverPass) done(m *wire.Done) {
	if sp.failed() != nil {
		return
	}
	sp.mu.Lock()
	hs, ok := sp.hashes[m.ID]
	sf := sp.sparse[m.ID]
	delete(sp.hashes, m.ID)
	delete(sp.sparse, m.ID)
	sp.mu.Unlock()
	if !ok && sf == nil {
		sp.fail(fmt.Errorf("%w: the end of file %d, which is not in flight", wire.ErrCorrupt, m.ID))
		return
	}
	res := &pass.FileResult{ID: m.ID, Vanished: m.Vanished}
	if !m.Vanished {
		e := fromWireEntry(&m.Entry)
		if e.Stat.Size > maxFileSize {
			sp.fail(fmt.Errorf("%s is %d bytes, more than a receiver takes (%d)", e.Rel, e.Stat.Size, maxFileSize))
			return
		}
		var blocks []uint32
		if sf != nil {
			var err error
			if blocks, hs, err = sp.rebuildPartial(sf, &e); err != nil {
				sp.fail(err)
				return
			}
		} else {
			nb := manifest.NumBlocks(e.Stat.Size, sp.bs)
			if len(hs) < nb {
				sp.fail(fmt.Errorf("%w: %s ends at %d bytes, but no blocks came for its end", wire.ErrCorrupt, e.Rel, e.Stat.Size))
				return
			}
			hs = hs[:nb]
		}
		if pass.HashesSum(hs) != m.HashesSum {
			sp.fail(fmt.Errorf("%w: the blocks received for %s do not add up to the sender's file", wire.ErrCorrupt, e.Rel))
			return
		}
		res.Entry, res.Flags, res.CRC32C, res.ReadStart, res.Hashes, res.Blocks = e, m.Flags, m.CRC32C, m.ReadStart, hs, blocks
	}
	select {
	case sp.dones <- res:
	case <-sp.ctx.Done():
	}
}

// sparseFile is a file read in part (pass.Basis.Partial) in flight: its
// basis, the hashes of chosen blocks, and the hashes of the blocks written.
type sparseFile struct {
	index  int   // in the entries
	size   int64 // of the copy's file
	blocks []uint32
	basis  []manifest.Hash
	wrote  map[uint32]manifest.Hash
}

// rebuildPartial returns the blocks the sender read of a file read in
// part, and their hashes: those of the blocks written, and the basis's of
// the others. Every block read must have one or the other, and every block
// written must be one read: a block written elsewhere would leave the copy
// other than its record says.
func (sp *receiverPass) rebuildPartial(sf *sparseFile, e *pass.Entry) ([]uint32, []manifest.Hash, error) {
	var named []uint32
	if sf.index < len(sp.named) {
		named = sp.named[sf.index]
	}
	blocks := pass.PartialBlocks(named, sf.size, e.Stat.Size, sp.bs)
	hs := make([]manifest.Hash, len(blocks))
	written := 0
	for k, i := range blocks {
		if h, ok := sf.wrote[i]; ok {
			hs[k] = h
			written++
		} else if j, ok := slices.BinarySearch(sf.blocks, i); ok && j < len(sf.basis) {
			hs[k] = sf.basis[j]
		} else {
			return nil, nil, fmt.Errorf("%w: %s: block %d, read in part, was neither sent nor in the basis", wire.ErrCorrupt, e.Rel, i)
		}
	}
	if written != len(sf.wrote) {
		return nil, nil, fmt.Errorf("%w: %s: %d blocks written that the pass does not read", wire.ErrCorrupt, e.Rel, len(sf.wrote)-written)
	}
	return blocks, hs, nil
}

// commit waits for the generator and the workers, then commits the pass.
func (sp *receiverPass) commit(ctx context.Context, m *wire.Commit) (*pass.CommitReply, error) {
	if !sp.ended.Load() {
		// A sender commits after the end of the bases, never before.
		sp.abort()
		return nil, fmt.Errorf("%w: commit before the end of the files to read", wire.ErrCorrupt)
	}
	sp.stopWorkers()
	if err := sp.failed(); err != nil {
		sp.abort()
		return nil, err
	}
	sp.mu.Lock()
	left := len(sp.hashes) + len(sp.sparse)
	sp.mu.Unlock()
	if left > 0 {
		sp.abort()
		return nil, fmt.Errorf("%w: commit with %d files not done", wire.ErrCorrupt, left)
	}
	rep, err := sp.lp.Commit(ctx, &pass.CommitRequest{Pass: m.Pass, BackupManifest: m.BackupManifest,
		Timeline: m.Timeline, CheckpointLSN: m.CheckpointLSN})
	sp.cancel(nil)
	return rep, err
}

// stopWorkers waits for the generator, then lets the workers finish the
// files handed to them.
func (sp *receiverPass) stopWorkers() {
	if sp.gen == nil {
		return
	}
	<-sp.gen
	if !sp.donesClosed {
		sp.donesClosed = true
		close(sp.dones)
	}
	sp.workers.Wait() // their errors went to fail
}

// abort ends the pass without committing it: the generator and the workers
// stop first, so that nothing uses the pass while it is taken apart.
func (sp *receiverPass) abort() {
	sp.aborting.Store(true)
	sp.cancel(errAborted)
	sp.stopWorkers()
	sp.lp.Abort()
}
