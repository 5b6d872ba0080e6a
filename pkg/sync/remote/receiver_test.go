package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/wire"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// A receiver driven by hand-made frames, as a broken or hostile sender
// would send them: it must write nothing outside its directory, answer
// every bad frame with an error, and never panic.

type testSender struct {
	t    *testing.T
	c    *wire.Conn
	done chan error
	out  io.Closer
}

func startReceiver(t *testing.T, dir string, ts map[string]string) *testSender {
	t.Helper()
	sr, sw := io.Pipe() // sender -> receiver
	rr, rw := io.Pipe() // receiver -> sender
	s := &testSender{t: t, c: wire.NewConn(rr, sw), done: make(chan error, 1), out: sw}
	go func() {
		err := Receive(context.Background(), sr, rw, ReceiveOptions{Dir: dir, Tablespaces: ts, Program: "test"})
		rw.Close()
		sr.Close()
		s.done <- err
	}()
	t.Cleanup(func() {
		sw.Close()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("the receiver must end when the sender's stream ends")
		}
	})
	s.send(wire.Hello{Magic: wire.Magic, Version: wire.Version, Program: "test sender"})
	s.expect(wire.THello)
	return s
}

func (s *testSender) send(m wire.Message) {
	s.t.Helper()
	if err := s.c.Send(m); err != nil {
		s.t.Fatalf("send %T: %v", m, err)
	}
}

// next returns the next frame that is not an event.
func (s *testSender) next() wire.Frame {
	s.t.Helper()
	for {
		f, err := s.c.Read()
		if err != nil {
			s.t.Fatalf("reading from the receiver: %v", err)
		}
		if f.Type != wire.TEvent {
			return f
		}
	}
}

func (s *testSender) expect(t wire.Type) wire.Frame {
	s.t.Helper()
	f := s.next()
	if f.Type != t {
		what := ""
		if f.Type == wire.TError {
			what = wire.DecodeError(wire.NewDecoder(f.Payload)).What
		}
		s.t.Fatalf("the receiver answered with message type %d (%s), want %d", f.Type, what, t)
	}
	return f
}

// expectError waits for a TError and returns its text.
func (s *testSender) expectError(why string) string {
	s.t.Helper()
	for {
		f := s.next()
		switch f.Type {
		case wire.TError:
			return wire.DecodeError(wire.NewDecoder(f.Payload)).What
		case wire.TBasis, wire.TEndBases:
			continue
		}
		s.t.Fatalf("%s: the receiver must answer with an error, got message type %d", why, f.Type)
	}
}

const testSys = 7311111111111111111

func (s *testSender) open() {
	s.t.Helper()
	s.send(wire.Open{SystemIdentifier: testSys, PGVersion: "15", BlockSize: 8192})
	s.expect(wire.TOpenReply)
}

func dirEntry(rel string) wire.Entry {
	return wire.Entry{Rel: rel, Kind: wire.EntryDir, Mode: 0o700, Mtime: 1e18}
}
func fileEntry(rel string, size int64) wire.Entry {
	return wire.Entry{Rel: rel, Kind: wire.EntryFile, Mode: 0o600, Size: size, Mtime: 1e18, Inode: 1}
}

func (s *testSender) begin(entries ...wire.Entry) {
	s.t.Helper()
	s.send(wire.Entries{Entries: entries})
	s.send(wire.Begin{Kind: uint8(manifest.Live), BlockSize: 8192, InFlight: 4, Jobs: 1})
}

// outsideUnchanged fails the test if anything appeared in dir.
func outsideUnchanged(t *testing.T, dir string) {
	t.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n.Name() != "keep" {
			t.Errorf("a sender must not write outside the receiver's directory, but %s appeared", filepath.Join(dir, n.Name()))
		}
	}
}

func receiverDirs(t *testing.T) (dest, outside string) {
	base := t.TempDir()
	dest, outside = filepath.Join(base, "copy"), filepath.Join(base, "outside")
	must(t, os.Mkdir(outside, 0o700))
	must(t, os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o600))
	return dest, outside
}

