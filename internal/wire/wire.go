// Package wire is the protocol that pgtwopass speaks with its receiver on
// another host, over the standard input and output of a remote shell
// (`ssh host pgtwopass receive PATH`). docs/protocol.md specifies it byte by
// byte.
//
// The stream is a sequence of frames, each with its own checksum, so that a
// cut or a corrupted stream is detected and never half-trusted: [Conn.Read]
// returns [ErrCorrupt] for a damaged frame and [io.ErrUnexpectedEOF] for a
// stream cut inside one. The messages are the structs of messages.go; a
// [Decoder] reads their fields with bounds checks, so that no input, hostile
// or broken, makes it panic or allocate without limit.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	stdsync "sync"
	"sync/atomic"

	"github.com/zeebo/xxh3"
)

// Version is the protocol version this package speaks. Both ends must speak
// the same one.
const Version = 3

// Magic opens the hello of both ends.
const Magic = "pgtwopass-wire"

// MaxPayload bounds a frame's payload: a write of up to 16 MiB (the largest
// block size) and its header.
const MaxPayload = 16<<20 + 4096

// frameOverhead is the bytes a frame adds to its payload: type, length,
// checksum.
const frameOverhead = 1 + 4 + 8

var (
	// ErrCorrupt means a frame failed its checksum or is malformed.
	ErrCorrupt = errors.New("corrupt frame")
	// ErrVersion means the other end speaks another protocol version.
	ErrVersion = errors.New("protocol version mismatch")
)

var le = binary.LittleEndian

// Type is a frame's message type.
type Type uint8

// Frame is one frame read from the stream. Payload is valid until the next
// Read.
type Frame struct {
	Type    Type
	Payload []byte
}

// Conn reads and writes frames. Read must be called from one goroutine at a
// time; Write may be called from several.
type Conn struct {
	// config
	br *bufio.Reader
	w  io.Writer
	// Throttle, if set, is called with the size of each frame before it is
	// written (a bandwidth limit).
	Throttle func(n int)

	// state
	wmu      stdsync.Mutex
	bw       *bufio.Writer
	rbuf     []byte
	sent     atomic.Int64
	received atomic.Int64
}

// NewConn returns a Conn reading r and writing w.
func NewConn(r io.Reader, w io.Writer) *Conn {
	return &Conn{br: bufio.NewReaderSize(r, 256<<10), w: w, bw: bufio.NewWriterSize(w, 256<<10)}
}

// Read returns the next frame. At a clean end of the stream (between
// frames) it returns io.EOF; a stream cut inside a frame gives
// io.ErrUnexpectedEOF, a damaged frame an error wrapping ErrCorrupt.
func (c *Conn) Read() (Frame, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c.br, hdr[:1]); err != nil {
		return Frame{}, err
	}
	if _, err := io.ReadFull(c.br, hdr[1:]); err != nil {
		return Frame{}, unexpected(err)
	}
	n := le.Uint32(hdr[1:])
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("%w: payload of %d bytes (type %d)", ErrCorrupt, n, hdr[0])
	}
	if cap(c.rbuf) < int(n)+8 {
		c.rbuf = make([]byte, int(n)+8)
	}
	b := c.rbuf[:int(n)+8]
	if _, err := io.ReadFull(c.br, b); err != nil {
		return Frame{}, unexpected(err)
	}
	h := xxh3.New()
	h.Write(hdr[:])
	h.Write(b[:n])
	if le.Uint64(b[n:]) != h.Sum64() {
		return Frame{}, fmt.Errorf("%w: checksum mismatch (type %d, %d bytes)", ErrCorrupt, hdr[0], n)
	}
	c.received.Add(int64(n) + frameOverhead)
	return Frame{Type: Type(hdr[0]), Payload: b[:n]}, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Write writes one frame and flushes it, with the frames buffered before.
func (c *Conn) Write(t Type, payload []byte) error { return c.write(t, payload, true) }

// write writes one frame, and flushes the buffer if flush is set.
func (c *Conn) write(t Type, payload []byte, flush bool) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("frame of %d bytes exceeds the protocol's %d", len(payload), MaxPayload)
	}
	if c.Throttle != nil {
		c.Throttle(len(payload) + frameOverhead)
	}
	var hdr [5]byte
	hdr[0] = byte(t)
	le.PutUint32(hdr[1:], uint32(len(payload)))
	h := xxh3.New()
	h.Write(hdr[:])
	h.Write(payload)
	var sum [8]byte
	le.PutUint64(sum[:], h.Sum64())
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.bw.Write(hdr[:])
	c.bw.Write(payload)
	if _, err := c.bw.Write(sum[:]); err != nil {
		return err
	}
	c.sent.Add(int64(len(payload)) + frameOverhead)
	if flush {
		return c.bw.Flush()
	}
	return nil
}

