package sync

import (
	"path/filepath"

	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// readPlaces returns the directories a pass over src reads, for the rule of
// pass.CheckPlaces: SRC, where a symlinked pg_wal leads, and the directory
// of every tablespace.
func (s *source) readPlaces() ([]pass.Place, error) {
	p, err := pass.NewPlace("SRC", s.dir, "")
	if err != nil {
		return nil, err
	}
	out := []pass.Place{p}
	wal := filepath.Join(s.dir, pass.WalkedDir)
	if real, err := filepath.EvalSymlinks(wal); err != nil {
		return nil, inputErr("check SRC/pg_wal and where it leads", "cannot resolve %s: %v", wal, err)
	} else if real != wal {
		p, err := pass.NewPlace("the WAL directory of SRC (where its pg_wal leads)", real, "")
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	for _, oid := range sortedKeys(s.tablespaces) {
		ts := s.tablespaces[oid]
		real, err := filepath.EvalSymlinks(filepath.Join(s.dir, "pg_tblspc", oid))
		if err != nil {
			return nil, inputErr("check the tablespace's link and directory", "cannot resolve the directory of tablespace %s (pg_tblspc/%s -> %s): %v", oid, oid, ts.old, err)
		}
		p, err := pass.NewPlace("the directory of tablespace "+oid+" of SRC", real, "")
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
