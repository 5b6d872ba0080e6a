package sync

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// tablespace is one link of SRC/pg_tblspc and where the copy puts it.
type tablespace struct {
	oid string
	old string // the link's target in SRC
	new string // the copy's directory for it, as given on the command line
}

// mapTablespaces finds every tablespace of SRC in the map OLD=NEW given
// with --tablespace-map, as pg_basebackup -T does. A tablespace without a
// mapping is refused, naming it. NEW is as given: a remote destination
// resolves it on its host.
func mapTablespaces(srcDir string, tsmap map[string]string) (map[string]*tablespace, error) {
	dir := filepath.Join(srcDir, "pg_tblspc")
	names, err := pass.ReadDirNames(dir)
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

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
