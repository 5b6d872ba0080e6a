package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	stdsync "sync"
	"syscall"
	"time"

	"github.com/kballard/go-shellquote"
	"github.com/klauspost/compress/zstd"
	ratelimit "golang.org/x/time/rate"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/wire"
)

// Remote is a destination on another host: [user@]host:PATH, as rsync
// writes it.
type Remote struct {
	User, Host, Path string
}

func (r Remote) String() string {
	s := r.Host + ":" + r.Path
	if r.User != "" {
		s = r.User + "@" + s
	}
	return s
}

// login is [user@]host.
func (r Remote) login() string {
	if r.User != "" {
		return r.User + "@" + r.Host
	}
	return r.Host
}

// ParseRemote reports whether dest names a directory on another host, as
// rsync decides it: a colon before the first slash. "./a:b" and "/x:y" are
// local paths.
func ParseRemote(dest string) (Remote, bool) {
	i := strings.IndexByte(dest, ':')
	if i <= 0 || strings.Contains(dest[:i], "/") {
		return Remote{}, false
	}
	r := Remote{Host: dest[:i], Path: dest[i+1:]}
	if u, h, ok := strings.Cut(r.Host, "@"); ok {
		r.User, r.Host = u, h
	}
	return r, true
}

// RemoteOptions says how to reach a destination on another host.
type RemoteOptions struct {
	// Rsh is the remote shell, with its options (rsync's -e): "ssh" by
	// default, e.g. "ssh -p 2222 -i key".
	Rsh string
	// RemotePath is pgtwopass on the other host: "pgtwopass" by default.
	// It goes into the remote command line as it is, so that it may be,
	// for example, "sudo -u postgres pgtwopass".
	RemotePath string
	// Compress compresses the blocks sent with zstd.
	Compress bool
	// BWLimit bounds the bytes sent per second; 0 means no limit.
	BWLimit int64
	// Stderr receives the remote shell's and the receiver's stderr.
	Stderr io.Writer
	// Program names this pgtwopass in the hello.
	Program string
}

// DefaultRsh and DefaultRemotePath are the defaults of --rsh and
// --remote-path.
const (
	DefaultRsh        = "ssh"
	DefaultRemotePath = "pgtwopass"
)

// remoteDest is a copy on another host, driven through a receiver that a
// remote shell started there.
type remoteDest struct {
	// config
	r    Remote
	ro   RemoteOptions
	obs  Observer
	args []string // the remote shell's command line

	// state
	cmd     *exec.Cmd
	conn    *wire.Conn
	stdin   io.WriteCloser
	stderr  *tailBuffer
	replies chan wire.Frame
	dead    chan struct{} // closed when the connection is lost
	err     error         // why; set before dead is closed
	waited  chan struct{} // closed when the remote shell exited
	waitErr error
	enc     *zstd.Encoder
	cur     *remotePass // the pass under way, if any
	curMu   stdsync.Mutex
}

// remoteCommand returns the command line that starts the receiver: the
// remote shell, the login, and the receiver's command, quoted for the
// remote host's shell.
func remoteCommand(r Remote, ro RemoteOptions, tsNew map[string]string) ([]string, error) {
	rsh, err := shellquote.Split(ro.Rsh)
	if err != nil || len(rsh) == 0 {
		return nil, inputErr("give the remote shell as a command line, e.g. --rsh 'ssh -p 2222'", "invalid --rsh %q", ro.Rsh)
	}
	words := []string{"receive"}
	for _, oid := range sortedKeys(tsNew) {
		words = append(words, "--tablespace", oid+"="+tsNew[oid])
	}
	words = append(words, "--", r.Path)
	return append(rsh, r.login(), ro.RemotePath+" "+shellquote.Join(words...)), nil
}

