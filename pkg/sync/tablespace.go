package sync

import (
	"bytes"
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
	new string // the copy's directory for it (absolute, symlinks resolved)
}

// isTablespaceLink reports whether rel is where a tablespace is linked.
func isTablespaceLink(rel string) bool { return path.Dir(rel) == "pg_tblspc" }

// followed reports whether the walk goes through a symlink at rel as if it
// were a directory: pg_wal on another disk, and tablespaces.
func followed(rel string) bool { return rel == walkedDir || isTablespaceLink(rel) }

// mapTablespaces finds every tablespace of SRC in the map OLD=NEW given
// with --tablespace-map, as pg_basebackup -T does. A tablespace without a
// mapping is refused, naming it.
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
		real, err := resolve(new)
		if err != nil {
			return nil, err
		}
		out[oid] = &tablespace{oid: oid, old: target, new: real}
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

// checkTablespaces refuses a NEW directory that overlaps SRC, DEST, a
// source tablespace or another NEW, or that holds something other than a
// pgtwopass copy of the same tablespace of the same cluster.
func checkTablespaces(src *source, dst *destination) error {
	const hint = "choose, for each tablespace, a directory of its own outside SRC, DEST and the source's tablespaces"
	others := []string{src.dir, dst.dir}
	for _, ts := range src.tablespaces {
		if real, err := filepath.EvalSymlinks(ts.old); err == nil {
			others = append(others, real)
		}
	}
	for _, ts := range src.tablespaces {
		for _, o := range others {
			if ts.new == o || within(ts.new, o) || within(o, ts.new) {
				return inputErr(hint, "--tablespace-map for pg_tblspc/%s: %s overlaps %s", ts.oid, ts.new, o)
			}
		}
		others = append(others, ts.new)
		names, err := readDirNames(ts.new)
		if errors.Is(err, fs.ErrNotExist) || err == nil && len(names) == 0 {
			continue
		}
		if err != nil {
			return inputErr("check the path and its permissions", "cannot use %s for tablespace %s: %v", ts.new, ts.oid, err)
		}
		got, err := os.ReadFile(filepath.Join(ts.new, tablespaceMarker))
		if err != nil {
			return inputErr("give an empty or missing directory for the tablespace's copy",
				"%s (for tablespace %s) is not empty and is not a pgtwopass copy of a tablespace", ts.new, ts.oid)
		}
		if !bytes.Equal(got, markerFor(src, ts)) {
			return inputErr("give another directory: this one holds the copy of another tablespace or cluster",
				"%s is a copy of another tablespace: %s says %q", ts.new, tablespaceMarker, strings.TrimSpace(string(got)))
		}
	}
	return nil
}

func markerFor(src *source, ts *tablespace) []byte {
	return fmt.Appendf(nil, "pgtwopass copy of tablespace %s of the cluster with database system identifier %d\n",
		ts.oid, src.control.SystemIdentifier)
}

// markTablespaces writes the marker into each tablespace's copy.
func markTablespaces(src *source) error {
	for _, ts := range src.tablespaces {
		if err := os.MkdirAll(ts.new, 0o700); err != nil {
			return fmt.Errorf("failed to create %s: %w", ts.new, err)
		}
		p := filepath.Join(ts.new, tablespaceMarker)
		if err := renameio.WriteFile(p, markerFor(src, ts), 0o600, renameio.WithTempDir(ts.new)); err != nil {
			return fmt.Errorf("failed to write %s: %w", p, err)
		}
		if os.Geteuid() == 0 {
			os.Lchown(p, int(src.owner.UID), int(src.owner.GID))
		}
		if err := manifest.SyncDir(ts.new); err != nil {
			return err
		}
		if err := manifest.SyncDir(filepath.Dir(ts.new)); err != nil {
			return err
		}
	}
	return nil
}

// tablespaceOf returns the mapped tablespace that rel is in, and rel's path
// below its directory ("" for the link itself).
func (s *source) tablespaceOf(rel string) (*tablespace, string) {
	if !strings.HasPrefix(rel, "pg_tblspc/") {
		return nil, ""
	}
	oid, rest, _ := strings.Cut(strings.TrimPrefix(rel, "pg_tblspc/"), "/")
	return s.tablespaces[oid], rest
}
