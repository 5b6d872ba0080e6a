package sync

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/wire"
)

// Conversions between the engine's types and the wire's.

func toWireEntry(e *entry) wire.Entry {
	x := wire.Entry{Rel: e.rel, UID: e.uid, GID: e.gid, Size: e.stat.Size, Mtime: e.stat.Mtime, Ctime: e.stat.Ctime,
		Atime: e.atime, Inode: e.stat.Inode, Target: e.target, Mode: uint32(e.mode.Perm())}
	switch {
	case e.isDir():
		x.Kind = wire.EntryDir
	case e.isSymlink():
		x.Kind = wire.EntrySymlink
	default:
		x.Kind = wire.EntryFile
	}
	if e.mode&fs.ModeSetuid != 0 {
		x.Mode |= 0o4000
	}
	if e.mode&fs.ModeSetgid != 0 {
		x.Mode |= 0o2000
	}
	if e.mode&fs.ModeSticky != 0 {
		x.Mode |= 0o1000
	}
	return x
}

func fromWireEntry(x *wire.Entry) entry {
	mode := fs.FileMode(x.Mode & 0o777)
	if x.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if x.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if x.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch x.Kind {
	case wire.EntryDir:
		mode |= fs.ModeDir
	case wire.EntrySymlink:
		mode |= fs.ModeSymlink
	}
	return entry{rel: x.Rel, mode: mode, uid: x.UID, gid: x.GID, atime: x.Atime, target: x.Target,
		stat: manifest.Stat{Size: x.Size, Mtime: x.Mtime, Ctime: x.Ctime, Inode: x.Inode}}
}

func toWirePass(p *manifest.Pass) wire.Pass {
	return wire.Pass{Kind: uint8(p.Kind), Started: p.Started, Finished: p.Finished, BytesRead: p.BytesRead, BytesWritten: p.BytesWritten,
		FilesChanged: p.FilesChanged, FilesDeleted: p.FilesDeleted, ReadNs: p.ReadNs, WriteNs: p.WriteNs}
}

func fromWirePass(p *wire.Pass) manifest.Pass {
	return manifest.Pass{Kind: manifest.PassKind(p.Kind), Started: p.Started, Finished: p.Finished, BytesRead: p.BytesRead,
		BytesWritten: p.BytesWritten, FilesChanged: p.FilesChanged, FilesDeleted: p.FilesDeleted, ReadNs: p.ReadNs, WriteNs: p.WriteNs}
}

func toWireHeader(h *manifest.Header) *wire.Header {
	if h == nil {
		return nil
	}
	w := &wire.Header{Flags: h.Flags, BlockSize: h.BlockSize, SystemIdentifier: h.SystemIdentifier, PGVersion: h.PGVersion,
		Created: h.Created, Files: h.Files, Bytes: h.Bytes}
	for i := range h.Passes {
		w.Passes = append(w.Passes, toWirePass(&h.Passes[i]))
	}
	return w
}

func fromWireHeader(w *wire.Header) (*manifest.Header, error) {
	if w == nil {
		return nil, nil
	}
	if !manifest.ValidBlockSize(int(w.BlockSize)) || len(w.Passes) > manifest.MaxPasses {
		return nil, fmt.Errorf("%w: a manifest header with block size %d and %d passes", wire.ErrCorrupt, w.BlockSize, len(w.Passes))
	}
	h := &manifest.Header{Flags: w.Flags, BlockSize: w.BlockSize, SystemIdentifier: w.SystemIdentifier, PGVersion: w.PGVersion,
		Created: w.Created, Files: w.Files, Bytes: w.Bytes}
	for i := range w.Passes {
		h.Passes = append(h.Passes, fromWirePass(&w.Passes[i]))
	}
	return h, nil
}

func toWireHashes(hs []manifest.Hash) []wire.Hash {
	out := make([]wire.Hash, len(hs))
	for i := range hs {
		out[i] = wire.Hash(hs[i])
	}
	return out
}

func fromWireHashes(hs []wire.Hash) []manifest.Hash {
	out := make([]manifest.Hash, len(hs))
	for i := range hs {
		out[i] = manifest.Hash(hs[i])
	}
	return out
}

func toWireEvent(e *Event) wire.Event {
	return wire.Event{Kind: uint8(e.Kind), Pass: uint8(e.Pass), Msg: e.Msg, Path: e.Path}
}

// fromWireEvent returns an event a receiver reported; only the kinds a
// destination reports are accepted.
func fromWireEvent(w *wire.Event) (Event, bool) {
	switch k := EventKind(w.Kind); k {
	case Step, Warning, FileChanged, FileDeleted:
		return Event{Kind: k, Pass: manifest.PassKind(w.Pass), Msg: w.Msg, Path: w.Path}, true
	}
	return Event{}, false
}

// toWireError reports err to the other end.
func toWireError(err error) wire.Error {
	var ie *InputError
	if errors.As(err, &ie) {
		return wire.Error{Kind: wire.ErrKindInput, What: ie.What, Hint: ie.Hint}
	}
	return wire.Error{Kind: wire.ErrKindFailure, What: err.Error()}
}

// fromWireError is the error a receiver reported.
func fromWireError(r Remote, w *wire.Error) error {
	if w.Kind == wire.ErrKindInput {
		return &InputError{What: w.What, Hint: w.Hint}
	}
	return &RemoteError{Host: r.Host, Msg: w.What}
}

// RemoteError is a failure the receiver on another host reported.
type RemoteError struct {
	Host string
	Msg  string
}

func (e *RemoteError) Error() string { return "on " + e.Host + ": " + e.Msg }
