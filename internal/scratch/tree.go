package scratch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// BlockSize is PostgreSQL's page size, used to name blocks in differences.
const BlockSize = 8192

// CompareOptions say what CompareTrees compares besides type, mode bits,
// size, content and symlink target.
type CompareOptions struct {
	// Skip excludes a relative, slash-separated path ("." is the root) on
	// both sides; a skipped directory's subtree is skipped too. nil: none.
	Skip func(rel string) bool
	// Owners compares uid and gid.
	Owners bool
	// Mtimes compares modification times of regular files (nanoseconds).
	// Directory mtimes are not compared: creating entries changes them.
	Mtimes bool
	// MtimeGranularity, when set, compares mtimes of regular files as a file
	// system that keeps them to this granularity stores them: b's must be
	// a's truncated (for a copy on such a file system).
	MtimeGranularity time.Duration
}

// entry is what a tree walk records of one path.
type entry struct {
	rel  string
	mode fs.FileMode
	size int64
	mt   time.Time
	uid  uint32
	gid  uint32
	link string // symlink target
}

func (e entry) kind() string {
	switch t := e.mode.Type(); {
	case t == 0:
		return "file"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeSymlink != 0:
		return "symlink"
	case t&fs.ModeNamedPipe != 0:
		return "fifo"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	default:
		return "other"
	}
}

// permBits are the mode bits compared and hashed.
const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// unixMode returns the permission and setuid/setgid/sticky bits of m in
// their octal Unix positions.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// walk lists root's tree (not following symlinks) in lexical order.
func walk(root string, skip func(string) bool) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{rel: rel, mode: st.Mode(), size: st.Size(), mt: st.ModTime()}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			e.uid, e.gid = sys.Uid, sys.Gid
		}
		if e.mode.Type()&fs.ModeSymlink != 0 {
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if e.mode.IsDir() {
			e.size = 0 // directory sizes depend on the file system's history
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// CompareTrees compares the trees a and b entry by entry: type, mode bits
// (permissions, setuid/setgid/sticky), size, content (byte for byte),
// symlink target, and, as o says, owners and mtimes. It returns sorted,
// human-readable differences, each starting with the relative path, e.g.
// "base/5/1259: content differs at byte 16384 (block 2)"; none when equal.
func CompareTrees(a, b string, o CompareOptions) ([]string, error) {
	ea, err := walk(a, o.Skip)
	if err != nil {
		return nil, err
	}
	eb, err := walk(b, o.Skip)
	if err != nil {
		return nil, err
	}
	mb := make(map[string]entry, len(eb))
	for _, e := range eb {
		mb[e.rel] = e
	}
	var diffs []string
	add := func(rel, format string, args ...any) {
		diffs = append(diffs, rel+": "+fmt.Sprintf(format, args...))
	}
	for _, x := range ea {
		y, ok := mb[x.rel]
		if !ok {
			add(x.rel, "only in %s", a)
			continue
		}
		delete(mb, x.rel)
		if x.kind() != y.kind() {
			add(x.rel, "type %s != %s", x.kind(), y.kind())
			continue
		}
		if px, py := x.mode&permBits, y.mode&permBits; px != py {
			add(x.rel, "mode %04o != %04o", unixMode(px), unixMode(py))
		}
		if o.Owners && (x.uid != y.uid || x.gid != y.gid) {
			add(x.rel, "owner %d:%d != %d:%d", x.uid, x.gid, y.uid, y.gid)
		}
		switch x.kind() {
		case "symlink":
			if x.link != y.link {
				add(x.rel, "symlink target %q != %q", x.link, y.link)
			}
		case "file":
			if g := o.MtimeGranularity; g > 0 && !x.mt.Truncate(g).Equal(y.mt) {
				add(x.rel, "mtime %s, truncated to %v, != %s", x.mt.Format(time.RFC3339Nano), g, y.mt.Format(time.RFC3339Nano))
			} else if o.Mtimes && !x.mt.Equal(y.mt) {
				add(x.rel, "mtime %s != %s", x.mt.Format(time.RFC3339Nano), y.mt.Format(time.RFC3339Nano))
			}
			if x.size != y.size {
				add(x.rel, "size %d != %d", x.size, y.size)
			}
			off, err := firstDiff(filepath.Join(a, x.rel), filepath.Join(b, x.rel))
			if err != nil {
				return nil, err
			}
			if off >= 0 {
				add(x.rel, "content differs at byte %d (block %d)", off, off/BlockSize)
			}
		}
	}
	for rel := range mb {
		add(rel, "only in %s", b)
	}
	sort.Strings(diffs)
	return diffs, nil
}

// firstDiff returns the offset of the first byte at which files a and b
// differ within their common length, or -1.
func firstDiff(a, b string) (int64, error) {
	fa, err := os.Open(a)
	if err != nil {
		return 0, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return 0, err
	}
	defer fb.Close()
	// Buffers of the file's size (and a byte, to see its end) when it is
	// smaller than a chunk: most files of a data directory are a few KiB.
	size := int64(1 << 20)
	if fi, err := fa.Stat(); err == nil && fi.Size() < size {
		size = fi.Size() + 1
	}
	ba, bb := make([]byte, size), make([]byte, size)
	var off int64
	for {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		n := min(na, nb)
		if !bytes.Equal(ba[:n], bb[:n]) {
			for i := range n {
				if ba[i] != bb[i] {
					return off + int64(i), nil
				}
			}
		}
		off += int64(n)
		for _, err := range []error{erra, errb} {
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, err
			}
		}
		if erra != nil || errb != nil {
			return -1, nil // one ended: the rest is a size difference
		}
	}
}

// HashTree returns a hex SHA-256 digest over a canonical listing of dir's
// tree: for every entry (in lexical order, "." being dir itself) its path,
// type, mode bits, size, mtime in nanoseconds, uid:gid, symlink target and,
// for regular files, the SHA-256 of the contents. Any write to the tree,
// even of a directory's mtime, changes it. skip excludes paths as in
// CompareOptions.
func HashTree(dir string, skip func(rel string) bool) (string, error) {
	entries, err := walk(dir, skip)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, e := range entries {
		var sum string
		if e.kind() == "file" {
			if sum, err = hashFile(filepath.Join(dir, e.rel)); err != nil {
				return "", err
			}
		}
		// %q keeps the fields of odd names unambiguous.
		fmt.Fprintf(h, "%q %s %04o %d %d %d:%d %q %s\n", e.rel, e.kind(), unixMode(e.mode),
			e.size, e.mt.UnixNano(), e.uid, e.gid, e.link, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
