package sync

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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

func checkPaths(src *source, dest string) (string, error) {
	const hint = "choose a DEST outside the source data directory"
	real, err := resolve(dest)
	if err != nil {
		return "", err
	}
	switch {
	case real == src.dir:
		return "", inputErr(hint, "DEST %s is SRC itself", dest)
	case within(real, src.dir):
		return "", inputErr(hint, "DEST %s is inside SRC %s", dest, src.dir)
	case within(src.dir, real):
		return "", inputErr("choose a DEST that does not contain the source data directory, e.g. a new directory beside it",
			"SRC %s is inside DEST %s", src.dir, dest)
	}
	return real, nil
}

// destination holds what the engine knows about DEST before a pass.
type destination struct {
	dir string // absolute, symlinks resolved
	// header is the manifest's header; nil for a new copy or when the
	// manifest could not be read (manifestErr says why).
	header      *manifest.Header
	manifestErr error
	exists      bool
}

func (d *destination) manifestPath() string {
	return filepath.Join(d.dir, manifest.DirName, manifest.FileName)
}

// inspectDest accepts DEST when it is missing, empty, or a pgtwopass copy of
// the same cluster, and refuses anything else before anything is written.
func inspectDest(src *source, dest string) (*destination, error) {
	real, err := checkPaths(src, dest)
	if err != nil {
		return nil, err
	}
	d := &destination{dir: real}
	fi, err := os.Stat(real)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, inputErr("check the path and its permissions", "cannot use DEST %s: %v", dest, err)
	}
	if !fi.IsDir() {
		return nil, inputErr("give a directory: an empty one, a missing one, or an earlier pgtwopass copy", "DEST %s is not a directory", dest)
	}
	d.exists = true
	names, err := readDirNames(real)
	if err != nil {
		return nil, inputErr("check the permissions of DEST", "cannot read DEST %s: %v", dest, err)
	}
	if len(names) == 0 {
		return d, nil
	}
	if fi, err := os.Stat(filepath.Join(real, manifest.DirName)); err != nil || !fi.IsDir() {
		return nil, inputErr("give an empty or missing directory; pgtwopass replaces what DEST holds only in a copy it made itself",
			"DEST %s is not empty and is not a pgtwopass copy (it has no %s directory)", dest, manifest.DirName)
	}
	if running, pm, _ := pgctl.ServerRunning(real); running {
		return nil, inputErr("stop the server that runs on the copy, or choose another DEST",
			"a PostgreSQL server (pid %d) is running on DEST %s", pm.PID, dest)
	}
	want := src.control.SystemIdentifier
	h, err := manifest.ReadHeader(d.manifestPath())
	if err == nil {
		if h.SystemIdentifier != want {
			return nil, inputErr("choose another DEST; a copy is only ever refreshed from the cluster it was made of",
				"DEST %s is a copy of another cluster (database system identifier %d; SRC has %d)", dest, h.SystemIdentifier, want)
		}
		d.header = &h
		return d, nil
	}
	// The manifest is missing or damaged: the copy's own pg_control still
	// says which cluster it came from. Its contents will be read in full.
	d.manifestErr = err
	id, cerr := copyIdentifier(real)
	switch {
	case cerr != nil:
		return nil, inputErr("remove DEST and start a new copy",
			"DEST %s has a damaged manifest (%v) and no pg_control to tell which cluster it is a copy of", dest, err)
	case id != want:
		return nil, inputErr("choose another DEST; a copy is only ever refreshed from the cluster it was made of",
			"DEST %s is a copy of another cluster (database system identifier %d; SRC has %d)", dest, id, want)
	}
	return d, nil
}

// copyIdentifier reads the database system identifier from the copy's
// pg_control, held or installed: it is the first field of the file.
func copyIdentifier(dest string) (uint64, error) {
	for _, rel := range []string{heldControl, controlFile} {
		f, err := os.Open(filepath.Join(dest, filepath.FromSlash(rel)))
		if err != nil {
			continue
		}
		var b [8]byte
		_, err = io.ReadFull(f, b[:])
		f.Close()
		if err == nil {
			return binary.NativeEndian.Uint64(b[:]), nil
		}
	}
	return 0, errors.New("no pg_control in the copy")
}
