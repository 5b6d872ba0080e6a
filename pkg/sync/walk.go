package sync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// entry is one source entry, as lstat saw it during the walk.
type entry struct {
	rel    string // slash-separated path relative to the root; "" is the root
	mode   fs.FileMode
	uid    uint32
	gid    uint32
	stat   manifest.Stat
	atime  int64
	target string // symlink target; for a followed link (walkedDir, a tablespace), its target
}

func (e *entry) isDir() bool     { return e.mode.IsDir() }
func (e *entry) isRegular() bool { return e.mode.IsRegular() }
func (e *entry) isSymlink() bool { return e.mode&fs.ModeSymlink != 0 }

func statOf(fi fs.FileInfo) manifest.Stat {
	st := fi.Sys().(*syscall.Stat_t)
	return manifest.Stat{Size: fi.Size(), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Inode: st.Ino}
}

func newEntry(rel string, fi fs.FileInfo) entry {
	st := fi.Sys().(*syscall.Stat_t)
	return entry{rel: rel, mode: fi.Mode(), uid: st.Uid, gid: st.Gid, stat: statOf(fi), atime: st.Atim.Nano()}
}

// walkedDir is walked through as a directory when it is a symlink: pg_wal on
// another disk becomes a directory of the copy, as in pg_basebackup, so that
// the copy never shares WAL with its source. Tablespace links are followed
// too (see followed).
const walkedDir = "pg_wal"

// walk lists root depth-first, each directory in byte order, which is the
// order of manifest.ComparePaths. Entries that vanish while it runs are
// skipped: a live pass is best-effort, the cold pass runs on a stopped server.
func walk(root string, ex excluder) ([]entry, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	entries := []entry{newEntry("", fi)}
	var visit func(dir, rel string) error
	visit = func(dir, rel string) error {
		names, err := readDirNames(dir)
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
			if ex.excluded(crel) {
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
			if fi.Mode()&fs.ModeSymlink != 0 && followed(crel) {
				if target, err = os.Readlink(p); err != nil {
					return fmt.Errorf("failed to read link %s: %w", p, err)
				}
				if fi, err = os.Stat(p); err != nil {
					return fmt.Errorf("failed to follow %s: %w", p, err)
				}
			}
			e := newEntry(crel, fi)
			e.target = target // where a followed link leads
			switch {
			case e.isSymlink():
				if e.target, err = os.Readlink(p); err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						continue
					}
					return fmt.Errorf("failed to read link %s: %w", p, err)
				}
			case e.isDir(), e.isRegular():
			default:
				// Sockets, FIFOs and devices have no place in a data directory.
				continue
			}
			entries = append(entries, e)
			if e.isDir() {
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

// readDirNames returns the names in dir in byte order.
func readDirNames(dir string) ([]string, error) {
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
