package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteSectionReplacesOnlyBetweenTheMarkers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "benchmarks.md")
	before := "# Benchmarks\n\nintro\n\n<!-- bench:begin -->\nold report\n<!-- bench:end -->\n\n## Downtime prediction\n\nkept\n"
	if err := os.WriteFile(file, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, rep := range []string{"## new report\n\nfigures\n", "## newer report\n"} {
		if err := writeSection(file, rep); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(file)
		got := string(b)
		if !strings.HasPrefix(got, "# Benchmarks\n\nintro\n\n"+beginMarker+"\n\n"+rep) || !strings.HasSuffix(got, endMarker+"\n\n## Downtime prediction\n\nkept\n") {
			t.Fatalf("-write must replace the report between the markers and keep the rest of the file, got:\n%s", got)
		}
		if strings.Contains(got, "old report") || strings.Count(got, "bench:begin") != 1 || strings.Count(got, endMarker) != 1 {
			t.Fatalf("the old report and markers must be replaced, not kept, got:\n%s", got)
		}
	}
	// A file without markers gets the report at its end; a missing one is made.
	other := filepath.Join(t.TempDir(), "other.md")
	os.WriteFile(other, []byte("# Other\n"), 0o644)
	if err := writeSection(other, "R\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(other); !strings.HasPrefix(string(b), "# Other\n\n"+beginMarker) {
		t.Fatalf("a file without markers keeps its text and gets the report after it, got:\n%s", b)
	}
	missing := filepath.Join(t.TempDir(), "new.md")
	if err := writeSection(missing, "R\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(missing); !strings.HasPrefix(string(b), beginMarker) {
		t.Fatalf("a missing file gets the report, got:\n%s", b)
	}
}

func TestCountBlocksAtLargerBlockSizes(t *testing.T) {
	// A 10-unit (40 KiB) file whose units 1 and 9 differ.
	units := make([]bool, 10)
	units[1], units[9] = true, true
	size := int64(10*unit - 100) // the last unit is short
	for _, c := range []struct {
		bs     int
		blocks int64
		bytes  int64
	}{
		{4096, 2, 4096 + (4096 - 100)},
		{8192, 2, 8192 + (8192 - 100)},   // blocks 0 and 4 (the last: units 8 and 9, one short)
		{16384, 2, 16384 + (8192 - 100)}, // blocks 0 and 2 (the last: 2 units, one short)
		{65536, 1, size},                 // the whole file is one block
	} {
		blocks, n := countBlocks(units, size, c.bs)
		if blocks != c.blocks || n != c.bytes {
			t.Errorf("block size %d: %d blocks, %d bytes differ; want %d, %d", c.bs, blocks, n, c.blocks, c.bytes)
		}
	}
}

func TestRsyncStat(t *testing.T) {
	out := "Number of files: 1,003\nLiteral data: 42,646,544 bytes\nMatched data: 0 bytes\nTotal bytes sent: 43,309,010\nTotal bytes received: 254,786\n"
	for label, want := range map[string]int64{"Literal data": 42646544, "Total bytes sent": 43309010, "Total bytes received": 254786, "Speedup": -1} {
		if got := rsyncStat(out, label); got != want {
			t.Errorf("rsyncStat(%q) = %d, want %d", label, got, want)
		}
	}
}

func TestTheTwoSectionsAreReplacedEachAlone(t *testing.T) {
	file := filepath.Join(t.TempDir(), "benchmarks.md")
	os.WriteFile(file, []byte("# Benchmarks\n"), 0o644)
	for _, step := range []struct{ main, many string }{{"M1\n", ""}, {"", "F1\n"}, {"M2\n", ""}, {"", "F2\n"}} {
		var err error
		if step.main != "" {
			err = writeSection(file, step.main)
		} else {
			err = writeBetween(file, step.many, mfBeginMarker, mfEndMarker)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(file)
	want := "# Benchmarks\n\n" + beginMarker + "\n\nM2\n\n" + endMarker + "\n\n" + mfBeginMarker + "\n\nF2\n\n" + mfEndMarker + "\n"
	if string(b) != want {
		t.Fatalf("each section is replaced alone, in place:\n got %q\nwant %q", b, want)
	}
}
