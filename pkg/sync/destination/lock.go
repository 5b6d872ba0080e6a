package destination

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// lockDest creates DEST and DEST/.pgtwopass if needed and takes an exclusive
// lock there, so that one pgtwopass at a time works on a copy. The lock
// goes with the process: a killed pgtwopass holds it no more.
func lockDest(dest string) (unlock func(), err error) {
	dir := filepath.Join(dest, manifest.DirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open the lock of %s: %w", dest, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another pgtwopass is working on DEST %s; wait for it to finish", dest)
		}
		return nil, fmt.Errorf("failed to lock %s: %w", dest, err)
	}
	// A killed pgtwopass may have left the temporary file of a manifest
	// or of server.json (renameio names them ".NAME" + digits): under the
	// lock no one is writing them.
	if names, err := pass.ReadDirNames(dir); err == nil {
		for _, name := range names {
			if strings.HasPrefix(name, ".") {
				os.Remove(filepath.Join(dir, name))
			}
		}
	}
	return func() { f.Close() }, nil
}