// dialRemote starts the receiver for r and says hello.
func dialRemote(ctx context.Context, r Remote, o *Options, tsNew map[string]string) (dest, error) {
	ro := o.Remote
	if ro.Rsh == "" {
		ro.Rsh = DefaultRsh
	}
	if ro.RemotePath == "" {
		ro.RemotePath = DefaultRemotePath
	}
	switch {
	case r.Path == "":
		return nil, inputErr("give the directory on the other host: [user@]host:/path/to/copy", "DEST %s names no directory", o.Dest)
	case !strings.HasPrefix(r.Path, "/"):
		return nil, inputErr("give an absolute path on the other host: [user@]host:/path/to/copy", "DEST %s: the path on %s must be absolute", o.Dest, r.Host)
	}
	args, err := remoteCommand(r, ro, tsNew)
	if err != nil {
		return nil, err
	}
	d := &remoteDest{r: r, ro: ro, obs: o.Observer, args: args, stderr: newTailBuffer(4096, ro.Stderr),
		replies: make(chan wire.Frame, 64), dead: make(chan struct{}), waited: make(chan struct{})}
	d.cmd = exec.Command(args[0], args[1:]...)
	// Its own process group: a ^C reaches pgtwopass, which ends the session
	// cleanly, not the remote shell in the middle of a frame.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.cmd.Stderr = d.stderr
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, inputErr("install a remote shell, or name one with --rsh", "cannot start the remote shell %q: %v", args[0], err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.waited)
	}()
	d.conn = wire.NewConn(stdout, d.stdin)
	if ro.BWLimit > 0 {
		burst := 256 << 10
		lim := ratelimit.NewLimiter(ratelimit.Limit(ro.BWLimit), burst)
		d.conn.Throttle = func(n int) {
			for n > 0 {
				k := min(n, burst)
				lim.WaitN(context.Background(), k)
				n -= k
			}
		}
	}
	if ro.Compress {
		if d.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
			d.kill()
			return nil, err
		}
	}
	if err := d.hello(ctx); err != nil {
		d.kill()
		return nil, err
	}
	go d.readLoop()
	return d, nil
}

func (d *remoteDest) String() string { return d.r.String() }

// hello exchanges hellos; a receiver that does not answer is described with
// the remote shell's exit status and stderr.
func (d *remoteDest) hello(ctx context.Context) error {
	if err := d.conn.Send(wire.Hello{Magic: wire.Magic, Version: wire.Version, Program: d.ro.Program}); err != nil {
		return d.startFailed(err)
	}
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
		return d.startFailed(res.err)
	}
	dec := wire.NewDecoder(res.f.Payload)
	h := wire.DecodeHello(dec)
	if res.f.Type != wire.THello || dec.Err() != nil || h.Magic != wire.Magic {
		return fmt.Errorf("the receiver on %s did not say hello (is %q pgtwopass?)", d.r.Host, d.ro.RemotePath)
	}
	if h.Version != wire.Version {
		return inputErr("install the same pgtwopass on both hosts",
			"the receiver on %s (%s) speaks protocol version %d, this pgtwopass (%s) speaks %d", d.r.Host, h.Program, h.Version, d.ro.Program, wire.Version)
	}
	return nil
}

func (d *remoteDest) startFailed(err error) error {
	select {
	case <-d.waited:
	case <-time.After(5 * time.Second):
	}
	what := fmt.Sprintf("the receiver on %s did not answer (%v)", d.r.Host, err)
	select {
	case <-d.waited:
		if d.waitErr != nil {
			what = fmt.Sprintf("the receiver on %s did not start: %s exited with %v", d.r.Host, d.args[0], d.waitErr)
		}
	default:
	}
	if tail := d.stderr.tail(); tail != "" {
		what += ": " + tail
	}
	return inputErr(fmt.Sprintf("check that %s reaches %s and that %q runs pgtwopass there (--rsh, --remote-path)", d.args[0], d.r.Host, d.ro.RemotePath), "%s", what)
}

