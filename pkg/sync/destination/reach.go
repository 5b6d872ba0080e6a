package destination

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// A copy is startable only if the server's user (the data directory's
// owner) reaches it: DEST, every tablespace's copy and the WAL directory,
// through every directory above them. pgtwopass creates DEST and the
// tablespaces' copies itself, and, as rsync does, creates no missing parent
// unless asked (--mkpath); the parents it creates are 0755, and before a
// cold pass seals a copy it checks, as that user, that the user reaches
// every directory the copy lives in.

// checkParents refuses a directory to create (DEST, or a tablespace's copy)
// whose parent does not exist, unless mkpath.
func checkParents(what, dir, given string, mkpath bool) error {
	if _, err := os.Stat(dir); err == nil || mkpath {
		return nil
	}
	parent := filepath.Dir(dir)
	switch fi, err := os.Stat(parent); {
	case errors.Is(err, fs.ErrNotExist):
		return pass.InputErr(fmt.Sprintf("create %s first, or pass --mkpath to create the missing directories (as rsync --mkpath)", parent),
			"the parent of %s %s does not exist", what, given)
	case err != nil:
		return pass.InputErr("check the path and its permissions", "cannot use the parent of %s %s: %v", what, given, err)
	case !fi.IsDir():
		return pass.InputErr("give a path whose parent is a directory", "the parent of %s %s is not a directory", what, given)
	}
	return nil
}

// makeDir creates dir, and with mkpath its missing parents (0755, so that
// the server's user can pass through them), giving dir itself to owner
// with mode 0700 until a pass gives it the source's.
func (d *Local) makeDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	var missing []string
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
			break
		}
		missing = append(missing, p)
	}
	slices.Reverse(missing)
	for _, p := range missing {
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("failed to create %s: %w", p, err)
		}
		os.Chmod(p, 0o755) // whatever the umask
		d.obs.Event(pass.Event{Kind: pass.Step, Msg: "created " + p})
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	if d.asRoot {
		if err := os.Chown(dir, int(d.owner.UID), int(d.owner.GID)); err != nil {
			return fmt.Errorf("failed to give %s to the data directory's owner: %w", dir, err)
		}
	}
	return nil
}

// checkReachable checks, as the data directory's owner, that the owner can
// enter, read and write every directory the copy lives in: DEST, every
// tablespace's copy, the WAL directory. A copy the server's user cannot
// reach is not startable, whatever pgtwopass wrote into it.
func (d *Local) checkReachable() error {
	dirs := []string{d.dir}
	for _, p := range d.parts {
		dirs = append(dirs, p.dir)
	}
	if !d.asRoot || d.owner.UID == 0 {
		return nil // pgtwopass runs as the owner: it reached them itself
	}
	owner := pgctl.Owner{UID: d.owner.UID, GID: d.owner.GID, Name: d.owner.User}
	if o, err := pgctl.OwnerOf(d.dir); err == nil && o.UID == d.owner.UID {
		owner = o // with the user's supplementary groups
	}
	if err := pgctl.CheckReach(owner, dirs); err != nil {
		return fmt.Errorf("%w: the copy could not start; give it access (chmod, chown), then run finish again", err)
	}
	return nil
}
