package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdsync "sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/wire"
)

// ReceiveOptions configures the receiving end of a copy to another host.
type ReceiveOptions struct {
	// Dir is the copy's directory on this host (the PATH of host:PATH).
	Dir string
	// Tablespaces maps the OID of each tablespace to the directory of its
	// copy on this host. The receiver writes nowhere else.
	Tablespaces map[string]string
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
	s := &server{conn: wire.NewConn(r, w), o: o}
	s.obs = serverObserver{s}
	err := s.serve(ctx)
	if s.pass != nil {
		s.pass.abort()
	}
	if s.d != nil {
		s.d.close()
	}
	return err
}

type server struct {
	// config
	conn *wire.Conn
	o    ReceiveOptions
	obs  Observer

	// state
	d       *localDest
	entries []entry
	pass    *serverPass
	hashReq []string
}

// serverObserver sends the destination's events to the sender.
type serverObserver struct{ s *server }

func (o serverObserver) Event(e Event)         { o.s.conn.Send(toWireEvent(&e)) }
func (o serverObserver) Progress(int64, int64) {}

func (s *server) sendError(err error) error { return s.conn.Send(toWireError(err)) }

func (s *server) serve(ctx context.Context) error {
	if err := s.hello(); err != nil {
		return err
	}
	d, err := newLocalDest(s.o.Dir, s.o.Tablespaces, s.obs)
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

func (s *server) hello() error {
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
func (s *server) handle(ctx context.Context, f wire.Frame) error {
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
		rep, err := s.d.open(ctx, &openRequest{SystemIdentifier: m.SystemIdentifier, PGVersion: m.PGVersion, BlockSize: int(m.BlockSize),
			DryRun: m.DryRun, ReadOnly: m.ReadOnly, Quick: m.Quick,
			Owner: ownerIDs{UID: m.UID, GID: m.GID, User: m.User, Group: m.Group}, Tablespaces: m.Tablespaces})
		if err != nil {
			return s.sendError(err)
		}
		out := wire.OpenReply{Header: toWireHeader(rep.Header), Exists: rep.Exists, UID: rep.Owner.UID, GID: rep.Owner.GID, AsRoot: rep.AsRoot}
		for _, oid := range sortedKeys(rep.Tablespaces) {
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
		}
		return nil

	case wire.TBegin:
		m := wire.DecodeBegin(d)
		if err := decodeErr(); err != nil {
			return err
		}
		entries := s.entries
		s.entries = nil
		if s.pass != nil {
			return s.sendError(errors.New("a pass is already running"))
		}
		sp, err := s.beginPass(ctx, &m, entries)
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
		return s.conn.Send(wire.Committed{Header: toWireHeader(rep.Header), FilesSkipped: rep.FilesSkipped,
			FilesChanged: rep.FilesChanged, FilesDeleted: rep.FilesDeleted, BytesRead: rep.BytesRead})

	case wire.TAbort:
		if s.pass != nil {
			s.pass.abort()
			s.pass = nil
		}
		return s.conn.Send(wire.Empty(wire.TOK))

	case wire.TTimings:
		b, err := json.Marshal(s.d.timings(ctx))
		return reply(wire.Blob{T: wire.TTimingsReply, Data: b}, err)

	case wire.TSaveTimings:
		var t serverTimings
		if err := json.Unmarshal(wire.DecodeBlob(d), &t); err != nil || d.Err() != nil {
			return s.sendError(fmt.Errorf("bad server timings: %v", errors.Join(err, d.Err())))
		}
		return reply(wire.Empty(wire.TOK), s.d.saveTimings(ctx, t))

	case wire.TStatus:
		st, err := s.d.status(ctx)
		if err != nil {
			return s.sendError(err)
		}
		return s.conn.Send(wire.StatusReply{Dest: st.Dest, Header: toWireHeader(&st.Header), Sealed: st.Sealed})

	case wire.TVerifyManifest:
		m := wire.DecodePatterns(d)
		if err := decodeErr(); err != nil {
			return err
		}
		diffs, err := s.d.verifyManifest(ctx, clampJobs(m.Jobs), excluder(m.Excludes))
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
		entries, err := s.d.walkCopy(ctx, excluder(m.Excludes))
		if err != nil {
			return s.sendError(err)
		}
		if err := sendEntries(s.conn, entries); err != nil {
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
		err := s.d.hashFiles(ctx, rels, int(m.BlockSize), clampJobs(m.Jobs), func(rel string, size int64, hashes []manifest.Hash, err error) error {
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

func clampJobs(n uint32) int { return int(min(max(n, 1), 256)) }

// sendEntries sends entries in batches.
func sendEntries(c *wire.Conn, entries []entry) error {
	var batch wire.Entries
	size := 0
	for i := range entries {
		x := toWireEntry(&entries[i])
		batch.Entries = append(batch.Entries, x)
		size += len(x.Rel) + len(x.Target) + 64
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
	wh := toWireHashes(hashes)
	for {
		n := min(len(wh), wire.HashesPerFrame)
		m := wire.HashReply{Rel: rel, Size: size, Hashes: wh[:n], More: n < len(wh)}
		if err := c.Send(m); err != nil {
			return err
		}
		wh = wh[n:]
		if len(wh) == 0 {
			return nil
		}
	}
}

// serverPass is a pass driven over the wire: a localPass, the generator that
// sends its bases, the workers that complete its files, and the block hashes
// rebuilt from the bases and the blocks received.
type serverPass struct {
	// config
	s    *server
	lp   *localPass
	bs   int
	jobs int

	// state
	ctx         context.Context
	cancel      context.CancelFunc
	mu          stdsync.Mutex
	hashes      map[uint64][]manifest.Hash // file id -> hashes rebuilt so far
	dones       chan *fileResult
	workers     stdsync.WaitGroup
	gen         chan struct{} // closed when the generator is done; nil before start
	ended       atomic.Bool   // the generator is sending the end of the bases
	donesClosed bool
	aborting    atomic.Bool
	errOnce     stdsync.Once
	err         error
	dec         *zstd.Decoder
	buf         []byte
}

func (s *server) beginPass(ctx context.Context, m *wire.Begin, entries []entry) (*serverPass, error) {
	kind := manifest.PassKind(m.Kind)
	if kind != manifest.Live && kind != manifest.Cold {
		return nil, fmt.Errorf("unknown pass kind %d", m.Kind)
	}
	req := &passRequest{Kind: kind, BlockSize: int(m.BlockSize), DryRun: m.DryRun, Quick: m.Quick, QuickMargin: m.QuickMargin,
		InFlight: int(min(max(m.InFlight, 1), 4096)), Quiet: m.Quiet}
	dp, err := s.d.beginPass(ctx, req, entries)
	if err != nil {
		return nil, err
	}
	sp := &serverPass{s: s, lp: dp.(*localPass), bs: req.BlockSize, jobs: clampJobs(m.Jobs),
		hashes: map[uint64][]manifest.Hash{}}
	sp.ctx, sp.cancel = context.WithCancel(ctx)
	return sp, nil
}

// fail reports the pass's first error to the sender and stops the pass; the
// frames of the pass that follow are ignored until the sender aborts it.
func (sp *serverPass) fail(err error) {
	sp.errOnce.Do(func() {
		sp.mu.Lock()
		sp.err = err
		sp.mu.Unlock()
		sp.cancel()
		if !sp.aborting.Load() {
			sp.s.sendError(err)
		}
	})
}

func (sp *serverPass) failed() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.err
}

// start runs the generator and the workers.
func (sp *serverPass) start(ctx context.Context) {
	sp.gen = make(chan struct{})
	sp.dones = make(chan *fileResult, sp.jobs)
	for range sp.jobs {
		sp.workers.Add(1)
		go func() {
			defer sp.workers.Done()
			for res := range sp.dones {
				if sp.failed() != nil {
					continue
				}
				if err := sp.lp.done(res); err != nil {
					sp.fail(err)
				}
			}
		}()
	}
	go func() {
		defer close(sp.gen)
		for {
			b, err := sp.lp.next(sp.ctx)
			if err != nil {
				sp.fail(err)
				return
			}
			if b == nil {
				sp.ended.Store(true)
				if err := sp.s.conn.Send(wire.Empty(wire.TEndBases)); err != nil {
					sp.fail(err)
				}
				return
			}
			if !sp.lp.req.DryRun {
				sp.mu.Lock()
				sp.hashes[b.ID] = append([]manifest.Hash(nil), b.Hashes...)
				sp.mu.Unlock()
			}
			wh := toWireHashes(b.Hashes)
			for {
				n := min(len(wh), wire.HashesPerFrame)
				m := wire.Basis{ID: b.ID, Index: uint32(b.Index), Rel: b.Rel, Size: b.Size, Hashes: wh[:n], More: n < len(wh)}
				if err := sp.s.conn.Send(m); err != nil {
					sp.fail(err)
					return
				}
				wh = wh[n:]
				if len(wh) == 0 {
					break
				}
			}
		}
	}()
}

// write applies blocks of a file, and rebuilds their hashes.
func (sp *serverPass) write(m *wire.Write) {
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
	sp.mu.Unlock()
	if !ok {
		sp.fail(fmt.Errorf("%w: a write to file %d, which is not in flight", wire.ErrCorrupt, m.ID))
		return
	}
	if m.Off%int64(sp.bs) != 0 || m.Off > maxFileSize-int64(len(data)) {
		sp.fail(fmt.Errorf("%w: a write of %d bytes at offset %d", wire.ErrCorrupt, len(data), m.Off))
		return
	}
	first := int(m.Off / int64(sp.bs))
	for b, i := 0, first; b < len(data); b, i = b+sp.bs, i+1 {
		for len(hs) <= i {
			hs = append(hs, manifest.Hash{})
		}
		hs[i] = manifest.HashBlock(data[b:min(b+sp.bs, len(data))])
	}
	sp.mu.Lock()
	sp.hashes[m.ID] = hs
	sp.mu.Unlock()
	if err := sp.lp.write(m.ID, m.Off, data); err != nil {
		sp.fail(err)
	}
}

// done completes a file, once its rebuilt hashes match the sender's.
func (sp *serverPass) done(m *wire.Done) {
	if sp.failed() != nil {
		return
	}
	sp.mu.Lock()
	hs, ok := sp.hashes[m.ID]
	delete(sp.hashes, m.ID)
	sp.mu.Unlock()
	if !ok {
		sp.fail(fmt.Errorf("%w: the end of file %d, which is not in flight", wire.ErrCorrupt, m.ID))
		return
	}
	res := &fileResult{ID: m.ID, Vanished: m.Vanished}
	if !m.Vanished {
		e := fromWireEntry(&m.Entry)
		if e.stat.Size > maxFileSize {
			sp.fail(fmt.Errorf("%s is %d bytes, more than a receiver takes (%d)", e.rel, e.stat.Size, maxFileSize))
			return
		}
		nb := manifest.NumBlocks(e.stat.Size, sp.bs)
		if len(hs) < nb {
			sp.fail(fmt.Errorf("%w: %s ends at %d bytes, but no blocks came for its end", wire.ErrCorrupt, e.rel, e.stat.Size))
			return
		}
		hs = hs[:nb]
		if hashesSum(hs) != m.HashesSum {
			sp.fail(fmt.Errorf("%w: the blocks received for %s do not add up to the sender's file", wire.ErrCorrupt, e.rel))
			return
		}
		res.Entry, res.Flags, res.CRC32C, res.ReadStart, res.Hashes = e, m.Flags, m.CRC32C, m.ReadStart, hs
	}
	select {
	case sp.dones <- res:
	case <-sp.ctx.Done():
	}
}

// commit waits for the generator and the workers, then commits the pass.
func (sp *serverPass) commit(ctx context.Context, m *wire.Commit) (*commitReply, error) {
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
	left := len(sp.hashes)
	sp.mu.Unlock()
	if left > 0 {
		sp.abort()
		return nil, fmt.Errorf("%w: commit with %d files not done", wire.ErrCorrupt, left)
	}
	rep, err := sp.lp.commit(ctx, &commitRequest{Pass: fromWirePass(&m.Pass), BackupManifest: m.BackupManifest,
		Timeline: m.Timeline, CheckpointLSN: m.CheckpointLSN})
	sp.cancel()
	return rep, err
}

// stopWorkers waits for the generator, then lets the workers finish the
// files handed to them.
func (sp *serverPass) stopWorkers() {
	if sp.gen == nil {
		return
	}
	<-sp.gen
	if !sp.donesClosed {
		sp.donesClosed = true
		close(sp.dones)
	}
	sp.workers.Wait()
}

// abort ends the pass without committing it: the generator and the workers
// stop first, so that nothing uses the pass while it is taken apart.
func (sp *serverPass) abort() {
	sp.aborting.Store(true)
	sp.cancel()
	sp.stopWorkers()
	sp.lp.abort()
}
