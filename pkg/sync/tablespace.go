package sync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/renameio/v2"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// tablespaceMarker is the file in a tablespace's copy (the NEW directory of
// --tablespace-map) that says whose tablespace it is a copy of.
const tablespaceMarker = ".pgtwopass-tablespace"

// tablespace is one link of SRC/pg_tblspc and where the copy puts it.
type tablespace struct {
	oid string
	old string // the link's target in SRC
	new string // the copy's directory for it, as given on the command line
}

// isTablespaceLink reports whether rel is where a tablespace is linked.
func isTablespaceLink(rel string) bool { return path.Dir(rel) == "pg_tblspc" }

// followed reports whether the walk goes through a symlink at rel as if it
// were a directory: pg_wal on another disk, and tablespaces.
func followed(rel string) bool { return rel == walkedDir || isTablespaceLink(rel) }

// mapTablespaces finds every tablespace of SRC in the map OLD=NEW given
// with --tablespace-map, as pg_basebackup -T does. A tablespace without a
// mapping is refused, naming it. NEW is as given: a remote destination
// resolves it on its host.
func mapTablespaces(srcDir string, tsmap map[string]string) (map[string]*tablespace, error) {
	dir := filepath.Join(srcDir, "pg_tblspc")
	names, err := readDirNames(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("failed to list %s: %w", dir, err)
	}
	for old, new := range tsmap {
		if !filepath.IsAbs(old) || !filepath.IsAbs(new) {
			return nil, inputErr("give absolute paths: --tablespace-map /old/dir=/new/dir", "--tablespace-map %s=%s: both directories must be absolute", old, new)
		}
	}
	out := map[string]*tablespace{}
	var unmapped []string
	for _, oid := range names {
		link := filepath.Join(dir, oid)
		fi, err := os.Lstat(link)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			continue // an in-place tablespace is a plain directory: copied as one
		}
		target, err := os.Readlink(link)
		if err != nil {
			return nil, err
		}
		new, ok := lookupTablespace(tsmap, target)
		if !ok {
			unmapped = append(unmapped, fmt.Sprintf("%s (pg_tblspc/%s)", target, oid))
			continue
		}
		out[oid] = &tablespace{oid: oid, old: target, new: filepath.Clean(new)}
	}
	if len(unmapped) > 0 {
		sort.Strings(unmapped)
		return nil, inputErr("map each tablespace to a directory for its copy: --tablespace-map OLD=NEW (repeatable)",
			"SRC has tablespaces without a --tablespace-map: %s", strings.Join(unmapped, ", "))
	}
	return out, nil
}

func lookupTablespace(tsmap map[string]string, target string) (string, bool) {
	if new, ok := tsmap[filepath.Clean(target)]; ok {
		return new, true
	}
	real, err := filepath.EvalSymlinks(target)
	if err != nil {
		return "", false
	}
	for old, new := range tsmap {
		if r, err := filepath.EvalSymlinks(old); err == nil && r == real {
			return new, true
		}
	}
	return "", false
}

// tablespaceDirs maps the OID of each tablespace to the directory of its copy.
func (s *source) tablespaceDirs() map[string]string {
	m := make(map[string]string, len(s.tablespaces))
	for oid, ts := range s.tablespaces {
		m[oid] = ts.new
	}
	return m
}

// checkOverlaps refuses, for a copy on this host, a directory of a
// tablespace's copy that overlaps SRC, DEST, a source tablespace or the copy
// of another tablespace.
func checkOverlaps(src *source, d *localDest) error {
	const hint = "choose, for each tablespace, a directory of its own outside SRC, DEST and the source's tablespaces"
	others := []string{src.dir, d.dir}
	for _, ts := range src.tablespaces {
		if real, err := filepath.EvalSymlinks(ts.old); err == nil {
			others = append(others, real)
		}
	}
	for _, oid := range sortedKeys(d.tsNew) {
		new := d.tsNew[oid]
		for _, o := range others {
			if new == o || within(new, o) || within(o, new) {
				return inputErr(hint, "--tablespace-map for pg_tblspc/%s: %s overlaps %s", oid, new, o)
			}
		}
		others = append(others, new)
	}
	return nil
}

func markerFor(oid string, sysID uint64) []byte {
	return fmt.Appendf(nil, "pgtwopass copy of tablespace %s of the cluster with database system identifier %d\n", oid, sysID)
}

// markTablespaces writes the marker into each tablespace's copy.
func (d *localDest) markTablespaces() error {
	for _, oid := range sortedKeys(d.tsNew) {
		new := d.tsNew[oid]
		if err := os.MkdirAll(new, 0o700); err != nil {
			return fmt.Errorf("failed to create %s: %w", new, err)
		}
		p := filepath.Join(new, tablespaceMarker)
		if err := renameio.WriteFile(p, markerFor(oid, d.sysID), 0o600, renameio.WithTempDir(new)); err != nil {
			return fmt.Errorf("failed to write %s: %w", p, err)
		}
		if d.asRoot {
			os.Lchown(p, int(d.owner.UID), int(d.owner.GID))
		}
		if err := manifest.SyncDir(new); err != nil {
			return err
		}
		if err := manifest.SyncDir(filepath.Dir(new)); err != nil {
			return err
		}
	}
	return nil
}
