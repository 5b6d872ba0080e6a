package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	sync "sync"
	"time"

	"github.com/klauspost/compress/zstd"
	ratelimit "golang.org/x/time/rate"

	"github.com/pgtwopass/pgtwopass/internal/wire"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// Client is a copy on another host, driven through the receiver at the
// other end of a connection. It implements pass.Destination.
type Client struct {
	// config
	r    Remote
	o    Options
	obs  pass.Observer
	link link // carries the connection to the receiver

	// state
	conn    *wire.Conn
	replies chan wire.Frame
	dead    chan struct{} // closed when the connection is lost
	err     error         // why; set before dead is closed
	enc     *zstd.Encoder
	cur     *clientPass // the pass under way, if any
	curMu   sync.Mutex
	rtt     time.Duration // the shortest round trip seen
	rttMu   sync.Mutex
}

// NewClient connects to a receiver that reads what l writes and writes what
// r reads, and says hello. dest names the copy in messages. ctx bounds the
// session's bandwidth limit (see Dial).
func NewClient(ctx context.Context, r io.Reader, l link, dest Remote, o Options, obs pass.Observer) (*Client, error) {
	if obs == nil {
		obs = pass.NopObserver{}
	}
	d := &Client{r: dest, o: o, obs: obs, link: l, replies: make(chan wire.Frame, 64), dead: make(chan struct{})}
	d.conn = wire.NewConn(r, l)
	if o.BWLimit > 0 {
		burst := 256 << 10
		lim := ratelimit.NewLimiter(ratelimit.Limit(o.BWLimit), burst)
		d.conn.Throttle = func(n int) {
			for n > 0 {
				k := min(n, burst)
				if lim.WaitN(ctx, k) != nil {
					return // the job is over: let its last frames (abort, bye) through
				}
				n -= k
			}
		}
	}
	if o.Compress {
		// EncodeAll runs as many compressions at once as the encoder's
		// concurrency: one per CPU, so that every worker compresses its
		// own chunk.
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			l.Kill()
			return nil, err
		}
		d.enc = enc
	}
	if err := d.hello(ctx); err != nil {
		l.Kill()
		return nil, err
	}
	go d.readLoop()
	return d, nil
}

func (d *Client) String() string { return d.r.String() }

