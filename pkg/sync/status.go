package sync

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// CopyStatus is what the manifest of a copy says.
type CopyStatus struct {
	Dest   string
	Header manifest.Header
	// Sealed: a cold pass completed and global/pg_control is installed,
	// so the copy can be started.
	Sealed bool
}

// Status reads the manifest of the copy in dest. It writes nothing.
func Status(dest string) (*CopyStatus, error) {
	abs, err := filepath.Abs(dest)
	if err != nil {
		return nil, err
	}
	h, err := manifest.ReadHeader(filepath.Join(abs, manifest.DirName, manifest.FileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, inputErr("give the directory of a copy made by pgtwopass prepare, finish or sync",
			"DEST %s has no pgtwopass manifest", dest)
	case err != nil:
		return nil, err
	}
	_, installed := os.Lstat(filepath.Join(abs, filepath.FromSlash(controlFile)))
	_, held := os.Lstat(filepath.Join(abs, filepath.FromSlash(heldControl)))
	return &CopyStatus{Dest: abs, Header: h, Sealed: h.ColdComplete() && installed == nil && held != nil}, nil
}
