package pass

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// lstatWalk is the walk as os.ReadDir and os.Lstat see it, following
// pg_wal: what Walk, with its own getdents and fstatat, must agree with.
func lstatWalk(t *testing.T, root string, ex Excluder) []Entry {
	t.Helper()
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	out := []Entry{NewEntry("", fi)}
	var visit func(dir, rel string)
	visit = func(dir, rel string) {
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			crel := path.Join(rel, de.Name())
			if ex.Excluded(crel) {
				continue
			}
			p := filepath.Join(dir, de.Name())
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			var target string
			if fi.Mode()&fs.ModeSymlink != 0 {
				target, _ = os.Readlink(p)
				if Followed(crel) {
					fi, _ = os.Stat(p)
				}
			}
			if !fi.IsDir() && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
				continue // specials are left out
			}
			e := NewEntry(crel, fi)
			e.Target = target
			out = append(out, e)
			if fi.IsDir() {
				visit(p, crel)
			}
		}
	}
	visit(root, "")
	return out
}

func TestWalkAgreesWithLstat(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	mk := func(rel string, size int) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory larger than a batch of stats, which goroutines share.
	for i := range 3*walkStatBatch + 7 {
		mk(fmt.Sprintf("base/5/%d", 16384+i), i%3*8192)
	}
	mk("global/pg_control", 8192)
	mk("postmaster.pid", 10)         // excluded
	mk("pg_stat_tmp/global.stat", 1) // contents excluded, directory kept
	mk("base/5/pgsql_tmp/pgsql_tmp1.0", 1)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(outside, "000000010000000000000001"), make([]byte, 100), 0o600))
	must(os.Symlink(outside, filepath.Join(root, "pg_wal")))                             // followed
	must(os.Symlink("global", filepath.Join(root, "inside")))                            // kept as a link
	must(os.Symlink(outside, filepath.Join(root, "leads-out")))                          // noted
	must(os.Link(filepath.Join(root, "global/pg_control"), filepath.Join(root, "hard"))) // noted
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600))                             // left out, noted
	must(os.Chmod(filepath.Join(root, "base/5/16384"), 0o640|fs.ModeSetgid))
	must(os.Chtimes(filepath.Join(root, "base/5/16385"), time.Unix(1, 2), time.Unix(3, 4)))

	ex := NewExcluder(false, nil)
	var notes Notes
	got, err := WalkNoting(root, ex, &notes)
	if err != nil {
		t.Fatal(err)
	}
	want := lstatWalk(t, root, ex)
	// Listing a directory, reading a link, may move its atime.
	for _, es := range [][]Entry{got, want} {
		for i := range es {
			if es[i].IsDir() || es[i].IsSymlink() {
				es[i].Atime = 0
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Walk differs from os.ReadDir and os.Lstat (-want +got):\n%s", diff)
	}
	wantNotes := Notes{Specials: []string{"fifo"}, HardLinked: []string{"global/pg_control", "hard"}, OutsideLinks: []string{"leads-out -> " + outside}}
	slices.Sort(notes.HardLinked)
	if diff := cmp.Diff(wantNotes, notes); diff != "" {
		t.Fatalf("notes (-want +got):\n%s", diff)
	}
}

func TestMatchAgreesWithPathMatch(t *testing.T) {
	patterns := append([]string{"*", "a*b", "[ab]*", `pgsql\_tmp*`, "pg_stat_tmp/*x", "?", "base/*", "pg_wal/*/temp.summary"}, DefaultExcludes...)
	subjects := []string{"", "postmaster.pid", "postmaster.pidx", "pgsql_tmp", "pgsql_tmp42", "pg_stat_tmp/global.stat",
		"pg_stat_tmp/a/b", "pg_stat_tmp", "base/1", "base/1/2", "pg_wal/summaries/temp.summary", "ab", "x"}
	for _, p := range patterns {
		for _, s := range subjects {
			want, _ := path.Match(p, s)
			if got := match(p, s); got != want {
				t.Errorf("match(%q, %q) = %v, path.Match says %v", p, s, got, want)
			}
		}
	}
}

func TestParseDirents(t *testing.T) {
	rec := func(ino uint64, typ byte, name string) []byte {
		n := (19 + len(name) + 1 + 7) / 8 * 8
		b := make([]byte, n)
		binary.LittleEndian.PutUint64(b, ino)
		binary.LittleEndian.PutUint16(b[16:], uint16(n))
		b[18] = typ
		copy(b[19:], name)
		return b
	}
	var buf []byte
	for _, r := range [][]byte{rec(1, unix.DT_DIR, "."), rec(2, unix.DT_DIR, ".."), rec(3, unix.DT_REG, "16384"),
		rec(0, unix.DT_REG, "deleted"), rec(4, unix.DT_LNK, "pg_wal"), rec(5, unix.DT_UNKNOWN, "x"), rec(6, unix.DT_DIR, "base")} {
		buf = append(buf, r...)
	}
	got := parseDirents(buf, nil)
	want := []DirEnt{{"16384", 0, true}, {"pg_wal", fs.ModeSymlink, true}, {"x", 0, false}, {"base", fs.ModeDir, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("parseDirents (-want +got):\n%s", diff)
	}
}
