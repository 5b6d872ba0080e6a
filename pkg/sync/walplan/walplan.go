// Package walplan turns a summary of the WAL between a checkpoint's redo
// point and the shutdown checkpoint (package wal) into the read plan of a
// WAL-guided cold pass: for each file of SRC, read it whole, read some of
// its blocks, or read nothing of it (its record stands).
//
// What block references cover is read block by block; everything else is
// read whole (docs/design.md, "The WAL-guided cold pass", argues each case):
// files that are not relation files, temporary relations, the FSM and VM
// forks, every fork of an unlogged relation (one with an init fork), the
// forks that SMGR create and truncate records name, the relations that
// commit and abort records drop, and the databases and tablespaces created
// or dropped in the range. [Build] makes a plan; [Plan.For] answers per file.
package walplan

import (
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/wal"
)

// The tablespaces whose directories are in the data directory itself.
const (
	defaultTablespace = 1663 // pg_default: base/
	globalTablespace  = 1664 // pg_global: global/
)

// RelFile is what a file's path says of it, for a relation file.
type RelFile struct {
	wal.RelFork
	Segment uint32 // the file's number in the fork's series: 16384.2 is 2
	Temp    bool   // a temporary relation's file: t<backend>_<relnumber>
}

// ParseRelFile parses rel, a path relative to the data directory, as a
// relation file: base/DB/REL[_fork][.seg], global/REL..., or
// pg_tblspc/SPC/PG_<version>/DB/REL.... ok is false for any other file.
func ParseRelFile(rel string) (f RelFile, ok bool) {
	dir, name := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	parts := strings.Split(dir, "/")
	switch {
	case len(parts) == 1 && parts[0] == "global":
		f.Tablespace = globalTablespace
	case len(parts) == 2 && parts[0] == "base":
		f.Tablespace = defaultTablespace
		if f.Database, ok = oid(parts[1]); !ok {
			return RelFile{}, false
		}
	case len(parts) == 4 && parts[0] == "pg_tblspc" && strings.HasPrefix(parts[2], "PG_"):
		var ok1, ok2 bool
		f.Tablespace, ok1 = oid(parts[1])
		f.Database, ok2 = oid(parts[3])
		if !ok1 || !ok2 {
			return RelFile{}, false
		}
	default:
		return RelFile{}, false
	}
	if strings.HasPrefix(name, "t") {
		// t<backend>_<relnumber>: a temporary relation.
		b, r, found := strings.Cut(name[1:], "_")
		if _, okb := oid(b); !found || !okb {
			return RelFile{}, false
		}
		f.Temp, name = true, r
	}
	if n, seg, found := strings.Cut(name, "."); found {
		s, okSeg := oid(seg)
		if !okSeg || s == 0 {
			return RelFile{}, false
		}
		f.Segment, name = s, n
	}
	if n, fork, found := strings.Cut(name, "_"); found {
		switch fork {
		case "fsm":
			f.Fork = wal.FSMFork
		case "vm":
			f.Fork = wal.VMFork
		case "init":
			f.Fork = wal.InitFork
		default:
			return RelFile{}, false
		}
		name = n
	}
	if f.RelNumber, ok = oid(name); !ok || f.RelNumber == 0 {
		return RelFile{}, false
	}
	return f, true
}

// oid parses a decimal OID without sign or leading zeros.
func oid(s string) (uint32, bool) {
	if s == "" || s[0] == '0' && len(s) > 1 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// Plan says what a WAL-guided cold pass reads of each file.
type Plan struct {
	sum        *wal.Summary
	relSegSize uint32
	// whole forks and relations, from records and from the walk.
	wholeForks map[wal.RelFork]bool
	wholeRels  map[wal.RelFileLocator]bool
	wholeDBs   map[[2]uint32]bool // tablespace, database
	wholeSpcs  map[uint32]bool
	sorted     map[wal.RelFork][]uint32 // the blocks of each fork, increasing
	// Counts, for the log and the prediction.
	BlocksPlanned int64 // blocks of WAL-named files the plan reads
}

// Build makes the plan of the summary sum (which must have no Fallback)
// over the files of SRC that the walk listed; relSegSize is pg_control's
// blocks per relation file.
func Build(sum *wal.Summary, entries []pass.Entry, relSegSize uint32) *Plan {
	p := &Plan{sum: sum, relSegSize: relSegSize, wholeForks: map[wal.RelFork]bool{}, wholeRels: map[wal.RelFileLocator]bool{},
		wholeDBs: map[[2]uint32]bool{}, wholeSpcs: map[uint32]bool{}, sorted: map[wal.RelFork][]uint32{}}
	for _, c := range sum.Created {
		p.wholeForks[c.RelFork] = true
	}
	for _, t := range sum.Truncated {
		p.wholeRels[t.Rel] = true
	}
	for _, d := range sum.Dropped {
		p.wholeRels[d.Rel] = true
	}
	for _, d := range sum.Databases {
		p.wholeDBs[[2]uint32{d.Tablespace, d.Database}] = true
	}
	for _, t := range sum.Tablespaces {
		p.wholeSpcs[t.Tablespace] = true
	}
	// Unlogged relations: no WAL for any fork of a relation with an init
	// fork.
	for i := range entries {
		if f, ok := ParseRelFile(entries[i].Rel); ok && f.Fork == wal.InitFork {
			p.wholeRels[f.RelFileLocator] = true
		}
	}
	for _, set := range sum.Blocks {
		p.BlocksPlanned += int64(set.Len())
	}
	return p
}

// For says what the pass reads of the file rel: whole, or the blocks
// (numbers within the file, increasing) that the WAL names; neither means
// that the WAL names nothing of it. Blocks at or past the size the copy's
// record gives are the caller's to add.
func (p *Plan) For(rel string) (whole bool, blocks []uint32) {
	f, ok := ParseRelFile(rel)
	switch {
	case !ok, f.Temp, f.Fork == wal.FSMFork, f.Fork == wal.VMFork, f.Fork == wal.InitFork:
		return true, nil
	case p.wholeForks[f.RelFork], p.wholeRels[f.RelFileLocator],
		p.wholeDBs[[2]uint32{f.Tablespace, f.Database}], p.wholeSpcs[f.Tablespace]:
		return true, nil
	}
	all, ok := p.sorted[f.RelFork]
	if !ok {
		if set := p.sum.Blocks[f.RelFork]; set != nil {
			all = set.Blocks()
		}
		p.sorted[f.RelFork] = all
	}
	lo, hi := f.Segment*p.relSegSize, (f.Segment+1)*p.relSegSize
	i, _ := slices.BinarySearch(all, lo)
	for ; i < len(all) && all[i] < hi; i++ {
		blocks = append(blocks, all[i]-lo)
	}
	return false, blocks
}
