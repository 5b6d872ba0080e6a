package scratch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testOptions skips the test when PostgreSQL cannot be run here.
func testOptions(t *testing.T) Options {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: runs PostgreSQL")
	}
	bin, err := FindBinDir()
	if err != nil {
		t.Skip(err)
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skip("running as root without a postgres OS user:", err)
		}
	}
	return Options{BinDir: bin}
}

func cpA(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
}

func TestCluster(t *testing.T) {
	o := testOptions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := t.TempDir()
	dir := filepath.Join(base, "data")

	c, err := InitDB(ctx, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := c.Start(ctx, "log_min_messages=warning"); err != nil {
		t.Fatal(err)
	}
	if !c.Running() {
		t.Fatal("Running() = false after Start")
	}
	if n := len(filepath.Join(c.SocketDir, ".s.PGSQL.65535")); n > maxSocketPath {
		t.Errorf("socket path of %s is %d bytes", c.SocketDir, n)
	}
	if s, err := c.QueryString(ctx, "SHOW data_checksums"); err != nil || s != "on" {
		t.Fatalf("data_checksums = %q, %v", s, err)
	}
	if err := c.PgbenchInit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if s, err := c.QueryString(ctx, "SELECT count(*) FROM pgbench_accounts"); err != nil || s != "100000" {
		t.Fatalf("pgbench_accounts: %q, %v", s, err)
	}
	if s, err := c.QueryString(ctx, "SELECT sum(abalance) + 1.5 FROM pgbench_accounts"); err != nil || s != "1.5" {
		t.Errorf("numeric formatting: %q, %v", s, err)
	}
	if s, err := c.QueryString(ctx, "SELECT x FROM (VALUES (1), (NULL), (3)) v(x) ORDER BY x"); err != nil || s != "1\n3\n" {
		t.Errorf("rows: %q, %v", s, err)
	}
	rel, err := c.QueryString(ctx, "SELECT pg_relation_filepath('pgbench_accounts')")
	if err != nil {
		t.Fatal(err)
	}

	// A load stopped by Stop reports its transactions.
	l, err := c.Load(ctx, 4, 60)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	n, err := l.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("Load.Stop: %d transactions", n)
	}
	hist, err := c.QueryString(ctx, "SELECT count(*) FROM pgbench_history")
	if h, _ := strconv.ParseInt(hist, 10, 64); err != nil || h < n {
		t.Fatalf("pgbench_history has %q rows (%v), pgbench reported %d transactions", hist, err, n)
	}
	t.Logf("load: %d transactions in 2 s", n)

	// A load survives the server stopping under it.
	l, err = c.Load(ctx, 2, 60)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := c.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Stop(); err != nil || n <= 0 {
		t.Fatalf("Load.Stop after server stop: %d, %v", n, err)
	}
	if c.Running() {
		t.Fatal("Running() = true after Stop")
	}
	if out, err := Checksums(ctx, dir, o); err != nil || !strings.Contains(out, "Bad checksums:  0") {
		t.Fatalf("pg_checksums: %v\n%s", err, out)
	}

	// The copy compares equal, then a flipped byte is found in the right block.
	h0, err := HashTree(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(base, "copy")
	cpA(t, dir, cp)
	all := CompareOptions{Owners: true, Mtimes: true}
	if d, err := CompareTrees(dir, cp, all); err != nil || len(d) != 0 {
		t.Fatalf("CompareTrees of a cp -a copy: %q, %v", d, err)
	}
	target := filepath.Join(cp, rel)
	st, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	const off = 2*BlockSize + 100
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(target, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	d, err := CompareTrees(dir, cp, all)
	want := []string{rel + ": content differs at byte 16484 (block 2)"}
	if err != nil || !reflect.DeepEqual(d, want) {
		t.Fatalf("CompareTrees = %q, %v; want %q", d, err, want)
	}
	if out, err := Checksums(ctx, cp, o); err == nil || !strings.Contains(out, "checksum verification failed") {
		t.Errorf("pg_checksums on the damaged copy: %v\n%s", err, out)
	}

	// A copy can be opened and started on its own.
	cp2 := filepath.Join(base, "copy2")
	cpA(t, dir, cp2)
	c2, err := Open(cp2, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close(context.Background()) })
	if c2.Running() {
		t.Fatal("copy Running() before Start")
	}
	if err := c2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if c2.SocketDir == c.SocketDir && c2.Port == c.Port {
		t.Error("copy shares the socket of the original")
	}
	if s, err := c2.QueryString(ctx, "SELECT count(*) >= "+hist+" FROM pgbench_history"); err != nil || s != "true" {
		t.Errorf("copy: %q, %v", s, err)
	}
	if err := c2.Stop(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}

	// Nothing above wrote to the source.
	if h1, err := HashTree(dir, nil); err != nil || h1 != h0 {
		t.Errorf("source tree changed: %s -> %s (%v)", h0, h1, err)
	}
}

func TestCompareTrees(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		must(t, os.MkdirAll(filepath.Join(d, "dir", "sub"), 0o700))
		must(t, os.WriteFile(filepath.Join(d, "dir", "f"), []byte("hello"), 0o600))
		must(t, os.WriteFile(filepath.Join(d, "same"), make([]byte, 3*BlockSize), 0o600))
		must(t, os.WriteFile(filepath.Join(d, "postmaster.pid"), []byte(d), 0o600))
		must(t, os.Symlink("dir/f", filepath.Join(d, "link")))
		must(t, os.WriteFile(filepath.Join(d, "kind"), nil, 0o600))
	}
	must(t, os.WriteFile(filepath.Join(b, "dir", "f"), []byte("hellO!"), 0o600))
	must(t, os.Chmod(filepath.Join(b, "dir", "f"), 0o640))
	must(t, os.Remove(filepath.Join(b, "link")))
	must(t, os.Symlink("same", filepath.Join(b, "link")))
	must(t, os.WriteFile(filepath.Join(b, "dir", "sub", "extra"), nil, 0o600))
	must(t, os.Remove(filepath.Join(b, "kind")))
	must(t, os.Mkdir(filepath.Join(b, "kind"), 0o700))
	mt := time.Unix(1700000000, 123456789)
	for _, d := range []string{a, b} {
		must(t, os.Chtimes(filepath.Join(d, "same"), mt, mt))
	}
	must(t, os.Chtimes(filepath.Join(b, "dir", "f"), mt, mt))

	skip := func(rel string) bool { return rel == "postmaster.pid" }
	got, err := CompareTrees(a, b, CompareOptions{Skip: skip})
	must(t, err)
	want := []string{
		"dir/f: content differs at byte 4 (block 0)",
		"dir/f: mode 0600 != 0640",
		"dir/f: size 5 != 6",
		"dir/sub/extra: only in " + b,
		"kind: type file != directory",
		`link: symlink target "dir/f" != "same"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CompareTrees =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got, err = CompareTrees(a, b, CompareOptions{Skip: skip, Mtimes: true})
	must(t, err)
	if n := len(got); n != len(want)+1 || !strings.HasPrefix(got[2], "dir/f: mtime ") {
		t.Errorf("with Mtimes: %q", got)
	}
	got, err = CompareTrees(a, b, CompareOptions{})
	must(t, err)
	if !strings.Contains(strings.Join(got, "\n"), "postmaster.pid: content differs") {
		t.Errorf("without Skip: %q", got)
	}
}

func TestHashTree(t *testing.T) {
	d := t.TempDir()
	f := filepath.Join(d, "a", "f")
	must(t, os.MkdirAll(filepath.Dir(f), 0o700))
	must(t, os.WriteFile(f, []byte("x"), 0o600))
	must(t, os.WriteFile(filepath.Join(d, "skipped"), []byte("y"), 0o600))
	mt := time.Unix(1700000000, 5)
	must(t, os.Chtimes(f, mt, mt))
	skip := func(rel string) bool { return rel == "skipped" }
	h0, err := HashTree(d, skip)
	must(t, err)
	if h, _ := HashTree(d, skip); h != h0 {
		t.Fatal("HashTree is not stable")
	}
	must(t, os.Chtimes(f, mt, mt.Add(time.Nanosecond)))
	if h, _ := HashTree(d, skip); h == h0 {
		t.Error("HashTree ignores a 1 ns mtime change")
	}
	must(t, os.Chtimes(f, mt, mt))
	if h, _ := HashTree(d, skip); h != h0 {
		t.Error("HashTree differs after restoring the mtime")
	}
	must(t, os.WriteFile(filepath.Join(d, "skipped"), []byte("z"), 0o600))
	if h, _ := HashTree(d, skip); h != h0 {
		t.Error("HashTree looks at a skipped file")
	}
	must(t, os.Chmod(f, 0o640))
	if h, _ := HashTree(d, skip); h == h0 {
		t.Error("HashTree ignores a mode change")
	}
}

func TestMakeTraversable(t *testing.T) {
	base := t.TempDir()
	deep := filepath.Join(base, "a", "b")
	must(t, os.MkdirAll(deep, 0o700))
	must(t, os.Chmod(filepath.Join(base, "a"), 0o700))
	must(t, os.Chmod(deep, 0o750|os.ModeSetgid))
	must(t, MakeTraversable(deep))
	for d, want := range map[string]os.FileMode{
		deep:                     0o751 | os.ModeSetgid,
		filepath.Join(base, "a"): 0o711,
		base:                     0o711 | (mode(t, base) & 0o066),
	} {
		if got := mode(t, d) & (os.ModePerm | os.ModeSetgid); got != want {
			t.Errorf("%s: mode %v, want %v", d, got, want)
		}
	}
}

func TestPgbenchResult(t *testing.T) {
	exit := func(code int) error {
		err := exec.Command("sh", "-c", "exit "+strconv.Itoa(code)).Run()
		return err
	}
	const summary = "number of transactions actually processed: 42\n"
	cases := []struct {
		out     string
		err     error
		sig     bool
		wantErr bool
	}{
		{summary, nil, false, false},
		{"pgbench: error: client 0 script 0 aborted in command 8 query 0: FATAL:  terminating connection due to administrator command\n" +
			summary + "pgbench: error: Run was aborted; the above results are incomplete.\n", exit(2), false, false},
		{"pgbench: error: client 1 aborted in command 10 (SQL) of script 0; perhaps the backend died while processing\n" +
			summary, exit(2), false, false},
		{"pgbench: error: client 0 script 0 aborted in command 5 query 0: ERROR:  relation \"pgbench_accounts\" does not exist\n" +
			summary, exit(2), false, true},
		{"pgbench: error: connection to server on socket \"/tmp/x/.s.PGSQL.1\" failed: No such file or directory\n", exit(1), false, true},
	}
	for i, c := range cases {
		n, err := pgbenchResult(c.out, c.err, c.sig)
		if (err != nil) != c.wantErr {
			t.Errorf("case %d: err = %v, want error %v", i, err, c.wantErr)
		}
		if strings.Contains(c.out, summary) && n != 42 {
			t.Errorf("case %d: n = %d", i, n)
		}
	}
	// Killed by our SIGINT: not a failure.
	cmd := exec.Command("sleep", "10")
	must(t, cmd.Start())
	must(t, cmd.Process.Signal(os.Interrupt))
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("sleep: %v", werr)
	}
	if _, err := pgbenchResult("", werr, true); err != nil {
		t.Errorf("interrupted: %v", err)
	}
	if _, err := pgbenchResult("", werr, false); err == nil {
		t.Error("killed by someone else: no error")
	}
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	must(t, err)
	return st.Mode()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