// readLoop reads the receiver's frames: events go to the observer, bases to
// the pass under way, everything else to the replies. It never blocks on
// the pass (the receiver sends no more bases than the pass takes in flight),
// so the receiver can always write.
func (d *remoteDest) readLoop() {
	var err error
	var pending *wire.Basis // a basis whose hashes span several frames
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
			var b *basis
			if f.Type == wire.TBasis {
				m := wire.DecodeBasis(dec)
				if err = dec.Err(); err != nil {
					break
				}
				if pending != nil {
					if m.ID != pending.ID {
						err = fmt.Errorf("%w: the hashes of file %d interrupted by file %d", wire.ErrCorrupt, pending.ID, m.ID)
						break
					}
					pending.Hashes = append(pending.Hashes, m.Hashes...)
					pending.More = m.More
				} else {
					pending = &m
				}
				if pending.More {
					continue
				}
				b = &basis{ID: pending.ID, Index: int(pending.Index), Rel: pending.Rel, Size: pending.Size, Hashes: fromWireHashes(pending.Hashes)}
				pending = nil
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
func (d *remoteDest) deliver(b *basis) error {
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
	mu     stdsync.Mutex
	q      []*basis
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

func (bq *basisQueue) push(b *basis) error {
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

// pop returns the next basis, nil and true at the end, or false while there
// is none yet.
func (bq *basisQueue) pop() (*basis, bool) {
	bq.mu.Lock()
	defer bq.mu.Unlock()
	if len(bq.q) > 0 {
		b := bq.q[0]
		bq.q[0] = nil
		bq.q = bq.q[1:]
		if len(bq.q) > 0 || bq.closed {
			bq.signal()
		}
		return b, true
	}
	return nil, bq.closed
}

// lost records why the connection ended, once the remote shell exited.
func (d *remoteDest) lost(err error) {
	select {
	case <-d.waited:
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
	case <-d.waited:
		if d.waitErr != nil {
			what += fmt.Sprintf("; the remote shell exited with %v", d.waitErr)
		}
	default:
	}
	if tail := d.stderr.tail(); tail != "" {
		what += ": " + tail
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
func (d *remoteDest) reply(ctx context.Context, want wire.Type) (*wire.Decoder, error) {
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
func (d *remoteDest) nextReply(ctx context.Context) (wire.Frame, error) {
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
func callFor[T any](ctx context.Context, d *remoteDest, m wire.Message, want wire.Type, decode func(*wire.Decoder) T) (T, error) {
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
func (d *remoteDest) call(ctx context.Context, m wire.Message, want wire.Type) (*wire.Decoder, error) {
	if err := d.send(m); err != nil {
		return nil, err
	}
	return d.reply(ctx, want)
}

func (d *remoteDest) send(m wire.Message) error {
	if err := d.conn.Send(m); err != nil {
		return d.sendFailed(err)
	}
	return nil
}

// sendFailed explains a failed write: most often the receiver is gone, and
// the reader is about to say why.
func (d *remoteDest) sendFailed(err error) error {
	select {
	case <-d.dead:
		return d.err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("failed to send to the receiver on %s: %w", d.r.Host, err)
	}
}

func (d *remoteDest) open(ctx context.Context, req *openRequest) (*openReply, error) {
	m, err := callFor(ctx, d, wire.Open{SystemIdentifier: req.SystemIdentifier, PGVersion: req.PGVersion, BlockSize: uint32(req.BlockSize),
		DryRun: req.DryRun, ReadOnly: req.ReadOnly, Quick: req.Quick, UID: req.Owner.UID, GID: req.Owner.GID,
		User: req.Owner.User, Group: req.Owner.Group, Tablespaces: req.Tablespaces}, wire.TOpenReply, wire.DecodeOpenReply)
	if err != nil {
		return nil, err
	}
	h, err := fromWireHeader(m.Header)
	if err != nil {
		return nil, err
	}
	rep := &openReply{Header: h, Exists: m.Exists, Owner: ownerIDs{UID: m.UID, GID: m.GID}, AsRoot: m.AsRoot, Tablespaces: map[string]string{}}
	for i := 0; i+1 < len(m.Tablespaces); i += 2 {
		rep.Tablespaces[m.Tablespaces[i]] = m.Tablespaces[i+1]
	}
	return rep, nil
}

func (d *remoteDest) timings(ctx context.Context) serverTimings {
	dec, err := d.call(ctx, wire.Empty(wire.TTimings), wire.TTimingsReply)
	if err != nil {
		return serverTimings{}
	}
	return parseTimings(wire.DecodeBlob(dec))
}

func (d *remoteDest) saveTimings(ctx context.Context, t serverTimings) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	_, err = d.call(ctx, wire.Blob{T: wire.TSaveTimings, Data: b}, wire.TOK)
	return err
}

func (d *remoteDest) status(ctx context.Context) (*CopyStatus, error) {
	m, err := callFor(ctx, d, wire.Empty(wire.TStatus), wire.TStatusReply, wire.DecodeStatusReply)
	if err != nil {
		return nil, err
	}
	h, err := fromWireHeader(m.Header)
	if err != nil {
		return nil, err
	}
	return &CopyStatus{Dest: d.r.login() + ":" + m.Dest, Header: *h, Sealed: m.Sealed}, nil
}

func (d *remoteDest) verifyManifest(ctx context.Context, jobs int, ex excluder) ([]Difference, error) {
	m, err := callFor(ctx, d, wire.Patterns{T: wire.TVerifyManifest, Jobs: uint32(jobs), Excludes: ex}, wire.TDiffs, wire.DecodeDiffs)
	if err != nil {
		return nil, err
	}
	out := []Difference{}
	for _, x := range m.Diffs {
		out = append(out, Difference{Path: x.Path, What: x.What})
	}
	return out, nil
}

func (d *remoteDest) walkCopy(ctx context.Context, ex excluder) ([]entry, error) {
	if err := d.send(wire.Patterns{T: wire.TWalk, Excludes: ex}); err != nil {
		return nil, err
	}
	var out []entry
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

func (d *remoteDest) hashFiles(ctx context.Context, rels []string, bs, jobs int, fn func(string, int64, []manifest.Hash, error) error) error {
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
	var pending *wire.HashReply
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
			if pending != nil {
				if m.Rel != pending.Rel {
					return fmt.Errorf("%w: the hashes of %q interrupted by %q", wire.ErrCorrupt, pending.Rel, m.Rel)
				}
				pending.Hashes = append(pending.Hashes, m.Hashes...)
				pending.More = m.More
			} else {
				pending = &m
			}
			if pending.More {
				continue
			}
			var err error
			if pending.Err != "" {
				err = errors.New(pending.Err)
			}
			if err := fn(pending.Rel, pending.Size, fromWireHashes(pending.Hashes), err); err != nil {
				return err
			}
			pending = nil
		case wire.TError:
			m := wire.DecodeError(dec)
			return fromWireError(d.r, &m)
		default:
			return fmt.Errorf("%w: message type %d among hashes", wire.ErrCorrupt, f.Type)
		}
	}
}

// close says goodbye and waits for the remote shell.
func (d *remoteDest) close() error {
	select {
	case <-d.dead:
	default:
		d.conn.Send(wire.Empty(wire.TBye))
	}
	d.stdin.Close()
	select {
	case <-d.waited:
	case <-time.After(30 * time.Second):
		d.kill()
		<-d.waited
	}
	if d.enc != nil {
		d.enc.Close()
	}
	select {
	case <-d.dead:
		return nil // the error was reported where it happened
	default:
	}
	if d.waitErr != nil {
		return fmt.Errorf("the remote shell for %s exited with %v: %s", d.r.Host, d.waitErr, d.stderr.tail())
	}
	return nil
}

func (d *remoteDest) kill() {
	if d.cmd.Process != nil {
		d.cmd.Process.Kill()
	}
}

// traffic returns the bytes sent to and received from the receiver.
func (d *remoteDest) traffic() (sent, received int64) { return d.conn.Sent(), d.conn.Received() }

// beginPass sends the entries and starts the pass.
func (d *remoteDest) beginPass(ctx context.Context, req *passRequest, entries []entry) (destPass, error) {
	if err := sendEntries(d.conn, entries); err != nil {
		return nil, d.sendFailed(err)
	}
	p := &remotePass{d: d, req: *req, bases: newBasisQueue(), failed: make(chan struct{})}
	d.curMu.Lock()
	d.cur = p
	d.curMu.Unlock()
	_, err := d.call(ctx, wire.Begin{Kind: uint8(req.Kind), BlockSize: uint32(req.BlockSize), DryRun: req.DryRun, Quick: req.Quick,
		QuickMargin: req.QuickMargin, InFlight: uint32(req.InFlight), Quiet: req.Quiet, Jobs: uint32(max(req.Jobs, 1))}, wire.TReady)
	if err != nil {
		d.endPass()
		return nil, err
	}
	return p, nil
}

func (d *remoteDest) endPass() {
	d.curMu.Lock()
	d.cur = nil
	d.curMu.Unlock()
}

// remotePass is a pass whose destination is a receiver on another host.
type remotePass struct {
	// config
	d   *remoteDest
	req passRequest

	// state
	bases   *basisQueue
	ended   bool // under d.curMu: the receiver sent the end of the bases
	failed  chan struct{}
	errOnce stdsync.Once
	err     error
	bufs    stdsync.Pool
}

// fail records the pass's first error (the receiver's, or a lost
// connection): every call of the pass returns it from then on.
func (p *remotePass) fail(err error) {
	p.errOnce.Do(func() {
		p.err = err
		close(p.failed)
	})
}

func (p *remotePass) failure() error {
	select {
	case <-p.failed:
		return p.err
	default:
		return nil
	}
}

func (p *remotePass) next(ctx context.Context) (*basis, error) {
	for {
		if b, ok := p.bases.pop(); ok {
			return b, nil
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

func (p *remotePass) write(id uint64, off int64, data []byte) error {
	if err := p.failure(); err != nil {
		return err
	}
	m := wire.Write{ID: id, Off: off, RawLen: uint32(len(data)), Data: data}
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
	if err := p.d.send(m); err != nil {
		p.fail(err)
		return err
	}
	return nil
}

func (p *remotePass) done(res *fileResult) error {
	if err := p.failure(); err != nil {
		return err
	}
	m := wire.Done{ID: res.ID, Vanished: res.Vanished}
	if !res.Vanished {
		m.Entry, m.Flags, m.CRC32C, m.ReadStart, m.HashesSum = toWireEntry(&res.Entry), res.Flags, res.CRC32C, res.ReadStart, res.HashesSum
	}
	if err := p.d.send(m); err != nil {
		p.fail(err)
		return err
	}
	return nil
}

func (p *remotePass) commit(ctx context.Context, c *commitRequest) (*commitReply, error) {
	defer p.d.endPass()
	if err := p.failure(); err != nil {
		p.abortSession()
		return nil, err
	}
	m, err := callFor(ctx, p.d, wire.Commit{Pass: toWirePass(&c.Pass), BackupManifest: c.BackupManifest, Timeline: c.Timeline,
		CheckpointLSN: c.CheckpointLSN}, wire.TCommitted, wire.DecodeCommitted)
	if err != nil {
		return nil, err
	}
	h, err := fromWireHeader(m.Header)
	if err != nil {
		return nil, err
	}
	return &commitReply{Header: h, FilesSkipped: m.FilesSkipped, FilesChanged: m.FilesChanged, FilesDeleted: m.FilesDeleted, BytesRead: m.BytesRead}, nil
}

// abort ends the pass on the receiver, which then leaves the copy unsealed
// with its old manifest, and waits for it to say so.
func (p *remotePass) abort() {
	defer p.d.endPass()
	p.abortSession()
}

func (p *remotePass) abortSession() {
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

func (d *remoteDest) isDead() bool {
	select {
	case <-d.dead:
		return true
	default:
		return false
	}
}

// tailBuffer passes the remote shell's stderr on, and keeps its end for
// error messages.
type tailBuffer struct {
	mu  stdsync.Mutex
	buf []byte
	max int
	out io.Writer
}

func newTailBuffer(n int, out io.Writer) *tailBuffer { return &tailBuffer{max: n, out: out} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	t.mu.Unlock()
	if t.out != nil {
		t.out.Write(p)
	}
	return len(p), nil
}

func (t *tailBuffer) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 && len(s)-i < 200 {
		// The last lines say the most.
		if j := strings.LastIndexByte(s[:i], '\n'); j >= 0 {
			s = s[j+1:]
		}
	}
	return strings.ReplaceAll(s, "\n", "; ")
}