// hello exchanges hellos; a receiver that does not answer is described with
// the remote shell's exit status and stderr.
func (d *Client) hello(ctx context.Context) error {
	t := time.Now()
	if err := d.conn.Send(wire.Hello{Magic: wire.Magic, Version: wire.Version, Program: d.o.Program}); err != nil {
		return err
	}
	defer func() { d.sawRoundTrip(time.Since(t)) }()
	type result struct {
		f   wire.Frame
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := d.conn.Read()
		ch <- result{f, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	if res.err != nil {
		return res.err
	}
	dec := wire.NewDecoder(res.f.Payload)
	h := wire.DecodeHello(dec)
	if res.f.Type != wire.THello || dec.Err() != nil || h.Magic != wire.Magic {
		return fmt.Errorf("the receiver on %s did not say hello (is %q pgtwopass?)", d.r.Host, d.o.RemotePath)
	}
	if h.Version != wire.Version {
		return pass.InputErr("install the same pgtwopass on both hosts",
			"the receiver on %s (%s) speaks protocol version %d, this pgtwopass (%s) speaks %d", d.r.Host, h.Program, h.Version, d.o.Program, wire.Version)
	}
	return nil
}

// readLoop reads the receiver's frames: events go to the observer, bases to
// the pass under way, everything else to the replies. It never blocks on
// the pass (the receiver sends no more bases than the pass takes in flight),
// so the receiver can always write.
func (d *Client) readLoop() {
	var err error
	parts := basisParts() // a basis's hashes may span several frames
	for {
		var f wire.Frame
		if f, err = d.conn.Read(); err != nil {
			break
		}
		dec := wire.NewDecoder(f.Payload)
		switch f.Type {
		case wire.TEvent:
			m := wire.DecodeEvent(dec)
			if err = dec.Err(); err != nil {
				break
			}
			if e, ok := fromWireEvent(&m); ok {
				d.obs.Event(e)
			}
			continue
		case wire.TBasis, wire.TEndBases:
			var b *pass.Basis
			if f.Type == wire.TBasis {
				m := wire.DecodeBasis(dec)
				if err = dec.Err(); err != nil {
					break
				}
				var whole *wire.Basis
				if whole, err = parts.add(m); err != nil {
					break
				}
				if whole == nil {
					continue
				}
				b = &pass.Basis{ID: whole.ID, Index: int(whole.Index), Rel: whole.Rel, Size: whole.Size, Hashes: whole.Hashes, Partial: whole.Partial,
					Blocks: whole.Blocks}
				if !slices.IsSorted(b.Blocks) {
					err = fmt.Errorf("%w: the blocks of the basis of %s out of order", wire.ErrCorrupt, b.Rel)
					break
				}
			}
			if err = d.deliver(b); err != nil {
				break
			}
			continue
		case wire.TError:
			m := wire.DecodeError(dec)
			if err = dec.Err(); err != nil {
				break
			}
			d.curMu.Lock()
			if p := d.cur; p != nil {
				p.fail(fromWireError(d.r, &m))
			}
			d.curMu.Unlock()
		}
		if err != nil {
			break
		}
		f.Payload = bytes.Clone(f.Payload)
		select {
		case d.replies <- f:
		case <-d.dead:
			return
		}
	}
	d.lost(err)
}

// deliver hands a basis (nil: the end of the bases) to the pass under way.
func (d *Client) deliver(b *pass.Basis) error {
	d.curMu.Lock()
	p := d.cur
	d.curMu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: a file to read outside a pass", wire.ErrCorrupt)
	}
	if b == nil {
		if p.ended {
			return fmt.Errorf("%w: the end of the files to read, twice", wire.ErrCorrupt)
		}
		p.ended = true
		p.bases.close()
		return nil
	}
	if p.ended {
		return fmt.Errorf("%w: a file to read after their end", wire.ErrCorrupt)
	}
	return p.bases.push(b)
}

// basisQueue holds the bases the receiver sent and the pass did not take
// yet. It never blocks the reader: a pass bounds the files in flight (a dry
// run does not, but its bases carry no hashes).
type basisQueue struct {
	mu     sync.Mutex
	q      []*pass.Basis
	closed bool
	ready  chan struct{} // holds a token while q is not empty or closed
}

// maxQueued bounds the bases queued, against a broken receiver.
const maxQueued = 1 << 22

func newBasisQueue() *basisQueue { return &basisQueue{ready: make(chan struct{}, 1)} }

func (bq *basisQueue) signal() {
	select {
	case bq.ready <- struct{}{}:
	default:
	}
}

func (bq *basisQueue) push(b *pass.Basis) error {
	bq.mu.Lock()
	defer bq.mu.Unlock()
	if len(bq.q) >= maxQueued {
		return fmt.Errorf("%w: the receiver sent more than %d files ahead", wire.ErrCorrupt, maxQueued)
	}
	bq.q = append(bq.q, b)
	bq.signal()
	return nil
}

func (bq *basisQueue) close() {
	bq.mu.Lock()
	bq.closed = true
	bq.signal()
	bq.mu.Unlock()
}

// pop returns the next bases, at most max; none and true at the end; none
// and false while there is none yet.
func (bq *basisQueue) pop(max int) ([]*pass.Basis, bool) {
	bq.mu.Lock()
	defer bq.mu.Unlock()
	if len(bq.q) > 0 {
		n := min(max, len(bq.q))
		out := append([]*pass.Basis(nil), bq.q[:n]...)
		clear(bq.q[:n])
		bq.q = bq.q[n:]
		if len(bq.q) > 0 || bq.closed {
			bq.signal()
		}
		return out, true
	}
	return nil, bq.closed
}

// lost records why the connection ended, once the remote shell exited.
func (d *Client) lost(err error) {
	select {
	case <-d.link.Exited():
	case <-time.After(2 * time.Second):
	}
	what := "the connection to the receiver on " + d.r.Host + " was lost"
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		what += " (the stream ended"
		if err == io.ErrUnexpectedEOF {
			what += " inside a frame"
		}
		what += ")"
	default:
		what += fmt.Sprintf(" (%v)", err)
	}
	select {
	case <-d.link.Exited():
		if how := d.link.Describe(); how != "" {
			what += "; " + how
		}
	default:
	}
	d.err = errors.New(what)
	close(d.dead)
	d.curMu.Lock()
	if p := d.cur; p != nil {
		p.fail(d.err)
	}
	d.curMu.Unlock()
}

