package remote

import (
	"errors"
	"io/fs"

	"github.com/pgtwopass/pgtwopass/internal/wire"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// Conversions between the engine's types and the wire's.

func toWireEntry(e *pass.Entry) wire.Entry {
	x := wire.Entry{Rel: e.Rel, UID: e.UID, GID: e.GID, Size: e.Stat.Size, Mtime: e.Stat.Mtime, Ctime: e.Stat.Ctime,
		Atime: e.Atime, Inode: e.Stat.Inode, Target: e.Target, Mode: uint32(e.Mode.Perm())}
	switch {
	case e.IsDir():
		x.Kind = wire.EntryDir
	case e.IsSymlink():
		x.Kind = wire.EntrySymlink
	default:
		x.Kind = wire.EntryFile
	}
	if e.Mode&fs.ModeSetuid != 0 {
		x.Mode |= 0o4000
	}
	if e.Mode&fs.ModeSetgid != 0 {
		x.Mode |= 0o2000
	}
	if e.Mode&fs.ModeSticky != 0 {
		x.Mode |= 0o1000
	}
	return x
}

func fromWireEntry(x *wire.Entry) pass.Entry {
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
	return pass.Entry{Rel: x.Rel, Mode: mode, UID: x.UID, GID: x.GID, Atime: x.Atime, Target: x.Target,
		Stat: manifest.Stat{Size: x.Size, Mtime: x.Mtime, Ctime: x.Ctime, Inode: x.Inode}}
}

func toWireEvent(e *pass.Event) wire.Event {
	return wire.Event{Kind: uint8(e.Kind), Pass: uint8(e.Pass), Msg: e.Msg, Path: e.Path}
}

// fromWireEvent returns an event a receiver reported; only the kinds a
// destination reports are accepted.
func fromWireEvent(w *wire.Event) (pass.Event, bool) {
	switch k := pass.EventKind(w.Kind); k {
	case pass.Step, pass.Warning, pass.FileChanged, pass.FileDeleted:
		return pass.Event{Kind: k, Pass: manifest.PassKind(w.Pass), Msg: w.Msg, Path: w.Path}, true
	}
	return pass.Event{}, false
}

// toWireError reports err to the other end.
func toWireError(err error) wire.Error {
	var ie *pass.InputError
	if errors.As(err, &ie) {
		return wire.Error{Kind: wire.ErrKindInput, What: ie.What, Hint: ie.Hint}
	}
	return wire.Error{Kind: wire.ErrKindFailure, What: err.Error()}
}

// fromWireError is the error a receiver reported.
func fromWireError(r Remote, w *wire.Error) error {
	if w.Kind == wire.ErrKindInput {
		return &pass.InputError{What: w.What, Hint: w.Hint}
	}
	return &pass.RemoteError{Host: r.Host, Msg: w.What}
}

// RemoteError is a failure the receiver on another host reported.
type RemoteError struct {
	Host string
	Msg  string
}

func (e *RemoteError) Error() string { return "on " + e.Host + ": " + e.Msg }

func toWirePlaces(ps []pass.Place) []wire.Place {
	out := make([]wire.Place, len(ps))
	for i, p := range ps {
		out[i] = wire.Place{What: p.What, Path: p.Path, Self: wire.FileID(p.Self)}
		for _, id := range p.Up {
			out[i].Up = append(out[i].Up, wire.FileID(id))
		}
	}
	return out
}

func fromWirePlaces(ps []wire.Place) []pass.Place {
	out := make([]pass.Place, len(ps))
	for i, p := range ps {
		out[i] = pass.Place{What: p.What, Path: p.Path, Self: pass.FileID(p.Self)}
		for _, id := range p.Up {
			out[i].Up = append(out[i].Up, pass.FileID(id))
		}
	}
	return out
}
