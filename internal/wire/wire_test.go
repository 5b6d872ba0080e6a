package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// sample holds one message of every kind, with every field set.
func sample() []Message {
	h := &manifest.Header{Flags: 1, BlockSize: 8192, SystemIdentifier: 7311111111111111111, PGVersion: "15", Created: 1, Files: 2, Bytes: 3,
		Passes: []manifest.Pass{{Kind: 1, Started: 1, Finished: 2, BytesRead: 3, BytesWritten: 4, FilesChanged: 5, FilesDeleted: 6, ReadNs: 7, WriteNs: 8}}}
	e := Entry{Rel: "base/1/16384", Kind: EntryFile, Mode: 0o600, UID: 105, GID: 106, Size: 8192, Mtime: 1, Ctime: 2, Atime: 3, Inode: 4}
	return []Message{
		Hello{Magic: Magic, Version: Version, Program: "pgtwopass test"},
		Error{Kind: ErrKindInput, What: "DEST is not empty", Hint: "give an empty directory"},
		Open{SystemIdentifier: 1, PGVersion: "15", BlockSize: 8192, DryRun: true, Quick: true, UID: 1, GID: 2, User: "postgres", Group: "postgres", Tablespaces: []string{"16384"},
			MkPath: true, AllowStarted: true, BootID: "b", Reads: []Place{{What: "SRC", Path: "/srv/pg", Self: FileID{1, 2}, Up: []FileID{{1, 2}, {1, 1}}}}},
		OpenReply{Header: h, Exists: true, UID: 1, GID: 2, AsRoot: true, Tablespaces: []string{"16384", "/srv/ts"}},
		Entries{Entries: []Entry{e, {Rel: "pg_wal", Kind: EntryDir, Mode: 0o700}, {Rel: "link", Kind: EntrySymlink, Mode: 0o777, Target: "/etc"}}},
		Begin{Kind: 2, BlockSize: 8192, DryRun: true, Quick: true, QuickMargin: 2e9, InFlight: 6, Quiet: true, Jobs: 2},
		Basis{ID: 7, Index: 3, Rel: "base/1/16384", Size: 8192, More: true, Hashes: []manifest.Hash{{1}, {2}}},
		Write{ID: 7, Off: 8192, RawLen: 3, Data: []byte("abc")},
		Done{ID: 7, Entry: e, Flags: 1, CRC32C: 2, ReadStart: 3, HashesSum: 4},
		Commit{Pass: h.Passes[0], BackupManifest: true, Timeline: "1", CheckpointLSN: "0/15D7A28"},
		Committed{Header: h, FilesSkipped: 1, FilesChanged: 2, FilesDeleted: 3, BytesRead: 4},
		Event{Kind: 3, Pass: 1, Msg: "the manifest is damaged", Path: ".pgtwopass"},
		Blob{T: TSaveTimings, Data: []byte(`{"stop_seconds":1}`)},
		Empty(TReady),
		StatusReply{Dest: "/srv/copy", Header: h, Sealed: true, RanSinceSeal: true, Running: true, PID: 7},
		Patterns{T: TWalk, Jobs: 2, Excludes: []string{"postmaster.pid"}},
		Diffs{Diffs: []Diff{{"base/1/1", "1 block(s) differ"}}},
		HashFiles{BlockSize: 8192, Jobs: 2, More: true, Rels: []string{"a", "b"}},
		HashReply{Rel: "a", Size: 1, Err: "gone", More: true, Hashes: []manifest.Hash{{9}}},
	}
}

// decode decodes a payload as the message type t says, as the receiver and
// the sender do.
func decode(t Type, p []byte) (any, error) {
	d := NewDecoder(p)
	var m any
	switch t {
	case THello:
		m = DecodeHello(d)
	case TError:
		m = DecodeError(d)
	case TOpen:
		m = DecodeOpen(d)
	case TOpenReply:
		m = DecodeOpenReply(d)
	case TEntries:
		m = DecodeEntries(d)
	case TBegin:
		m = DecodeBegin(d)
	case TBasis:
		m = DecodeBasis(d)
	case TWrite:
		m = DecodeWrite(d)
	case TDone:
		m = DecodeDone(d)
	case TCommit:
		m = DecodeCommit(d)
	case TCommitted:
		m = DecodeCommitted(d)
	case TEvent:
		m = DecodeEvent(d)
	case TTimingsReply, TSaveTimings:
		m = Blob{T: t, Data: DecodeBlob(d)}
	case TStatusReply:
		m = DecodeStatusReply(d)
	case TWalk, TVerifyManifest:
		mm := DecodePatterns(d)
		mm.T = t
		m = mm
	case TDiffs:
		m = DecodeDiffs(d)
	case THash:
		m = DecodeHashFiles(d)
	case THashReply:
		m = DecodeHashReply(d)
	default:
		m = Empty(t)
	}
	return m, d.Err()
}