// reply waits for the next reply; a TError is returned as the error it
// reports.
func (d *Client) reply(ctx context.Context, want wire.Type) (*wire.Decoder, error) {
	f, err := d.nextReply(ctx)
	if err != nil {
		return nil, err
	}
	dec := wire.NewDecoder(f.Payload)
	switch f.Type {
	case want:
		return dec, nil
	case wire.TError:
		m := wire.DecodeError(dec)
		if err := dec.Err(); err != nil {
			return nil, err
		}
		return nil, fromWireError(d.r, &m)
	}
	return nil, fmt.Errorf("%w: message type %d where %d was expected", wire.ErrCorrupt, f.Type, want)
}

// nextReply waits for the receiver's next frame that is not an event or a
// basis.
func (d *Client) nextReply(ctx context.Context) (wire.Frame, error) {
	select {
	case f := <-d.replies:
		return f, nil
	case <-d.dead:
		return wire.Frame{}, d.err
	case <-ctx.Done():
		return wire.Frame{}, ctx.Err()
	}
}

// callFor sends m and decodes its reply, of type want, with decode.
func callFor[T any](ctx context.Context, d *Client, m wire.Message, want wire.Type, decode func(*wire.Decoder) T) (T, error) {
	var zero T
	dec, err := d.call(ctx, m, want)
	if err != nil {
		return zero, err
	}
	v := decode(dec)
	if err := dec.Err(); err != nil {
		return zero, err
	}
	return v, nil
}

// call sends m and returns the decoder of its reply.
func (d *Client) call(ctx context.Context, m wire.Message, want wire.Type) (*wire.Decoder, error) {
	t := time.Now()
	if err := d.send(m); err != nil {
		return nil, err
	}
	dec, err := d.reply(ctx, want)
	if err == nil {
		d.sawRoundTrip(time.Since(t))
	}
	return dec, err
}

// sawRoundTrip keeps the shortest round trip of a request: the link's
// latency and little work (the shortest of the hello, open, timings).
func (d *Client) sawRoundTrip(rtt time.Duration) {
	d.rttMu.Lock()
	if d.rtt == 0 || rtt < d.rtt {
		d.rtt = rtt
	}
	d.rttMu.Unlock()
}

func (d *Client) send(m wire.Message) error {
	if err := d.conn.Send(m); err != nil {
		return d.sendFailed(err)
	}
	return nil
}

// buffer is send that leaves the frame for the next send or Flush.
func (d *Client) buffer(m wire.Message) error {
	if err := d.conn.Buffer(m); err != nil {
		return d.sendFailed(err)
	}
	return nil
}

// sendFailed explains a failed write: most often the receiver is gone, and
// the reader is about to say why.
func (d *Client) sendFailed(err error) error {
	select {
	case <-d.dead:
		return d.err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("failed to send to the receiver on %s: %w", d.r.Host, err)
	}
}

func (d *Client) Open(ctx context.Context, req *pass.OpenRequest) (*pass.OpenReply, error) {
	m, err := callFor(ctx, d, wire.Open{SystemIdentifier: req.SystemIdentifier, PGVersion: req.PGVersion, BlockSize: uint32(req.BlockSize),
		DryRun: req.DryRun, ReadOnly: req.ReadOnly, Quick: req.Quick, UID: req.Owner.UID, GID: req.Owner.GID,
		User: req.Owner.User, Group: req.Owner.Group, Tablespaces: req.Tablespaces,
		BootID: req.BootID, Reads: toWirePlaces(req.Reads), MkPath: req.MkPath, AllowStarted: req.AllowStarted}, wire.TOpenReply, wire.DecodeOpenReply)
	if err != nil {
		return nil, err
	}
	rep := &pass.OpenReply{Header: m.Header, Exists: m.Exists, Owner: pass.OwnerIDs{UID: m.UID, GID: m.GID}, AsRoot: m.AsRoot, Tablespaces: map[string]string{}}
	for i := 0; i+1 < len(m.Tablespaces); i += 2 {
		rep.Tablespaces[m.Tablespaces[i]] = m.Tablespaces[i+1]
	}
	return rep, nil
}

