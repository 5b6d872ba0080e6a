package pass

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// One rule protects the source and the copy from each other: the
// directories a pass reads (SRC, where a symlinked pg_wal leads, every
// tablespace's directory) and the directories it writes (DEST, the copy of
// every tablespace) are pairwise disjoint: none is another, or inside
// another. A pass that wrote into a directory it reads would write into the
// source, or copy its own copy into itself, growing at every pass.
//
// The rule is CheckPlaces. The destination applies it when it opens the copy,
// before anything is created, on this host and on a receiver that runs on
// the same host as the sender (the same kernel boot): the sender sends the
// places it reads with the request. Directories are compared by device and
// inode, the directory and each of its ancestors, so that no symlink, bind
// mount or second path to the same directory hides an overlap. A path that
// cannot be examined fails the check.

// FileID names a directory by its device and inode: two paths lead to the
// same directory exactly when their FileIDs are equal (on one host).
type FileID struct{ Dev, Ino uint64 }

// Place is a directory a pass reads or writes.
type Place struct {
	What string // e.g. "DEST", "SRC", "the WAL directory of SRC"
	Path string // absolute, symlinks resolved
	// Given is the path as the user wrote it ("" for one found in SRC).
	Given string
	// Self is the directory's FileID; zero when it does not exist yet.
	Self FileID
	// Up holds the FileIDs of the directory, or of its nearest ancestor
	// that exists, and of every ancestor up to /, nearest first.
	Up []FileID
}

func (p Place) String() string {
	if p.Given != "" && p.Given != p.Path {
		return fmt.Sprintf("%s %s", p.What, p.Given)
	}
	return fmt.Sprintf("%s %s", p.What, p.Path)
}

// NewPlace examines the directory at path (which need not exist yet) for
// CheckPlaces; given is path as the user wrote it, for messages.
func NewPlace(what, path, given string) (Place, error) {
	real, err := Resolve(path)
	if err != nil {
		return Place{}, InputErr("check the path", "cannot resolve %s %s: %v", what, path, err)
	}
	p := Place{What: what, Path: real, Given: given}
	for dir := real; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		switch {
		case err == nil:
			st := fi.Sys().(*syscall.Stat_t)
			id := FileID{Dev: uint64(st.Dev), Ino: st.Ino}
			if dir == real {
				p.Self = id
			}
			p.Up = append(p.Up, id)
		case errors.Is(err, fs.ErrNotExist) && len(p.Up) == 0:
			// Not there yet: it is where its nearest existing ancestor is.
		default:
			return Place{}, InputErr("check the path and its permissions", "cannot examine %s (for %s): %v", dir, p, err)
		}
		if dir == filepath.Dir(dir) {
			return p, nil
		}
	}
}

// CheckPlaces applies the rule to the directories a pass reads and those it
// writes: every written one must be disjoint from every read one and from
// every other written one.
func CheckPlaces(reads, writes []Place) error {
	for i, w := range writes {
		for _, r := range reads {
			if err := disjoint(w, r); err != nil {
				return err
			}
		}
		for _, o := range writes[:i] {
			if err := disjoint(w, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// disjoint refuses w (written) when it is o, is inside o, or holds o.
func disjoint(w, o Place) error {
	srcDest := w.What == "DEST" && o.What == "SRC"
	hint := fmt.Sprintf("choose for %s a directory outside %s, and not one that holds it", w.What, o.What)
	if srcDest {
		hint = "choose a DEST outside the source data directory"
	}
	switch {
	case w.Self != (FileID{}) && w.Self == o.Self:
		if srcDest {
			return InputErr(hint, "DEST %s is SRC itself", w.Given)
		}
		return InputErr(hint, "%s is %s", w, o)
	case o.Self != (FileID{}) && slices.Contains(w.Up, o.Self):
		return InputErr(hint, "%s is inside %s", w, o)
	case w.Self != (FileID{}) && slices.Contains(o.Up, w.Self):
		if srcDest {
			hint = "choose a DEST that does not contain the source data directory, e.g. a new directory beside it"
		}
		return InputErr(hint, "%s is inside %s", o, w)
	}
	return nil
}