func TestReceiverCopiesAFileSentByHand(t *testing.T) {
	dest, _ := receiverDirs(t)
	s := startReceiver(t, dest, nil)
	s.open()
	data := []byte("15\n")
	s.begin(dirEntry(""), fileEntry("PG_VERSION", int64(len(data))))
	s.expect(wire.TReady)
	b := wire.DecodeBasis(wire.NewDecoder(s.expect(wire.TBasis).Payload))
	if b.Rel != "PG_VERSION" || b.Size != -1 {
		t.Fatalf("the receiver asks for the new file PG_VERSION with no basis, got %q size %d", b.Rel, b.Size)
	}
	s.send(wire.Write{ID: b.ID, RawLen: uint32(len(data)), Data: data})
	s.send(wire.Done{ID: b.ID, Entry: fileEntry("PG_VERSION", int64(len(data))), HashesSum: pass.HashesSum([]manifest.Hash{manifest.HashBlock(data)})})
	s.expect(wire.TEndBases)
	s.send(wire.Commit{})
	s.expect(wire.TCommitted)
	got, err := os.ReadFile(filepath.Join(dest, "PG_VERSION"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the receiver writes the blocks it is sent: got %q, %v", got, err)
	}
}

func TestReceiverRefusesPathsOutsideItsDirectory(t *testing.T) {
	for _, rel := range []string{"../outside/x", "/etc/x", "a/../../x", "./a", "a//b", ".pgtwopass/manifest", ".pgtwopass"} {
		t.Run(rel, func(t *testing.T) {
			dest, outside := receiverDirs(t)
			s := startReceiver(t, dest, nil)
			s.open()
			s.begin(dirEntry(""), fileEntry(rel, 3))
			if msg := s.expectError("an entry " + rel); !strings.Contains(msg, "refusing entry") {
				t.Errorf("an entry %q is refused as not below the data directory, got %q", rel, msg)
			}
			outsideUnchanged(t, outside)
			if _, err := os.Stat(filepath.Join(dest, ".pgtwopass", "pg_control")); err == nil {
				t.Errorf("a refused pass writes nothing of pgtwopass's own")
			}
		})
	}
}

func TestReceiverDoesNotFollowSymlinksOut(t *testing.T) {
	dest, outside := receiverDirs(t)
	s := startReceiver(t, dest, nil)
	s.open()
	// A link to the outside, then a file "through" it; the same through an
	// unmapped tablespace link.
	link := wire.Entry{Rel: "link", Kind: wire.EntrySymlink, Mode: 0o777, Target: outside}
	s.begin(dirEntry(""), link, fileEntry("link/x", 3))
	s.expect(wire.TReady)
	msg := s.expectError("a file below a symlink to the outside")
	if !strings.Contains(msg, "link/x") {
		t.Errorf("the error names the file, got %q", msg)
	}
	outsideUnchanged(t, outside)
	s.send(wire.Empty(wire.TAbort))
	s.expect(wire.TOK)

	ts := wire.Entry{Rel: "pg_tblspc/999", Kind: wire.EntrySymlink, Mode: 0o777, Target: outside}
	s.begin(dirEntry(""), dirEntry("pg_tblspc"), ts, fileEntry("pg_tblspc/999/x", 3))
	s.expect(wire.TReady)
	s.expectError("a file below a tablespace link that the receiver's command line does not map")
	outsideUnchanged(t, outside)
}

func TestReceiverRefusesBrokenStreams(t *testing.T) {
	cases := []struct {
		name string
		act  func(s *testSender, id uint64)
	}{
		{"a write to a file not in flight", func(s *testSender, id uint64) {
			s.send(wire.Write{ID: id + 100, RawLen: 3, Data: []byte("abc")})
		}},
		{"a write off a block boundary", func(s *testSender, id uint64) {
			s.send(wire.Write{ID: id, Off: 5, RawLen: 3, Data: []byte("abc")})
		}},
		{"an end whose hashes do not match the blocks sent", func(s *testSender, id uint64) {
			s.send(wire.Write{ID: id, RawLen: 3, Data: []byte("abc")})
			s.send(wire.Done{ID: id, Entry: fileEntry("f", 3), HashesSum: 42})
		}},
		{"an end with blocks missing", func(s *testSender, id uint64) {
			s.send(wire.Done{ID: id, Entry: fileEntry("f", 3), HashesSum: pass.HashesSum([]manifest.Hash{manifest.HashBlock([]byte("abc"))})})
		}},
		{"an end for another file", func(s *testSender, id uint64) {
			s.send(wire.Write{ID: id, RawLen: 3, Data: []byte("abc")})
			s.send(wire.Done{ID: id, Entry: fileEntry("g", 3), HashesSum: pass.HashesSum([]manifest.Hash{manifest.HashBlock([]byte("abc"))})})
		}},
		{"a compressed write that is not zstd", func(s *testSender, id uint64) {
			s.send(wire.Write{ID: id, Compressed: true, RawLen: 3, Data: []byte("not zstd")})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest, outside := receiverDirs(t)
			s := startReceiver(t, dest, nil)
			s.open()
			s.begin(dirEntry(""), fileEntry("f", 3))
			s.expect(wire.TReady)
			b := wire.DecodeBasis(wire.NewDecoder(s.expect(wire.TBasis).Payload))
			tc.act(s, b.ID)
			s.expectError(tc.name)
			// The sender gives up: the pass is not committed.
			s.send(wire.Empty(wire.TAbort))
			for f := s.next(); f.Type != wire.TOK; f = s.next() {
			}
			if _, err := os.Stat(filepath.Join(dest, "global", "pg_control")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: the copy stays unsealed", tc.name)
			}
			h, err := manifest.ReadHeader(filepath.Join(dest, ".pgtwopass", "manifest"))
			if err != nil || h.Files != 0 {
				t.Errorf("%s: an aborted pass leaves the manifest that vouches for nothing (%d files, %v)", tc.name, h.Files, err)
			}
			outsideUnchanged(t, outside)
		})
	}
}

func TestReceiverRefusesACommitBeforeTheEnd(t *testing.T) {
	dest, _ := receiverDirs(t)
	s := startReceiver(t, dest, nil)
	s.open()
	var entries []wire.Entry
	entries = append(entries, dirEntry(""))
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		entries = append(entries, fileEntry(n, 3))
	}
	s.begin(entries...)
	s.expect(wire.TReady)
	s.expect(wire.TBasis)
	s.send(wire.Commit{})
	if msg := s.expectError("a commit before the files are done"); !strings.Contains(msg, "commit") {
		t.Errorf("a commit before the end of the files is refused, got %q", msg)
	}
}