func (d *Client) Timings(ctx context.Context) pass.ServerTimings {
	dec, err := d.call(ctx, wire.Empty(wire.TTimings), wire.TTimingsReply)
	if err != nil {
		return pass.ServerTimings{}
	}
	return pass.ParseTimings(wire.DecodeBlob(dec))
}

func (d *Client) SaveTimings(ctx context.Context, t pass.ServerTimings) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	_, err = d.call(ctx, wire.Blob{T: wire.TSaveTimings, Data: b}, wire.TOK)
	return err
}

func (d *Client) Status(ctx context.Context) (*pass.CopyStatus, error) {
	m, err := callFor(ctx, d, wire.Empty(wire.TStatus), wire.TStatusReply, wire.DecodeStatusReply)
	if err != nil {
		return nil, err
	}
	return &pass.CopyStatus{Dest: d.r.login() + ":" + m.Dest, Header: *m.Header, Sealed: m.Sealed,
		RanSinceSeal: m.RanSinceSeal, Running: m.Running, PID: int(m.PID)}, nil
}

// Detach removes pgtwopass's state from the copy on the other host.
func (d *Client) Detach(ctx context.Context) error {
	_, err := d.call(ctx, wire.Empty(wire.TDetach), wire.TOK)
	return err
}

func (d *Client) VerifyManifest(ctx context.Context, jobs int, ex pass.Excluder) ([]pass.Difference, error) {
	m, err := callFor(ctx, d, wire.Patterns{T: wire.TVerifyManifest, Jobs: uint32(jobs), Excludes: ex}, wire.TDiffs, wire.DecodeDiffs)
	if err != nil {
		return nil, err
	}
	out := []pass.Difference{}
	for _, x := range m.Diffs {
		out = append(out, pass.Difference{Path: x.Path, What: x.What})
	}
	return out, nil
}

func (d *Client) WalkCopy(ctx context.Context, ex pass.Excluder) ([]pass.Entry, error) {
	if err := d.send(wire.Patterns{T: wire.TWalk, Excludes: ex}); err != nil {
		return nil, err
	}
	var out []pass.Entry
	for {
		f, err := d.nextReply(ctx)
		if err != nil {
			return nil, err
		}
		dec := wire.NewDecoder(f.Payload)
		switch f.Type {
		case wire.TEndEntries:
			return out, nil
		case wire.TEntries:
			m := wire.DecodeEntries(dec)
			if err := dec.Err(); err != nil {
				return nil, err
			}
			for i := range m.Entries {
				out = append(out, fromWireEntry(&m.Entries[i]))
			}
		case wire.TError:
			m := wire.DecodeError(dec)
			return nil, fromWireError(d.r, &m)
		default:
			return nil, fmt.Errorf("%w: message type %d in a walk", wire.ErrCorrupt, f.Type)
		}
	}
}

func (d *Client) HashFiles(ctx context.Context, rels []string, bs, jobs int, fn func(string, int64, []manifest.Hash, error) error) error {
	const batch = 10000
	for i := 0; ; i += batch {
		end := min(i+batch, len(rels))
		if err := d.send(wire.HashFiles{BlockSize: uint32(bs), Jobs: uint32(jobs), More: end < len(rels), Rels: rels[i:end]}); err != nil {
			return err
		}
		if end == len(rels) {
			break
		}
	}
	return d.receiveHashes(ctx, fn)
}

