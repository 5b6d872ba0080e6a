package destination

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/renameio/v2"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// A part is a piece of the copy that lives outside DEST, in a directory of
// its own to which a link in DEST leads: the copy of a tablespace
// (pg_tblspc/OID, --tablespace-map OLD=NEW) and the copy's WAL (pg_wal,
// --waldir DIR). The walk of SRC goes through the source's links; the
// destination writes each part's entries below its directory, through an
// os.Root of its own, and makes the link. A marker file in the directory
// says whose part it is, so that no pass writes into a directory that holds
// anything else.
type part struct {
	rel   string // the link in the copy: "pg_tblspc/OID" or "pg_wal"
	what  string // for messages: "the copy of tablespace OID", "the copy's WAL directory"
	dir   string // absolute, symlinks resolved
	given string // as given, for messages
	root  *os.Root
}

// Layout says where the parts of the copy outside DEST go.
type Layout struct {
	// Tablespaces maps the OID of each tablespace to the directory of its
	// copy (NEW of --tablespace-map).
	Tablespaces map[string]string
	// WALDir is the directory of the copy's WAL (--waldir): DEST/pg_wal is
	// a link to it. "" keeps the WAL where the copy has it.
	WALDir string
}

// walMarker is the marker in the directory of the copy's WAL.
const walMarker = pass.WALMarker

func (p *part) markerName() string {
	if p.rel == pass.WalkedDir {
		return walMarker
	}
	return pass.TablespaceMarker
}

// marker is what the part's marker says for the cluster sysID.
func (p *part) marker(sysID uint64) []byte {
	if p.rel == pass.WalkedDir {
		return fmt.Appendf(nil, "pgtwopass WAL directory of the copy of the cluster with database system identifier %d\n", sysID)
	}
	return fmt.Appendf(nil, "pgtwopass copy of tablespace %s of the cluster with database system identifier %d\n", path.Base(p.rel), sysID)
}

// newPart returns the part at rel, in dir.
func newPart(rel, what, dir string) (*part, error) {
	real, err := pass.Resolve(dir)
	if err != nil {
		return nil, err
	}
	return &part{rel: rel, what: what, dir: real, given: dir}, nil
}

// addPart adds p, keeping the parts in order.
func (d *Local) addPart(p *part) {
	d.parts = append(d.parts, p)
	slices.SortFunc(d.parts, func(a, b *part) int { return manifest.ComparePaths(a.rel, b.rel) })
}

// part returns the part whose link is at rel, or nil.
func (d *Local) part(rel string) *part {
	for _, p := range d.parts {
		if p.rel == rel {
			return p
		}
	}
	return nil
}

// partOf returns the part that holds rel and rel's path in it.
func (d *Local) partOf(rel string) (*part, string) {
	for _, p := range d.parts {
		if rel == p.rel {
			return p, "."
		}
		if rest, ok := strings.CutPrefix(rel, p.rel+"/"); ok {
			return p, rest
		}
	}
	return nil, ""
}

// tablespaceDirs maps each tablespace's OID to the directory of its copy.
func (d *Local) tablespaceDirs() map[string]string {
	m := map[string]string{}
	for _, p := range d.parts {
		if oid, rest, ok := pass.TablespaceRel(p.rel); ok && rest == "" {
			m[oid] = p.dir
		}
	}
	return m
}

// adoptWAL finds the directory of the copy's WAL when it is not given:
// where the copy's pg_wal leads, if an earlier pass put it there (its
// marker says so). A pg_wal link that pgtwopass did not make (a DBA moved
// the copy's WAL to another disk) is neither deleted nor followed blindly:
// it is refused, with the hint to name it with --waldir, which adopts it.
func (d *Local) adoptWAL(given string) error {
	link := filepath.Join(d.dir, pass.WalkedDir)
	target, err := os.Readlink(link)
	if err != nil {
		if given != "" {
			p, err := newPart(pass.WalkedDir, "the copy's WAL directory", given)
			if err != nil {
				return err
			}
			d.addPart(p)
		}
		return nil // a directory, or none yet
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(d.dir, target)
	}
	real, err := pass.Resolve(target)
	if err != nil {
		return err
	}
	mine := false
	if b, err := os.ReadFile(filepath.Join(real, walMarker)); err == nil {
		p := &part{rel: pass.WalkedDir}
		mine = bytes.Equal(b, p.marker(d.sysID))
	}
	switch {
	case given == "" && mine:
		given = target
	case given == "":
		return pass.InputErr(fmt.Sprintf("to keep the copy's WAL in %s, give --waldir %s; to have it in DEST again, remove the link %s", target, target, link),
			"the copy's pg_wal is a link to %s, which pgtwopass did not make", target)
	default:
		if g, err := pass.Resolve(given); err != nil || g != real {
			return pass.InputErr(fmt.Sprintf("give --waldir %s, or remove the link %s to move the copy's WAL", target, link),
				"the copy's WAL is in %s (its pg_wal leads there), not in --waldir %s", target, given)
		}
	}
	p, err := newPart(pass.WalkedDir, "the copy's WAL directory", given)
	if err != nil {
		return err
	}
	d.adopt = !mine
	d.addPart(p)
	return nil
}

// checkParts refuses the directory of a part that holds something other
// than that part of a pgtwopass copy of the same cluster.
func (d *Local) checkParts() error {
	for _, p := range d.parts {
		names, err := pass.ReadDirNames(p.dir)
		if errors.Is(err, fs.ErrNotExist) || err == nil && len(names) == 0 {
			continue
		}
		if err != nil {
			return pass.InputErr("check the path and its permissions", "cannot use %s for %s: %v", p.given, p.what, err)
		}
		got, err := os.ReadFile(filepath.Join(p.dir, p.markerName()))
		if err != nil {
			if p.rel == pass.WalkedDir && d.adopt {
				continue // the copy's own WAL, moved by hand: adopted
			}
			return pass.InputErr("give an empty or missing directory for "+p.what,
				"%s (for %s) is not empty and is not part of a pgtwopass copy", p.given, p.what)
		}
		if !bytes.Equal(got, p.marker(d.sysID)) {
			return pass.InputErr("give another directory: this one holds a part of another copy",
				"%s (for %s) belongs to another copy: %s says %q", p.given, p.what, p.markerName(), strings.TrimSpace(string(got)))
		}
	}
	return nil
}

// markParts creates each part's directory (see makeDir) and writes its
// marker there, before anything else is written into it.
func (d *Local) markParts() error {
	for _, p := range d.parts {
		if err := d.makeDir(p.dir); err != nil {
			return err
		}
		m := filepath.Join(p.dir, p.markerName())
		if err := renameio.WriteFile(m, p.marker(d.sysID), 0o600, renameio.WithTempDir(p.dir)); err != nil {
			return fmt.Errorf("failed to write %s: %w", m, err)
		}
		if d.asRoot {
			os.Lchown(m, int(d.owner.UID), int(d.owner.GID))
		}
		if err := manifest.SyncDir(p.dir); err != nil {
			return err
		}
		if err := manifest.SyncDir(filepath.Dir(p.dir)); err != nil {
			return err
		}
	}
	return nil
}
