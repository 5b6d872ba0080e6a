package sender

import (
	"io"
	"path"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// srcDirs holds SRC's directories open while a pass reads their files, so
// that each file is opened relative to its directory (openat) rather than by
// its whole path, and the source files through plain descriptors: an os.File
// costs four fcntl and an epoll_ctl more per open, for nothing on a regular
// file.
type srcDirs struct {
	// config
	root string

	// state
	mu  sync.Mutex
	fds map[string]int // by the directory's rel
}

func newSrcDirs(root string) *srcDirs { return &srcDirs{root: root, fds: map[string]int{}} }

// open opens the file rel read-only. The directories on the way are
// followed as a path is (pg_wal and the tablespaces are symlinks the walk
// follows); the file itself too, as os.Open would.
func (d *srcDirs) open(rel string) (int, error) {
	dir, name := path.Split(rel)
	dfd, err := d.dir(dir)
	if err != nil {
		return -1, err
	}
	for {
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// dir returns the descriptor of the directory dir ("" or "a/b/"), opened
// once.
func (d *srcDirs) dir(dir string) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if fd, ok := d.fds[dir]; ok {
		return fd, nil
	}
	for {
		fd, err := unix.Open(filepath.Join(d.root, filepath.FromSlash(dir)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, err
		}
		d.fds[dir] = fd
		return fd, nil
	}
}

// close closes the directories.
func (d *srcDirs) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, fd := range d.fds {
		unix.Close(fd)
		delete(d.fds, k)
	}
}

// preadFull reads len(buf) bytes at off, as os.File.ReadAt does: io.EOF
// when the file ends before.
func preadFull(fd int, buf []byte, off int64) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], off+int64(n))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return n, err
		case m == 0:
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

func fstat(fd int, st *unix.Stat_t) error {
	for {
		if err := unix.Fstat(fd, st); err != unix.EINTR {
			return err
		}
	}
}