func TestEveryMessageRoundTrips(t *testing.T) {
	var buf bytes.Buffer
	c := NewConn(&buf, &buf)
	msgs := sample()
	for _, m := range msgs {
		if err := c.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range msgs {
		f, err := c.Read()
		if err != nil {
			t.Fatalf("reading %T back: %v", want, err)
		}
		if f.Type != want.Type() {
			t.Fatalf("frame type %d, want %d (%T)", f.Type, want.Type(), want)
		}
		got, err := decode(f.Type, f.Payload)
		if err != nil {
			t.Fatalf("%T does not decode: %v", want, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Errorf("a message must decode to what was encoded:\n got %#v\nwant %#v", got, want)
		}
	}
	if _, err := c.Read(); err != io.EOF {
		t.Errorf("a stream that ends between frames ends with io.EOF, got %v", err)
	}
	if c.Sent() != c.Received() || c.Sent() == 0 {
		t.Errorf("the bytes counted as sent (%d) and received (%d) must be those of the frames", c.Sent(), c.Received())
	}
}

// normalize makes empty and nil slices compare equal.
func normalize(m any) any {
	switch v := m.(type) {
	case Open:
		if len(v.Tablespaces) == 0 {
			v.Tablespaces = nil
		}
		return v
	}
	return m
}

// stream returns the frames of sample() as bytes.
func stream(t testing.TB) []byte {
	var buf bytes.Buffer
	c := NewConn(nil, &buf)
	for _, m := range sample() {
		if err := c.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestEveryTruncationIsDetected(t *testing.T) {
	b := stream(t)
	ends := map[int]bool{}
	var buf bytes.Buffer
	c := NewConn(nil, &buf)
	for _, m := range sample() {
		c.Send(m)
		ends[buf.Len()] = true
	}
	for n := 1; n < len(b); n++ {
		c := NewConn(bytes.NewReader(b[:n]), nil)
		var err error
		for err == nil {
			_, err = c.Read()
		}
		switch {
		case ends[n] && err != io.EOF:
			t.Fatalf("a stream cut between frames (at %d) ends with io.EOF, got %v", n, err)
		case !ends[n] && err != io.ErrUnexpectedEOF:
			t.Fatalf("a stream cut inside a frame (at %d of %d) must end with io.ErrUnexpectedEOF, never a frame, got %v", n, len(b), err)
		}
	}
}

func TestEveryBitFlipIsDetected(t *testing.T) {
	b := stream(t)
	for i := range len(b) * 8 {
		bad := bytes.Clone(b)
		bad[i/8] ^= 1 << (i % 8)
		c := NewConn(bytes.NewReader(bad), nil)
		frames := 0
		var err error
		for {
			if _, err = c.Read(); err != nil {
				break
			}
			frames++
		}
		if frames == len(sample()) || err == io.EOF {
			t.Fatalf("flipping bit %d of the stream must not go unnoticed: %d frames read, then %v", i, frames, err)
		}
	}
}

func TestOversizedFrameIsRefusedBeforeAllocating(t *testing.T) {
	b := []byte{byte(TWrite), 0xff, 0xff, 0xff, 0x7f}
	_, err := NewConn(bytes.NewReader(b), nil).Read()
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("a frame longer than MaxPayload must be refused as corrupt, got %v", err)
	}
	c := NewConn(nil, io.Discard)
	if err := c.Write(TWrite, make([]byte, MaxPayload+1)); err == nil {
		t.Errorf("writing a frame longer than MaxPayload must fail")
	}
}

func TestCountsCannotExceedThePayload(t *testing.T) {
	var e Encoder
	e.U32(1 << 30) // a billion entries, in a 4-byte message
	if _, err := decode(TEntries, e.Bytes()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a count that the message cannot hold must be refused before allocating, got %v", err)
	}
	var w Encoder
	Write{ID: 1, Off: -8192, RawLen: 1, Data: []byte("x")}.Encode(&w)
	if _, err := decode(TWrite, w.Bytes()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a write at a negative offset must be refused, got %v", err)
	}
	var x Encoder
	Entries{Entries: []Entry{{Rel: "a", Kind: 'x'}}}.Encode(&x)
	if _, err := decode(TEntries, x.Bytes()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("an entry of an unknown kind must be refused, got %v", err)
	}
	var y Encoder
	Hello{Magic: Magic}.Encode(&y)
	y.U8(0)
	if _, err := decode(THello, y.Bytes()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bytes after a message must be refused, got %v", err)
	}
}

// FuzzFrames feeds arbitrary bytes to the frame reader and every message
// decoder: no input may make them panic, allocate beyond the payload, or
// decode a frame whose checksum fails.
func FuzzFrames(f *testing.F) {
	f.Add(stream(f))
	for _, m := range sample() {
		var e Encoder
		m.Encode(&e)
		f.Add(append([]byte{byte(m.Type())}, e.Bytes()...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewConn(bytes.NewReader(b), nil)
		for {
			fr, err := c.Read()
			if err != nil {
				break
			}
			decode(fr.Type, fr.Payload)
		}
		// The same bytes as a payload of every type.
		if len(b) > 0 {
			decode(Type(b[0]), b[1:])
		}
	})
}

// TestTypesAreDistinct: every message type has a number of its own; two
// types with one number would read one message as the other.
func TestTypesAreDistinct(t *testing.T) {
	seen := map[Type]string{}
	for name, typ := range map[string]Type{
		"THello":          THello,
		"TError":          TError,
		"TOpen":           TOpen,
		"TOpenReply":      TOpenReply,
		"TEntries":        TEntries,
		"TBegin":          TBegin,
		"TReady":          TReady,
		"TBasis":          TBasis,
		"TEndBases":       TEndBases,
		"TWrite":          TWrite,
		"TDone":           TDone,
		"TCommit":         TCommit,
		"TCommitted":      TCommitted,
		"TAbort":          TAbort,
		"TEvent":          TEvent,
		"TTimings":        TTimings,
		"TTimingsReply":   TTimingsReply,
		"TSaveTimings":    TSaveTimings,
		"TOK":             TOK,
		"TStatus":         TStatus,
		"TStatusReply":    TStatusReply,
		"TVerifyManifest": TVerifyManifest,
		"TDiffs":          TDiffs,
		"TWalk":           TWalk,
		"TEndEntries":     TEndEntries,
		"THash":           THash,
		"THashReply":      THashReply,
		"TEndHashes":      TEndHashes,
		"TDetach":         TDetach,
		"TBye":            TBye,
	} {
		if other, ok := seen[typ]; ok {
			t.Errorf("message types %s and %s share the number %d", name, other, typ)
		}
		seen[typ] = name
	}
}

// countingWriter counts the writes that reach it.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestBufferedFramesGoOutTogetherInOrder(t *testing.T) {
	var w countingWriter
	c := NewConn(nil, &w)
	for i := range 100 {
		if err := c.Buffer(Done{ID: uint64(i), Entry: Entry{Kind: EntryFile}}); err != nil {
			t.Fatal(err)
		}
	}
	if w.writes != 0 {
		t.Fatalf("buffered frames must wait for Flush: %d writes", w.writes)
	}
	if err := c.Send(Empty(TEndBases)); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Fatalf("a Send writes the frames buffered before it with its own, in one write: %d writes", w.writes)
	}
	c.Buffer(Empty(TOK))
	if err := c.Flush(); err != nil || w.writes != 2 {
		t.Fatalf("Flush writes what is buffered: %v, %d writes", err, w.writes)
	}
	r := NewConn(bytes.NewReader(w.Bytes()), nil)
	for i := range 100 {
		f, err := r.Read()
		if err != nil || f.Type != TDone {
			t.Fatalf("frame %d: %v %v", i, f.Type, err)
		}
		if m := DecodeDone(NewDecoder(f.Payload)); m.ID != uint64(i) {
			t.Fatalf("frame %d carries file %d: the order of the frames is kept", i, m.ID)
		}
	}
	for _, want := range []Type{TEndBases, TOK} {
		if f, err := r.Read(); err != nil || f.Type != want {
			t.Fatalf("got %v %v, want %v", f.Type, err, want)
		}
	}
}
