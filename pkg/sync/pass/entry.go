package pass

import (
	"io/fs"
	"os/user"
	"strconv"
	"syscall"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// Entry is one entry of a data directory, as lstat saw it during the walk.
type Entry struct {
	Rel   string // slash-separated path relative to the root; "" is the root
	Mode  fs.FileMode
	UID   uint32
	GID   uint32
	Stat  manifest.Stat
	Atime int64
	// Target is a symlink's target; for a link the walk follows (pg_wal, a
	// tablespace), where it leads.
	Target string
}

// IsDir, IsRegular and IsSymlink say what kind of entry e is.
func (e *Entry) IsDir() bool     { return e.Mode.IsDir() }
func (e *Entry) IsRegular() bool { return e.Mode.IsRegular() }
func (e *Entry) IsSymlink() bool { return e.Mode&fs.ModeSymlink != 0 }

// StatOf is the stat signature of fi that the manifest records: size,
// mtime, ctime and inode.
func StatOf(fi fs.FileInfo) manifest.Stat {
	st := fi.Sys().(*syscall.Stat_t)
	return manifest.Stat{Size: fi.Size(), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Inode: st.Ino}
}

// NewEntry is the entry rel with the stat fi.
func NewEntry(rel string, fi fs.FileInfo) Entry {
	st := fi.Sys().(*syscall.Stat_t)
	return Entry{Rel: rel, Mode: fi.Mode(), UID: st.Uid, GID: st.Gid, Stat: StatOf(fi), Atime: st.Atim.Nano()}
}

// ModeSpecial are the mode bits besides the permissions that a copy keeps.
const ModeSpecial = fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// OwnerIDs names an owner by number and by name.
type OwnerIDs struct {
	UID, GID    uint32
	User, Group string
}

// OnThisHost returns the owner that o's files get on this host: the user
// and group of o's names when they exist here, else o's numbers. Only a
// destination on another host can see them differ.
func (o OwnerIDs) OnThisHost() OwnerIDs {
	out := o
	if o.User != "" {
		if u, err := user.Lookup(o.User); err == nil {
			if n, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
				out.UID = uint32(n)
			}
		}
	}
	if o.Group != "" {
		if g, err := user.LookupGroup(o.Group); err == nil {
			if n, err := strconv.ParseUint(g.Gid, 10, 32); err == nil {
				out.GID = uint32(n)
			}
		}
	}
	return out
}

// IDMap gives the copy the owner of the source's name on the destination's
// host: the source owner's uid and gid become the destination's, every
// other id is kept as it is.
type IDMap struct {
	fromUID, toUID uint32
	fromGID, toGID uint32
}

// NewIDMap maps the source's owner src to the destination's dst.
func NewIDMap(src, dst OwnerIDs) IDMap {
	return IDMap{fromUID: src.UID, toUID: dst.UID, fromGID: src.GID, toGID: dst.GID}
}

// ApplyOne maps e's owner.
func (m IDMap) ApplyOne(e *Entry) {
	if e.UID == m.fromUID {
		e.UID = m.toUID
	}
	if e.GID == m.fromGID {
		e.GID = m.toGID
	}
}

// Apply maps the owners of es.
func (m IDMap) Apply(es []Entry) {
	if m.fromUID == m.toUID && m.fromGID == m.toGID {
		return
	}
	for i := range es {
		m.ApplyOne(&es[i])
	}
}