// receiveHashes reads THashReply frames up to TEndHashes and calls fn with
// each file's.
func (d *Client) receiveHashes(ctx context.Context, fn func(string, int64, []manifest.Hash, error) error) error {
	parts := hashReplyParts()
	for {
		f, err := d.nextReply(ctx)
		if err != nil {
			return err
		}
		dec := wire.NewDecoder(f.Payload)
		switch f.Type {
		case wire.TEndHashes:
			return nil
		case wire.THashReply:
			m := wire.DecodeHashReply(dec)
			if err := dec.Err(); err != nil {
				return err
			}
			whole, err := parts.add(m)
			if err != nil || whole == nil {
				if err != nil {
					return err
				}
				continue
			}
			if whole.Err != "" {
				err = errors.New(whole.Err)
			}
			if err := fn(whole.Rel, whole.Size, whole.Hashes, err); err != nil {
				return err
			}
		case wire.TError:
			m := wire.DecodeError(dec)
			return fromWireError(d.r, &m)
		default:
			return fmt.Errorf("%w: message type %d among hashes", wire.ErrCorrupt, f.Type)
		}
	}
}

// Close says goodbye and waits for the link (the remote shell) to end.
func (d *Client) Close() error {
	select {
	case <-d.dead:
	default:
		d.conn.Send(wire.Empty(wire.TBye))
	}
	d.link.Close()
	select {
	case <-d.link.Exited():
	case <-time.After(30 * time.Second):
		d.link.Kill()
		<-d.link.Exited()
	}
	if d.enc != nil {
		d.enc.Close()
	}
	select {
	case <-d.dead:
		return nil // the error was reported where it happened
	default:
	}
	if how := d.link.Describe(); how != "" {
		return fmt.Errorf("the session with %s did not end cleanly: %s", d.r.Host, how)
	}
	return nil
}

// Traffic returns the bytes sent to and received from the receiver.
func (d *Client) Traffic() (sent, received int64) { return d.conn.Sent(), d.conn.Received() }

// InFlight bounds the files in flight of a pass with jobs workers: enough
// to fill the round trip to the receiver, as measured.
func (d *Client) InFlight(jobs int) int {
	d.rttMu.Lock()
	defer d.rttMu.Unlock()
	return pass.InFlightFiles(jobs, d.rtt)
}

// beginPass sends the entries and starts the pass.
func (d *Client) BeginPass(ctx context.Context, req *pass.PassRequest, entries []pass.Entry) (pass.DestinationPass, error) {
	if err := sendEntries(d.conn, entries, req.WAL); err != nil {
		return nil, d.sendFailed(err)
	}
	p := &clientPass{d: d, req: *req, bases: newBasisQueue(), failed: make(chan struct{})}
	d.curMu.Lock()
	d.cur = p
	d.curMu.Unlock()
	begin := wire.Begin{Kind: uint8(req.Kind), BlockSize: uint32(req.BlockSize), DryRun: req.DryRun, Quick: req.Quick,
		QuickMargin: req.QuickMargin, InFlight: uint32(req.InFlight), Quiet: req.Quiet, Jobs: uint32(max(req.Jobs, 1))}
	if w := req.WAL; w != nil {
		begin.WAL, begin.WALSince, begin.WALMargin = true, w.Since, w.Margin
	}
	_, err := d.call(ctx, begin, wire.TReady)
	if err != nil {
		d.endPass()
		return nil, err
	}
	return p, nil
}

func (d *Client) endPass() {
	d.curMu.Lock()
	d.cur = nil
	d.curMu.Unlock()
}

// clientPass is a pass whose destination is a receiver on another host.
type clientPass struct {
	// config
	d   *Client
	req pass.PassRequest

	// state
	bases   *basisQueue
	ended   bool // under d.curMu: the receiver sent the end of the bases
	failed  chan struct{}
	errOnce sync.Once
	err     error
	bufs    sync.Pool
}

// fail records the pass's first error (the receiver's, or a lost
// connection): every call of the pass returns it from then on.
func (p *clientPass) fail(err error) {
	p.errOnce.Do(func() {
		p.err = err
		close(p.failed)
	})
}

func (p *clientPass) failure() error {
	select {
	case <-p.failed:
		return p.err
	default:
		return nil
	}
}