// Flush writes the frames buffered.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.bw.Flush()
}

// Message is a message that can be sent in a frame.
type Message interface {
	Type() Type
	Encode(*Encoder)
}

// Send encodes m and writes it as one frame.
func (c *Conn) Send(m Message) error {
	var e Encoder
	m.Encode(&e)
	return c.Write(m.Type(), e.Bytes())
}

// Buffer is Send that leaves the frame in the buffer (up to 256 KiB) until
// the next Send or Flush: many small frames in a row (the bases of small
// files, their ends) then cost one write between them.
func (c *Conn) Buffer(m Message) error {
	var e Encoder
	m.Encode(&e)
	return c.write(m.Type(), e.Bytes(), false)
}

// Sent returns the bytes written so far, framing included.
func (c *Conn) Sent() int64 { return c.sent.Load() }

// Received returns the bytes read so far, framing included.
func (c *Conn) Received() int64 { return c.received.Load() }

// Encoder appends a message's fields, little-endian.
type Encoder struct{ b []byte }

// Bytes returns the encoded message.
func (e *Encoder) Bytes() []byte { return e.b }

func (e *Encoder) U8(v uint8)   { e.b = append(e.b, v) }
func (e *Encoder) U16(v uint16) { e.b = le.AppendUint16(e.b, v) }
func (e *Encoder) U32(v uint32) { e.b = le.AppendUint32(e.b, v) }
func (e *Encoder) U64(v uint64) { e.b = le.AppendUint64(e.b, v) }
func (e *Encoder) I64(v int64)  { e.b = le.AppendUint64(e.b, uint64(v)) }
func (e *Encoder) Bool(v bool) {
	if v {
		e.U8(1)
	} else {
		e.U8(0)
	}
}

// Bytes32 appends a byte string with a 4-byte length.
func (e *Encoder) Bytes32(v []byte) {
	e.U32(uint32(len(v)))
	e.b = append(e.b, v...)
}

// String appends a string with a 4-byte length.
func (e *Encoder) String(v string) {
	e.U32(uint32(len(v)))
	e.b = append(e.b, v...)
}

// Decoder reads a message's fields. The first error sticks: later reads
// return zero values, and Err reports it.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a Decoder of payload.
func NewDecoder(payload []byte) *Decoder { return &Decoder{b: payload} }

// Err returns the first error, or an error if bytes are left over: a
// message must be read whole.
func (d *Decoder) Err() error {
	if d.err == nil && len(d.b) > 0 {
		return fmt.Errorf("%w: %d bytes after the message", ErrCorrupt, len(d.b))
	}
	return d.err
}

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: message ends early", ErrCorrupt)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// Fail makes the decoding fail with a message about the contents.
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *Decoder) U8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *Decoder) U16() uint16 {
	if b := d.take(2); b != nil {
		return le.Uint16(b)
	}
	return 0
}

func (d *Decoder) U32() uint32 {
	if b := d.take(4); b != nil {
		return le.Uint32(b)
	}
	return 0
}

func (d *Decoder) U64() uint64 {
	if b := d.take(8); b != nil {
		return le.Uint64(b)
	}
	return 0
}

func (d *Decoder) I64() int64 { return int64(d.U64()) }

func (d *Decoder) Bool() bool {
	switch v := d.U8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.Fail("boolean %d", v)
		return false
	}
}

// Bytes32 reads a byte string with a 4-byte length. The result aliases the
// payload.
func (d *Decoder) Bytes32() []byte {
	n := d.U32()
	if d.err != nil {
		return nil
	}
	return d.take(int(min(n, uint32(len(d.b)+1))))
}

// String reads a string with a 4-byte length.
func (d *Decoder) String() string { return string(d.Bytes32()) }

// Count reads a count of items of at least minSize bytes each, and fails
// when the rest of the message cannot hold them: no allocation can exceed
// the payload.
func (d *Decoder) Count(minSize int) int {
	n := d.U32()
	if d.err != nil {
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if uint64(n)*uint64(minSize) > uint64(len(d.b)) {
		d.Fail("%d items cannot fit in %d bytes", n, len(d.b))
		return 0
	}
	return int(n)
}