func TestReceiverRefusesAnotherProtocolVersion(t *testing.T) {
	dest, _ := receiverDirs(t)
	sr, sw := io.Pipe()
	rr, rw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Receive(context.Background(), sr, rw, ReceiveOptions{Dir: dest, Program: "test"})
		rw.Close()
	}()
	c := wire.NewConn(rr, sw)
	c.Send(wire.Hello{Magic: wire.Magic, Version: wire.Version + 1, Program: "future"})
	c.Read() // its hello
	f, err := c.Read()
	if err != nil || f.Type != wire.TError {
		t.Fatalf("a sender of another protocol version gets an error, got type %d, %v", f.Type, err)
	}
	if msg := wire.DecodeError(wire.NewDecoder(f.Payload)).What; !strings.Contains(msg, "install the same pgtwopass") {
		t.Errorf("the version error says what to do, got %q", msg)
	}
	sw.Close()
	if err := <-done; !errors.Is(err, wire.ErrVersion) {
		t.Errorf("the receiver ends the session on a version mismatch, got %v", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused session creates nothing")
	}
}

// FuzzReceive drives a receiver with arbitrary frames after a valid hello
// and open: it must never panic, hang, or write outside its directory.
func FuzzReceive(f *testing.F) {
	seed := func(ms ...wire.Message) []byte {
		var buf bytes.Buffer
		c := wire.NewConn(nil, &buf)
		for _, m := range ms {
			c.Send(m)
		}
		return buf.Bytes()
	}
	data := []byte("15\n")
	hs := pass.HashesSum([]manifest.Hash{manifest.HashBlock(data)})
	f.Add(seed(wire.Entries{Entries: []wire.Entry{dirEntry(""), fileEntry("PG_VERSION", 3)}},
		wire.Begin{Kind: 1, BlockSize: 8192, InFlight: 4, Jobs: 1},
		wire.Write{ID: 1, RawLen: 3, Data: data}, wire.Done{ID: 1, Entry: fileEntry("PG_VERSION", 3), HashesSum: hs},
		wire.Commit{}, wire.Empty(wire.TStatus), wire.Patterns{T: wire.TWalk}, wire.HashFiles{BlockSize: 8192, Rels: []string{"PG_VERSION"}}))
	f.Add(seed(wire.Entries{Entries: []wire.Entry{dirEntry(""), {Rel: "l", Kind: wire.EntrySymlink, Target: "/"}, fileEntry("l/etc/passwd", 3)}},
		wire.Begin{Kind: 2, BlockSize: 8192, InFlight: 1, Jobs: 1}, wire.Write{ID: 1, RawLen: 3, Data: data}))
	f.Add(seed(wire.HashFiles{BlockSize: 8192, Rels: []string{"../../etc/passwd"}}, wire.Patterns{T: wire.TVerifyManifest, Jobs: 1}))
	// Files of up to 64 MiB: enough for every path through the receiver,
	// and quick to hash.
	maxFileSize = 64 << 20
	f.Fuzz(func(t *testing.T, frames []byte) {
		base := t.TempDir()
		dest, outside := filepath.Join(base, "copy"), filepath.Join(base, "outside")
		must(t, os.Mkdir(outside, 0o700))
		var in bytes.Buffer
		c := wire.NewConn(nil, &in)
		c.Send(wire.Hello{Magic: wire.Magic, Version: wire.Version})
		c.Send(wire.Open{SystemIdentifier: testSys, PGVersion: "15", BlockSize: 8192})
		in.Write(frames)
		done := make(chan error, 1)
		go func() { done <- Receive(context.Background(), &in, io.Discard, ReceiveOptions{Dir: dest}) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("the receiver must end when its input ends")
		}
		if names, _ := os.ReadDir(outside); len(names) != 0 {
			t.Fatalf("a sender wrote outside the receiver's directory: %v", names)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// walPassFrames sets up a copy of base/1/5 (three blocks) and pg_control
// by a live pass, then begins a WAL-guided cold pass in which the WAL names
// block 1 of base/1/5, and returns the basis the receiver sends of it, the
// file read in part, after sending pg_control whole.
func walPassFrames(t *testing.T, s *testSender, blocks [3][]byte) wire.Basis {
	t.Helper()
	control := make([]byte, 8192)
	binary.NativeEndian.PutUint64(control, testSys)
	files := map[string][]byte{"base/1/5": bytes.Join(blocks[:], nil), "global/pg_control": control}
	entries := []wire.Entry{dirEntry(""), dirEntry("base"), dirEntry("base/1"), fileEntry("base/1/5", 3*8192),
		dirEntry("global"), fileEntry("global/pg_control", 8192)}
	// sendWhole sends the file of basis b whole.
	sendWhole := func(b wire.Basis, e wire.Entry) {
		data := files[b.Rel]
		hs := make([]manifest.Hash, len(data)/8192)
		pass.HashBlocks(hs, data, 8192)
		s.send(wire.Write{ID: b.ID, RawLen: uint32(len(data)), Data: data})
		s.send(wire.Done{ID: b.ID, Entry: e, ReadStart: 2, HashesSum: pass.HashesSum(hs)})
	}
	s.begin(entries...)
	s.expect(wire.TReady)
	for _, e := range []wire.Entry{entries[3], entries[5]} {
		sendWhole(wire.DecodeBasis(wire.NewDecoder(s.expect(wire.TBasis).Payload)), e)
	}
	s.expect(wire.TEndBases)
	s.send(wire.Commit{})
	s.expect(wire.TCommitted)

	// The source file changed since (its ctime), and the WAL names block 1.
	entries[3].WAL, entries[3].Blocks, entries[3].Ctime = pass.WALBlocks, []uint32{1}, 5
	entries[5].WAL = pass.WALWhole
	s.send(wire.Entries{Entries: entries})
	s.send(wire.Begin{Kind: uint8(manifest.Cold), BlockSize: 8192, InFlight: 4, Jobs: 1, WAL: true, WALSince: 1, WALMargin: 1})
	s.expect(wire.TReady)
	b := wire.DecodeBasis(wire.NewDecoder(s.expect(wire.TBasis).Payload))
	if !b.Partial || len(b.Blocks) != 1 || b.Blocks[0] != 1 || len(b.Hashes) != 1 || b.Hashes[0] != manifest.HashBlock(blocks[1]) {
		t.Fatalf("the basis of a file read in part holds the record's hash of the block the WAL names, and no other: %+v", b)
	}
	sendWhole(wire.DecodeBasis(wire.NewDecoder(s.expect(wire.TBasis).Payload)), entries[5])
	return b
}

// errorWithin is expectError that fails the test, rather than wait on,
// when no error comes within d (a receiver that took the fault waits for
// the commit).
func (s *testSender) errorWithin(why string, d time.Duration) string {
	s.t.Helper()
	got := make(chan wire.Frame, 1)
	go func() {
		for {
			f, err := s.c.Read()
			if err != nil {
				close(got)
				return
			}
			if f.Type != wire.TEvent && f.Type != wire.TBasis && f.Type != wire.TEndBases {
				got <- f
				return
			}
		}
	}()
	select {
	case f, ok := <-got:
		if !ok || f.Type != wire.TError {
			s.t.Fatalf("%s: the receiver must answer with an error, got message type %d (%v)", why, f.Type, ok)
		}
		return wire.DecodeError(wire.NewDecoder(f.Payload)).What
	case <-time.After(d):
		s.t.Fatalf("%s: no error from the receiver within %s", why, d)
	}
	return ""
}

// A file read in part: the receiver rebuilds the hashes of the blocks read,
// commits a journal of the block that changed, and refuses a write to a
// block the pass does not read, or an end whose hashes do not add up.
func TestReceiverReadInPart(t *testing.T) {
	blocks := [3][]byte{bytes.Repeat([]byte("a"), 8192), bytes.Repeat([]byte("b"), 8192), bytes.Repeat([]byte("c"), 8192)}
	newBlock := bytes.Repeat([]byte("B"), 8192)
	size := int64(3 * 8192)
	t.Run("valid", func(t *testing.T) {
		dest, _ := receiverDirs(t)
		s := startReceiver(t, dest, nil)
		s.open()
		b := walPassFrames(t, s, blocks)
		s.send(wire.Write{ID: b.ID, Off: 8192, RawLen: 8192, Data: newBlock})
		s.send(wire.Done{ID: b.ID, Entry: fileEntry("base/1/5", size), ReadStart: 3,
			HashesSum: pass.HashesSum([]manifest.Hash{manifest.HashBlock(newBlock)})})
		s.expect(wire.TEndBases)
		s.send(wire.Commit{Pass: manifest.Pass{Kind: manifest.Cold}})
		s.expect(wire.TCommitted)
		mpath := filepath.Join(dest, ".pgtwopass", "manifest")
		if _, err := os.Stat(manifest.JournalPath(mpath)); err != nil {
			t.Errorf("a WAL-guided cold pass commits a journal: %v", err)
		}
		r, err := manifest.Open(mpath)
		must(t, err)
		defer r.Close()
		f, err := r.Next()
		must(t, err)
		want := []manifest.Hash{manifest.HashBlock(blocks[0]), manifest.HashBlock(newBlock), manifest.HashBlock(blocks[2])}
		if f.Path != "base/1/5" || len(f.Hashes) != 3 || f.Hashes[0] != want[0] || f.Hashes[1] != want[1] || f.Hashes[2] != want[2] {
			t.Errorf("the manifest with its journal holds the new hash of the block written and the record's of the others: %+v", f)
		}
		got, _ := os.ReadFile(filepath.Join(dest, "base/1/5"))
		if !bytes.Equal(got, bytes.Join([][]byte{blocks[0], newBlock, blocks[2]}, nil)) {
			t.Error("the block written is in the copy")
		}
	})
	for _, tc := range []struct {
		name string
		act  func(s *testSender, id uint64)
	}{
		{"a write to a block the pass does not read", func(s *testSender, id uint64) {
			s.send(wire.Write{ID: id, Off: 2 * 8192, RawLen: 8192, Data: newBlock})
			s.send(wire.Done{ID: id, Entry: fileEntry("base/1/5", size), HashesSum: pass.HashesSum([]manifest.Hash{manifest.HashBlock(blocks[1])})})
		}},
		{"an end whose hashes do not add up", func(s *testSender, id uint64) {
			s.send(wire.Done{ID: id, Entry: fileEntry("base/1/5", size), HashesSum: pass.HashesSum([]manifest.Hash{manifest.HashBlock(newBlock)})})
		}},
		{"an end past the record with no blocks for the rest", func(s *testSender, id uint64) {
			s.send(wire.Done{ID: id, Entry: fileEntry("base/1/5", size+8192), HashesSum: pass.HashesSum([]manifest.Hash{manifest.HashBlock(blocks[1])})})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest, outside := receiverDirs(t)
			s := startReceiver(t, dest, nil)
			s.open()
			b := walPassFrames(t, s, blocks)
			tc.act(s, b.ID)
			if msg := s.errorWithin(tc.name, 20*time.Second); !strings.Contains(msg, "base/1/5") {
				t.Errorf("%s: the error names the file, got %q", tc.name, msg)
			}
			s.send(wire.Empty(wire.TAbort))
			for f := s.next(); f.Type != wire.TOK; f = s.next() {
			}
			if _, err := os.Stat(manifest.JournalPath(filepath.Join(dest, ".pgtwopass", "manifest"))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: an aborted pass commits no journal", tc.name)
			}
			outsideUnchanged(t, outside)
		})
	}
}
