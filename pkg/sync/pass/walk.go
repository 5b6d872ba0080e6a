package pass

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// WalkedDir is walked through as a directory when it is a symlink: pg_wal on
// another disk becomes a directory of the copy, as in pg_basebackup, so that
// the copy never shares WAL with its source. Tablespace links are followed
// too (see Followed).
const WalkedDir = "pg_wal"

// IsTablespaceLink reports whether rel is where a tablespace is linked.
func IsTablespaceLink(rel string) bool { return path.Dir(rel) == "pg_tblspc" }

// Followed reports whether the walk goes through a symlink at rel as if it
// were a directory: pg_wal on another disk, and tablespaces.
func Followed(rel string) bool { return rel == WalkedDir || IsTablespaceLink(rel) }

// TablespaceRel splits "pg_tblspc/OID/rest" into OID and rest.
func TablespaceRel(rel string) (oid, rest string, ok bool) {
	after, ok := strings.CutPrefix(rel, "pg_tblspc/")
	if !ok {
		return "", "", false
	}
	oid, rest, _ = strings.Cut(after, "/")
	return oid, rest, true
}

// Walk lists root depth-first, each directory in byte order, which is the
// order of manifest.ComparePaths. Entries that vanish while it runs are
// skipped: a live pass is best-effort, the cold pass runs on a stopped server.
func Walk(root string, ex Excluder) ([]Entry, error) { return WalkNoting(root, ex, nil) }

// Notes are what a walk of SRC found that a copy does not carry as it is:
// the user is told, nothing is dropped or changed silently.
type Notes struct {
	// Specials are sockets, FIFOs and devices: left out of the copy.
	Specials []string
	// HardLinked are regular files with more than one link (pg_upgrade
	// --link leaves them shared with the old cluster): the copy holds each
	// as a file of its own.
	HardLinked []string
	// OutsideLinks are symlinks (other than pg_wal and the tablespaces,
	// which the walk follows) that lead outside the data directory: the
	// copy links to the same target, which a started copy would share
	// with the source. Each is "rel -> target".
	OutsideLinks []string
}

// WalkNoting is Walk that records in notes (when not nil) what the copy
// will not carry as it is.
func WalkNoting(root string, ex Excluder, notes *Notes) ([]Entry, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	entries := []Entry{NewEntry("", fi)}
	var visit func(dir, rel string) error
	visit = func(dir, rel string) error {
		names, err := ReadDirNames(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && rel != "" {
				return nil
			}
			return fmt.Errorf("failed to list %s: %w", dir, err)
		}
		for _, name := range names {
			crel := name
			if rel != "" {
				crel = rel + "/" + name
			}
			if ex.Excluded(crel) {
				continue
			}
			p := filepath.Join(dir, name)
			fi, err := os.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("failed to stat %s: %w", p, err)
			}
			var target string
			if fi.Mode()&fs.ModeSymlink != 0 && Followed(crel) {
				if target, err = os.Readlink(p); err != nil {
					return fmt.Errorf("failed to read link %s: %w", p, err)
				}
				if fi, err = os.Stat(p); err != nil {
					return fmt.Errorf("failed to follow %s: %w", p, err)
				}
			}
			e := NewEntry(crel, fi)
			e.Target = target // where a followed link leads
			switch {
			case e.IsSymlink():
				if e.Target, err = os.Readlink(p); err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						continue
					}
					return fmt.Errorf("failed to read link %s: %w", p, err)
				}
				if notes != nil && outside(root, crel, e.Target) {
					notes.OutsideLinks = append(notes.OutsideLinks, crel+" -> "+e.Target)
				}
			case e.IsRegular():
				if notes != nil && fi.Sys().(*syscall.Stat_t).Nlink > 1 && target == "" {
					notes.HardLinked = append(notes.HardLinked, crel)
				}
			case e.IsDir():
			default:
				// Sockets, FIFOs and devices have no place in a data
				// directory: left out, and reported.
				if notes != nil {
					notes.Specials = append(notes.Specials, crel)
				}
				continue
			}
			entries = append(entries, e)
			if e.IsDir() {
				if err := visit(p, crel); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := visit(root, ""); err != nil {
		return nil, err
	}
	return entries, nil
}

// ReadDirNames returns the names in dir in byte order.
func ReadDirNames(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(des))
	for i, de := range des {
		names[i] = de.Name()
	}
	return names, nil
}

// outside reports whether the symlink rel in the tree at root, whose
// target is target, leads outside root.
func outside(root, rel, target string) bool {
	if !filepath.IsAbs(target) {
		target = filepath.Join(root, filepath.Dir(filepath.FromSlash(rel)), target)
	}
	target = filepath.Clean(target)
	return target != root && !Within(target, root)
}
