package sync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// source holds what the engine knows about SRC.
type source struct {
	dir       string // absolute, symlinks resolved
	pgVersion string
	control   *pgctl.ControlFile
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
		return nil, inputErr(hint, "cannot resolve SRC %s: %v", dir, err)
	}
	s := &source{dir: real}
	if _, err := os.ReadDir(real); err != nil {
		return nil, inputErr("run pgtwopass as root or as the cluster's owner", "cannot read SRC %s: %v", dir, err)
	}
	if s.pgVersion, err = pgctl.ReadPGVersion(real); err != nil {
		return nil, inputErr(hint, "SRC %s is not a PostgreSQL data directory: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join(real, pass.ControlFile)); err != nil {
		return nil, inputErr(hint, "SRC %s is not a PostgreSQL data directory: %s is missing", dir, pass.ControlFile)
	}
	if s.tablespaces, err = mapTablespaces(real, tsmap); err != nil {
		return nil, err
	}
	if s.control, err = readControl(real, s.pgVersion); err != nil {
		return nil, err
	}
	if s.owner, err = pgctl.OwnerOf(real); err != nil {
		return nil, err
	}
	return s, nil
}

// ownerIDs names the data directory's owner by number and by name.
func (s *source) ownerIDs() pass.OwnerIDs {
	o := pass.OwnerIDs{UID: s.owner.UID, GID: s.owner.GID, User: s.owner.Name}
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(s.owner.GID), 10)); err == nil {
		o.Group = g.Name
	}
	return o
}

// readControl reads SRC's pg_control, and checks that its format is one
// that PostgreSQL's PG_VERSION writes.
func readControl(dir, pgVersion string) (*pgctl.ControlFile, error) {
	cf, err := pgctl.ReadControlFile(dir)
	if err != nil {
		var ve *pgctl.ControlVersionError
		if errors.As(err, &ve) {
			return nil, inputErr("pgtwopass copies clusters of PostgreSQL 13 to 18", "SRC %s: %v", dir, err)
		}
		return nil, fmt.Errorf("SRC %s: %w", dir, err)
	}
	if !cf.WrittenBy(pgVersion) {
		return nil, inputErr("check that SRC is the data directory of one cluster, not one PostgreSQL upgraded in place halfway",
			"SRC %s says PostgreSQL %s in PG_VERSION, but its pg_control has the format of PostgreSQL %s", dir, pgVersion, cf.Majors())
	}
	return cf, nil
}

// pgCtlDir returns the directory of the pg_ctl that controls SRC: beside the
// postgres that runs it (postmaster.opts names it), else the installation
// of its major version.
func (s *source) pgCtlDir() (string, error) {
	dir, err := pgctl.FindBinDirFor(s.dir, s.pgVersion)
	if err != nil {
		return "", inputErr("install PostgreSQL's server programs (pg_ctl) of this version, set PGTWOPASS_BINDIR, or stop and start the server with --systemd-unit or --stop-command/--start-command", "%v", err)
	}
	return dir, nil
}
