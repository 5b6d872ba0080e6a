package pass

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
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
//
// Each directory is listed once (getdents64) and its entries are stat'ed
// relative to its descriptor (fstatat), those of a large directory by
// several goroutines: a database directory of a cluster with many
// relations holds most of its files.
func WalkNoting(root string, ex Excluder, notes *Notes) ([]Entry, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	w := &walker{root: root, ex: ex, notes: notes, jobs: runtime.GOMAXPROCS(0)}
	w.entries = []Entry{NewEntry("", fi)}
	fd, err := openDir(unix.AT_FDCWD, root, true)
	if err != nil {
		return nil, fmt.Errorf("failed to list %s: %w", root, err)
	}
	defer unix.Close(fd)
	if err := w.visit(fd, root, ""); err != nil {
		return nil, err
	}
	return w.entries, nil
}

// walker is one walk of WalkNoting.
type walker struct {
	// config
	root  string
	ex    Excluder
	notes *Notes
	jobs  int

	// state
	entries []Entry
}

// walkStatBatch is how many entries of a directory one goroutine stats at a
// time. The directory is stat'ed while it is listed, by a goroutine per CPU
// once its listing exceeds a batch: getdents64 of a large ext4 directory
// costs about as much as the stats.
const walkStatBatch = 256

// walkItem is one entry of a directory as the walk found it.
type walkItem struct {
	name     string
	e        Entry
	excluded bool
	err      error // the stat's
	linked   bool  // a regular file with more than one link
}

// visit lists the directory open as fd (dir, the copy's rel) and adds its
// entries, depth-first.
func (w *walker) visit(fd int, dir, rel string) error {
	items, err := w.list(fd, rel)
	if err != nil {
		return fmt.Errorf("failed to list %s: %w", dir, err)
	}
	for _, it := range items {
		e := &it.e
		switch {
		case it.excluded, it.err == unix.ENOENT:
			continue
		case it.err != nil:
			return fmt.Errorf("failed to stat %s: %w", filepath.Join(dir, it.name), it.err)
		}
		var target string
		if e.IsSymlink() && Followed(e.Rel) {
			var st unix.Stat_t
			if target, err = readlinkAt(fd, it.name); err != nil {
				return fmt.Errorf("failed to read link %s: %w", filepath.Join(dir, it.name), err)
			}
			if err := unix.Fstatat(fd, it.name, &st, 0); err != nil {
				return fmt.Errorf("failed to follow %s: %w", filepath.Join(dir, it.name), err)
			}
			*e = EntryOf(e.Rel, &st)
			e.Target = target // where a followed link leads
			it.linked = false
		}
		switch {
		case e.IsSymlink():
			if e.Target, err = readlinkAt(fd, it.name); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return fmt.Errorf("failed to read link %s: %w", filepath.Join(dir, it.name), err)
			}
			if w.notes != nil && outside(w.root, e.Rel, e.Target) {
				w.notes.OutsideLinks = append(w.notes.OutsideLinks, e.Rel+" -> "+e.Target)
			}
		case e.IsRegular():
			if w.notes != nil && it.linked {
				w.notes.HardLinked = append(w.notes.HardLinked, e.Rel)
			}
		case e.IsDir():
		default:
			// Sockets, FIFOs and devices have no place in a data
			// directory: left out, and reported.
			if w.notes != nil {
				w.notes.Specials = append(w.notes.Specials, e.Rel)
			}
			continue
		}
		w.entries = append(w.entries, *e)
		if e.IsDir() {
			p := filepath.Join(dir, it.name)
			sub, err := openDir(fd, it.name, target != "")
			if errors.Is(err, fs.ErrNotExist) {
				continue // vanished under a live pass
			}
			if err != nil {
				return fmt.Errorf("failed to list %s: %w", p, err)
			}
			err = w.visit(sub, p, e.Rel)
			unix.Close(sub)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// list lists the directory open as fd, the copy's rel, and stats its
// entries (but the excluded ones) as they come: in batches of
// walkStatBatch by a goroutine per CPU while the listing goes on. It
// returns them in byte order of their names.
func (w *walker) list(fd int, rel string) ([]*walkItem, error) {
	stat := func(batch []*walkItem) {
		for _, it := range batch {
			crel := it.name
			if rel != "" {
				crel = rel + "/" + it.name
			}
			if it.excluded = w.ex.Excluded(crel); it.excluded {
				continue
			}
			var st unix.Stat_t
			if it.err = unix.Fstatat(fd, it.name, &st, unix.AT_SYMLINK_NOFOLLOW); it.err == nil {
				it.e = EntryOf(crel, &st)
				it.linked = st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1
			}
		}
	}
	var items []*walkItem
	var work chan []*walkItem
	var wg sync.WaitGroup
	defer func() {
		if work != nil {
			close(work)
			wg.Wait()
		}
	}()
	next := 0 // the first item not handed out
	buf := make([]byte, 64<<10)
	var ents []DirEnt
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		ents = parseDirents(buf[:n], ents[:0])
		for _, de := range ents {
			items = append(items, &walkItem{name: de.Name})
		}
		for len(items)-next >= walkStatBatch {
			if work == nil && w.jobs > 1 {
				work = make(chan []*walkItem, w.jobs)
				for range w.jobs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for b := range work {
							stat(b)
						}
					}()
				}
			}
			batch := items[next : next+walkStatBatch]
			next += walkStatBatch
			if work != nil {
				work <- batch
			} else {
				stat(batch)
			}
		}
	}
	stat(items[next:])
	if work != nil {
		close(work)
		wg.Wait()
		work = nil
	}
	slices.SortFunc(items, func(a, b *walkItem) int { return strings.Compare(a.name, b.name) })
	return items, nil
}

// openDir opens the directory name relative to dirfd; follow lets its last
// component be a symlink (pg_wal, a tablespace, SRC itself).
func openDir(dirfd int, name string, follow bool) (int, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// readlinkAt reads the symlink name in the directory open as dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
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
