package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// TestDestInsideWhatThePassReads: the directories a pass writes (DEST, a
// tablespace's copy, --waldir) may not be, or be inside, or hold, the
// directories it reads: SRC, the WAL directory of a cluster made with
// initdb --waldir, a tablespace's directory; whatever path leads there (a
// bind mount of SRC), and also for a receiver on this host. Each is bad
// input: exit 2, SRC and its directories untouched, nothing created.
func TestDestInsideWhatThePassReads(t *testing.T) {
	needPG(t)
	t.Parallel()
	base := pgTempDir(t)
	wal := filepath.Join(base, "wal")
	if err := os.Mkdir(wal, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := scratch.Chown(wal, scratch.Options{BinDir: pgBinDir}); err != nil {
		t.Fatal(err)
	}
	src, err := scratch.InitDB(ctxFor(t, 3*time.Minute), filepath.Join(base, "src"), scratch.Options{BinDir: pgBinDir, LoadRate: testLoadRate, InitDBArgs: []string{"--waldir", wal}})
	if err != nil {
		t.Fatalf("initdb --waldir: %v", err)
	}
	closeOnCleanup(t, src)
	ts := filepath.Join(base, "ts")
	if err := os.Mkdir(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(src.Dir)
	owner := st.Sys().(*syscall.Stat_t)
	if err := os.Chown(ts, int(owner.Uid), int(owner.Gid)); err != nil {
		t.Fatal(err)
	}
	startCluster(t, src)
	execSQL(t, src, "CREATE TABLESPACE ts1 LOCATION '"+ts+"'")
	execSQL(t, src, "CREATE TABLE t TABLESPACE ts1 AS SELECT g FROM generate_series(1, 1000) g")
	stopCluster(t, src)
	newTS := filepath.Join(base, "ts-copy")
	tsMap := "--tablespace-map=" + ts + "=" + newTS

	bind := ""
	if os.Geteuid() == 0 {
		bind = filepath.Join(base, "bind")
		if err := os.Mkdir(bind, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "--bind", src.Dir, bind).CombinedOutput(); err != nil {
			t.Fatalf("mount --bind: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", bind).Run() })
	} else {
		t.Log("SKIP LOUDLY: the bind mount case needs root; CI runs it as root")
	}

	type tc struct {
		name    string
		args    []string
		want    string
		created string // must stay absent
	}
	cases := []tc{
		{"DEST inside the WAL directory of SRC", []string{"prepare", tsMap, src.Dir, filepath.Join(wal, "copy")}, "is inside the WAL directory of SRC", filepath.Join(wal, "copy")},
		{"DEST is the WAL directory of SRC", []string{"finish", "--no-stop", tsMap, src.Dir, wal}, "the WAL directory of SRC", ""},
		{"DEST inside a tablespace of SRC", []string{"sync", "--no-stop", tsMap, src.Dir, filepath.Join(ts, "copy")}, "is inside the directory of tablespace", filepath.Join(ts, "copy")},
		{"a tablespace's copy inside the WAL directory", []string{"prepare", "--tablespace-map=" + ts + "=" + filepath.Join(wal, "ts"), src.Dir, filepath.Join(base, "copy1")}, "the copy of tablespace", filepath.Join(base, "copy1")},
		{"a tablespace's copy inside SRC", []string{"prepare", "--tablespace-map=" + ts + "=" + filepath.Join(src.Dir, "ts"), src.Dir, filepath.Join(base, "copy2")}, "is inside SRC", filepath.Join(base, "copy2")},
		{"--waldir inside the WAL directory of SRC", []string{"prepare", tsMap, "--waldir", filepath.Join(wal, "w"), src.Dir, filepath.Join(base, "copy3")}, "the copy's WAL directory", filepath.Join(base, "copy3")},
		{"--waldir inside SRC", []string{"prepare", tsMap, "--waldir", filepath.Join(src.Dir, "w"), src.Dir, filepath.Join(base, "copy4")}, "is inside SRC", filepath.Join(base, "copy4")},
		{"DEST inside SRC, on a receiver on this host", viaRsh("prepare", tsMap, src.Dir, "h:"+filepath.Join(wal, "rcopy")), "is inside the WAL directory of SRC", filepath.Join(wal, "rcopy")},
	}
	if bind != "" {
		cases = append(cases, tc{"DEST inside SRC through a bind mount", []string{"prepare", tsMap, src.Dir, filepath.Join(bind, "copy")}, "is inside SRC", filepath.Join(src.Dir, "copy")})
	}
	srcHash, walHash, tsHash := hashTree(t, src.Dir), hashTree(t, wal), hashTree(t, ts)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runWith(t, runOpts{env: fakeRshEnvFor()}, c.args...)
			checkBadInput(t, r, c.args, c.want)
			if c.created != "" {
				if _, err := os.Lstat(c.created); err == nil {
					t.Errorf("a refused pass creates nothing, but %s exists", c.created)
					os.RemoveAll(c.created)
				}
			}
			if hashTree(t, src.Dir) != srcHash || hashTree(t, wal) != walHash || hashTree(t, ts) != tsHash {
				t.Fatalf("a refused pass changes nothing in SRC, its WAL directory or its tablespace")
			}
		})
	}
	// The same layout copied where it may go: the copy starts.
	dest := filepath.Join(base, "copy")
	mustRun(t, "sync", "--no-stop", tsMap, "--waldir", filepath.Join(base, "copy-wal"), src.Dir, dest)
	if target, err := os.Readlink(filepath.Join(dest, "pg_wal")); err != nil || target != filepath.Join(base, "copy-wal") {
		t.Errorf("the copy's pg_wal is a link to --waldir: %q %v", target, err)
	}
	cp := openCopy(t, dest)
	startCluster(t, cp)
	if got := query(t, cp, "SELECT count(*) FROM t"); got != "1000" {
		t.Errorf("the copy with its WAL in --waldir starts and reads its tablespace: %q", got)
	}
	stopCluster(t, cp)
}