func (p *clientPass) Next(ctx context.Context, max int) ([]*pass.Basis, error) {
	for {
		if bs, ok := p.bases.pop(max); ok {
			return bs, nil
		}
		select {
		case <-p.bases.ready:
		case <-p.failed:
			return nil, p.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *clientPass) Write(id uint64, off int64, data []byte) error {
	if err := p.failure(); err != nil {
		return err
	}
	m := wire.Write{ID: id, Off: off, RawLen: uint32(len(data)), Data: data}
	// Buffered: Flush, at the end of the sender's batch or chunk, sends it.
	if enc := p.d.enc; enc != nil {
		bp, _ := p.bufs.Get().(*[]byte)
		if bp == nil {
			bp = new([]byte)
		}
		defer p.bufs.Put(bp)
		if c := enc.EncodeAll(data, (*bp)[:0]); len(c) < len(data) {
			m.Compressed, m.Data = true, c
			*bp = c
		}
	}
	if err := p.d.buffer(m); err != nil {
		p.fail(err)
		return err
	}
	return nil
}

func (p *clientPass) Done(res *pass.FileResult) error {
	if err := p.failure(); err != nil {
		return err
	}
	// A vanished file's entry says nothing, but must still decode: a
	// regular file.
	m := wire.Done{ID: res.ID, Vanished: res.Vanished, Entry: wire.Entry{Kind: wire.EntryFile}}
	if !res.Vanished {
		// The receiver rebuilds the file's hashes from the basis and the
		// blocks it received, and checks them against these.
		m.Entry, m.Flags, m.CRC32C, m.ReadStart, m.HashesSum = toWireEntry(&res.Entry), res.Flags, res.CRC32C, res.ReadStart, pass.HashesSum(res.Hashes)
	}
	if err := p.d.buffer(m); err != nil {
		p.fail(err)
		return err
	}
	return nil
}

// Flush sends the Write and Done frames buffered.
func (p *clientPass) Flush() error {
	if err := p.failure(); err != nil {
		return err
	}
	if err := p.d.conn.Flush(); err != nil {
		err = p.d.sendFailed(err)
		p.fail(err)
		return err
	}
	return nil
}

func (p *clientPass) Commit(ctx context.Context, c *pass.CommitRequest) (*pass.CommitReply, error) {
	defer p.d.endPass()
	if err := p.failure(); err != nil {
		p.abortSession()
		return nil, err
	}
	m, err := callFor(ctx, p.d, wire.Commit{Pass: c.Pass, BackupManifest: c.BackupManifest, Timeline: c.Timeline,
		CheckpointLSN: c.CheckpointLSN}, wire.TCommitted, wire.DecodeCommitted)
	if err != nil {
		return nil, err
	}
	return &pass.CommitReply{Header: m.Header, FilesSkipped: m.FilesSkipped, FilesChanged: m.FilesChanged, FilesDeleted: m.FilesDeleted, BytesRead: m.BytesRead}, nil
}

// abort ends the pass on the receiver, which then leaves the copy unsealed
// with its old manifest, and waits for it to say so.
func (p *clientPass) Abort() {
	defer p.d.endPass()
	p.abortSession()
}

func (p *clientPass) abortSession() {
	if err := p.d.send(wire.Empty(wire.TAbort)); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		// Skip what the receiver sent before it saw the abort (its error).
		if _, err := p.d.reply(ctx, wire.TOK); err == nil || errors.Is(err, context.DeadlineExceeded) || p.d.isDead() {
			return
		}
	}
}

func (d *Client) isDead() bool {
	select {
	case <-d.dead:
		return true
	default:
		return false
	}
}

// SealedHashes streams the manifest's records from the receiver.
func (d *Client) SealedHashes(ctx context.Context, fn func(rel string, size int64, hashes []manifest.Hash) error) error {
	if err := d.send(wire.Empty(wire.TSealed)); err != nil {
		return err
	}
	return d.receiveHashes(ctx, func(rel string, size int64, hs []manifest.Hash, err error) error {
		if err != nil {
			return err
		}
		return fn(rel, size, hs)
	})
}
