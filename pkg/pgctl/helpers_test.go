package pgctl

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testBinDir returns the PostgreSQL binaries, skipping the test if absent.
func testBinDir(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: runs PostgreSQL")
	}
	dir, err := FindBinDir("")
	if err != nil {
		t.Skipf("PostgreSQL server binaries not available: %v", err)
	}
	return dir
}

// serverOwner is the OS user that runs initdb/pg_ctl/postgres in tests:
// "postgres" when we are root (they refuse to run as root), else ourselves.
func serverOwner(t *testing.T) Owner {
	t.Helper()
	var u *user.User
	var err error
	if os.Geteuid() == 0 {
		u, err = user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and no postgres OS user to run the server as: %v", err)
		}
	} else if u, err = user.Current(); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	o := Owner{UID: uint32(uid), GID: uint32(gid), Name: u.Username}
	gids, _ := u.GroupIds()
	for _, g := range gids {
		n, _ := strconv.ParseUint(g, 10, 32)
		o.Groups = append(o.Groups, uint32(n))
	}
	return o
}

// testDir returns a fresh temporary directory that the server owner can
// traverse: t.TempDir() and its go-test-made parents are root-owned 0700.
func testDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	tmp := filepath.Clean(os.TempDir())
	for d := dir; strings.HasPrefix(d, tmp+"/"); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid == 0 && fi.Mode().Perm() == 0o700 {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// ownedDir creates dir with the given mode, owned by owner.
func ownedDir(t *testing.T, dir string, mode os.FileMode, owner Owner) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, int(owner.UID), int(owner.GID)); err != nil {
			t.Fatal(err)
		}
	}
}

// runServerTool runs binDir/name as the server owner, failing the test on error.
func runServerTool(t *testing.T, binDir, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	RunAs(cmd, serverOwner(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// testCluster is an initdb'ed cluster plus a directory (owned by the
// server user) for its unix socket and log.
type testCluster struct {
	binDir, dataDir, runDir string
	owner                   Owner
	port                    int
}

// initCluster runs initdb -k into a fresh directory; the server is not started.
func initCluster(t *testing.T) *testCluster {
	t.Helper()
	c := &testCluster{binDir: testBinDir(t), owner: serverOwner(t)}
	base := testDir(t)
	c.dataDir = filepath.Join(base, "data")
	c.runDir = filepath.Join(base, "run")
	ownedDir(t, c.dataDir, 0o700, c.owner)
	ownedDir(t, c.runDir, 0o755, c.owner)
	runServerTool(t, c.binDir, "initdb", "-k", "-N", "-A", "trust", "-U", "postgres", "-D", c.dataDir)
	return c
}

// start starts the cluster on a free port, listening only on a unix socket
// in runDir; the test's cleanup stops it in immediate mode.
func (c *testCluster) start(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := "-p " + strconv.Itoa(c.port) + " -k " + c.runDir + " -c listen_addresses=''"
	runServerTool(t, c.binDir, "pg_ctl", "start", "-w", "-D", c.dataDir,
		"-l", filepath.Join(c.runDir, "server.log"), "-o", opts)
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(c.binDir, "pg_ctl"), "stop", "-m", "immediate", "-D", c.dataDir)
		RunAs(cmd, c.owner)
		_ = cmd.Run() // may already be stopped
	})
}
