package pass

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

func TestExcluder(t *testing.T) {
	x := NewExcluder(false, []string{"log/*", "*.bak"})
	for rel, want := range map[string]bool{
		"postmaster.pid":                  true,
		"base/postmaster.pid":             true, // name patterns match at any depth
		"pg_stat_tmp/global.Stat":         true,
		"pg_stat_tmp":                     false,
		"base/pgsql_tmp":                  true,
		"base/pgsql_tmp/pgsql_tmp123.0":   true,
		"log/postgresql.log":              true,
		"log":                             false,
		"base/1/1259.bak":                 true,
		"base/1/1259":                     false,
		manifest.DirName:                  true,
		"global/pg_control":               false,
		"pg_tblspc/16384/PG_15/pgsql_tmp": true,
		// PostgreSQL 17's WAL summarizer writes each summary through
		// temp.summary and renames it when complete.
		"pg_wal/summaries/temp.summary": true,
		"pg_wal/summaries":              false,
		"pg_wal/summaries/0000000100000000010000280000000001000130.summary": false,
		"base/temp.summary": false,
	} {
		if got := x.Excluded(rel); got != want {
			t.Errorf("excluded(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, c := range []struct {
		path, dir string
		want      bool
	}{
		{"/a/b", "/a", true}, {"/a", "/a", false}, {"/ab", "/a", false}, {"/a/../b", "/a", false}, {"/a/..b", "/a", true},
	} {
		if got := Within(filepath.Clean(c.path), c.dir); got != c.want {
			t.Errorf("within(%q, %q) = %v, want %v", c.path, c.dir, got, c.want)
		}
	}
}

// checkRecords fails unless every record's hashes describe the copy, and
// its CRC-32C too, or it is flagged as having none (when noCRC says it may).
// It returns the records.

// PartialBlocks: what a WAL-guided cold pass reads of a file read in part,
// the same on both sides of the wire.
func TestPartialBlocks(t *testing.T) {
	const bs = 8192
	for _, tc := range []struct {
		what           string
		named          []uint32
		copySize, size int64
		want           []uint32
	}{
		{"the blocks named", []uint32{1, 5}, 10 * bs, 10 * bs, []uint32{1, 5}},
		{"named past the file's end: not read", []uint32{1, 12}, 10 * bs, 10 * bs, []uint32{1}},
		{"grown: every block from the copy's end", []uint32{1}, 3 * bs, 5 * bs, []uint32{1, 3, 4}},
		{"the copy's last block partial: read again", []uint32{0}, 3*bs + 10, 4 * bs, []uint32{0, 3}},
		{"a named block in the tail: once", []uint32{3}, 3 * bs, 5 * bs, []uint32{3, 4}},
		{"shrunk", []uint32{1, 4}, 5 * bs, 2 * bs, []uint32{1}},
		{"nothing named, unchanged", nil, 5 * bs, 5 * bs, []uint32{}},
	} {
		if got := PartialBlocks(tc.named, tc.copySize, tc.size, bs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: PartialBlocks(%v, %d, %d) = %v, want %v", tc.what, tc.named, tc.copySize, tc.size, got, tc.want)
		}
	}
}
