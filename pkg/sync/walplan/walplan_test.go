package walplan

import (
	"slices"
	"testing"

	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/wal"
)

func TestParseRelFile(t *testing.T) {
	rf := func(spc, db, rel uint32, fork wal.ForkNumber, seg uint32, temp bool) RelFile {
		return RelFile{RelFork: wal.RelFork{RelFileLocator: wal.RelFileLocator{Tablespace: spc, Database: db, RelNumber: rel}, Fork: fork}, Segment: seg, Temp: temp}
	}
	for rel, want := range map[string]RelFile{
		"base/5/16384":                         rf(1663, 5, 16384, wal.MainFork, 0, false),
		"base/5/16384.12":                      rf(1663, 5, 16384, wal.MainFork, 12, false),
		"base/5/16384_fsm":                     rf(1663, 5, 16384, wal.FSMFork, 0, false),
		"base/5/16384_vm.1":                    rf(1663, 5, 16384, wal.VMFork, 1, false),
		"base/5/16384_init":                    rf(1663, 5, 16384, wal.InitFork, 0, false),
		"global/1262":                          rf(1664, 0, 1262, wal.MainFork, 0, false),
		"pg_tblspc/16390/PG_15_202209061/5/77": rf(16390, 5, 77, wal.MainFork, 0, false),
		"base/5/t3_16400":                      rf(1663, 5, 16400, wal.MainFork, 0, true),
	} {
		got, ok := ParseRelFile(rel)
		if !ok || got != want {
			t.Errorf("ParseRelFile(%q) = %+v, %v; want %+v", rel, got, ok, want)
		}
	}
	// Not relation files: read whole by the plan, never block by block.
	for _, rel := range []string{"PG_VERSION", "base/5/PG_VERSION", "base/5/pg_filenode.map", "base/5/pg_internal.init",
		"global/pg_control", "pg_xact/0000", "base/5/16384.0", "base/5/016384", "base/5/16384_xyz", "base/x/16384",
		"pg_tblspc/16390/PG_15_202209061/5/77/x", "base/5/16384.", "base/5/t_1", "base/5/0"} {
		if f, ok := ParseRelFile(rel); ok {
			t.Errorf("ParseRelFile(%q) = %+v: not a relation file", rel, f)
		}
	}
}

// TestPlanReadsWhatTheWALDoesNotCover: blocks named by block references
// are read block by block, in the file of their segment; everything the
// WAL does not cover is read whole.
func TestPlanReadsWhatTheWALDoesNotCover(t *testing.T) {
	rel := func(n uint32) wal.RelFileLocator {
		return wal.RelFileLocator{Tablespace: 1663, Database: 5, RelNumber: n}
	}
	blocks := func(bs ...uint32) *wal.BlockSet {
		s := &wal.BlockSet{}
		for _, b := range bs {
			s.Add(b)
		}
		return s
	}
	sum := &wal.Summary{
		Blocks: map[wal.RelFork]*wal.BlockSet{
			{RelFileLocator: rel(100), Fork: wal.MainFork}: blocks(3, 7, 131072+5),
			{RelFileLocator: rel(100), Fork: wal.FSMFork}:  blocks(1),
			{RelFileLocator: rel(101), Fork: wal.MainFork}: blocks(0),
		},
		Created:   []wal.Creation{{RelFork: wal.RelFork{RelFileLocator: rel(102), Fork: wal.MainFork}}},
		Truncated: []wal.Truncation{{Rel: rel(103), Blocks: 1}},
		Dropped:   []wal.Drop{{Rel: rel(104)}},
		Databases: []wal.DatabaseChange{{Kind: "create_wal_log", Tablespace: 1663, Database: 6}},
	}
	entries := []pass.Entry{{Rel: "base/5/105_init"}, {Rel: "base/5/105"}}
	p := Build(sum, entries, 131072)
	for rel, want := range map[string]struct {
		whole  bool
		blocks []uint32
	}{
		"base/5/100":             {false, []uint32{3, 7}},
		"base/5/100.1":           {false, []uint32{5}},
		"base/5/100.2":           {false, nil},
		"base/5/100_fsm":         {true, nil}, // FSM: not all WAL-logged
		"base/5/100_vm":          {true, nil}, // VM: bits cleared without block references
		"base/5/101":             {false, []uint32{0}},
		"base/5/102":             {true, nil}, // created
		"base/5/103.4":           {true, nil}, // truncated
		"base/5/103_fsm":         {true, nil},
		"base/5/104":             {true, nil}, // dropped
		"base/5/105":             {true, nil}, // unlogged: it has an init fork
		"base/5/t3_106":          {true, nil}, // temporary
		"base/6/200":             {true, nil}, // a database created in the range
		"base/5/pg_filenode.map": {true, nil},
		"base/5/999":             {false, nil}, // untouched
	} {
		whole, blocks := p.For(rel)
		if whole != want.whole || !slices.Equal(blocks, want.blocks) {
			t.Errorf("For(%q) = %v, %v; want %v, %v", rel, whole, blocks, want.whole, want.blocks)
		}
	}
	if p.BlocksPlanned != 5 {
		t.Errorf("BlocksPlanned = %d, want the 5 blocks the WAL names", p.BlocksPlanned)
	}
}
