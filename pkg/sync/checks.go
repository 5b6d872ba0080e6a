package sync

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
)

const (
	controlFile = "global/pg_control"
	// heldControl is where the copy keeps its pg_control while it is not
	// sealed, so that a half-finished copy cannot be started.
	heldControl = manifest.DirName + "/pg_control"
)

// source holds what the engine knows about SRC.
type source struct {
	dir       string // absolute, symlinks resolved
	pgVersion string
	binDir    string
	control   pgctl.ControlData
	owner     pgctl.Owner
	// tablespaces maps the OID of each tablespace linked from pg_tblspc to
	// where the copy puts it.
	tablespaces map[string]*tablespace
}

func inspectSource(ctx context.Context, dir string, tsmap map[string]string) (*source, error) {
	const hint = "give the data directory of the cluster to copy (the directory that holds PG_VERSION)"
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, inputErr(hint, "SRC %s does not exist", dir)
	case errors.Is(err, fs.ErrPermission):
		return nil, inputErr("run pgtwopass as root or as the cluster's owner", "cannot read SRC %s: permission denied", dir)
	case err != nil:
		return nil, inputErr(hint, "cannot use SRC %s: %v", dir, err)
	case !fi.IsDir():
		return nil, inputErr(hint, "SRC %s is not a directory", dir)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	s := &source{dir: real}
	if _, err := os.ReadDir(real); err != nil {
		return nil, inputErr("run pgtwopass as root or as the cluster's owner", "cannot read SRC %s: %v", dir, err)
	}
	if s.pgVersion, err = pgctl.ReadPGVersion(real); err != nil {
		return nil, inputErr(hint, "SRC %s is not a PostgreSQL data directory: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join(real, controlFile)); err != nil {
		return nil, inputErr(hint, "SRC %s is not a PostgreSQL data directory: %s is missing", dir, controlFile)
	}
	if s.tablespaces, err = mapTablespaces(real, tsmap); err != nil {
		return nil, err
	}
	if s.binDir, err = pgctl.FindBinDir(s.pgVersion); err != nil {
		return nil, inputErr("install PostgreSQL's server programs (pg_controldata, pg_ctl) or set PGTWOPASS_BINDIR", "%v", err)
	}
	if s.control, err = pgctl.ReadControlData(ctx, s.binDir, real); err != nil {
		return nil, err
	}
	if s.owner, err = pgctl.OwnerOf(real); err != nil {
		return nil, err
	}
	return s, nil
}

// resolve returns path made absolute with the symlinks of its longest
// existing prefix resolved, so that paths that do not exist yet can be
// compared with paths that do.
func resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	var rest []string
	for p := abs; ; p = filepath.Dir(p) {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if p == filepath.Dir(p) {
			return abs, nil
		}
		rest = append([]string{filepath.Base(p)}, rest...)
	}
}

func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// checkPaths refuses a copy on this host that is SRC, is inside it, or
// holds it.
func checkPaths(src *source, d *localDest) error {
	const hint = "choose a DEST outside the source data directory"
	switch real := d.dir; {
	case real == src.dir:
		return inputErr(hint, "DEST %s is SRC itself", d.given)
	case within(real, src.dir):
		return inputErr(hint, "DEST %s is inside SRC %s", d.given, src.dir)
	case within(src.dir, real):
		return inputErr("choose a DEST that does not contain the source data directory, e.g. a new directory beside it",
			"SRC %s is inside DEST %s", src.dir, d.given)
	}
	return nil
}

// ownerIDs names the data directory's owner by number and by name.
func (s *source) ownerIDs() ownerIDs {
	o := ownerIDs{UID: s.owner.UID, GID: s.owner.GID, User: s.owner.Name}
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(s.owner.GID), 10)); err == nil {
		o.Group = g.Name
	}
	return o
}
