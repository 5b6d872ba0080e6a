package integration

// Copies to another host: DEST is LOGIN:PATH and pgtwopass talks to its
// receiver through a remote shell. The stand-in remote shell (rsh_test.go)
// runs the receiver on this host, so that every test can check the copy on
// disk; TestRemoteOverOpenSSH goes through a real sshd.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// remoteJSON is the part of --json that a copy to another host adds.
type remoteJSON struct {
	summaryJSON
	OK            bool   `json:"ok"`
	Error         string `json:"error"`
	BytesSent     int64  `json:"bytes_sent"`
	BytesReceived int64  `json:"bytes_received"`
}

// viaRsh returns the arguments of a pgtwopass command whose DEST is on
// "another host" through the stand-in remote shell.
func viaRsh(cmd string, args ...string) []string {
	return append([]string{cmd, "-e", testBinary(), "--remote-path", binary}, args...)
}

// runRemote runs a command through the stand-in remote shell and decodes
// its --json (when it printed one).
func runRemote(t *testing.T, env []string, cmd string, args ...string) (procResult, remoteJSON) {
	t.Helper()
	r := runWith(t, runOpts{env: fakeRshEnvFor(env...)}, viaRsh(cmd, args...)...)
	var s remoteJSON
	if strings.HasPrefix(strings.TrimSpace(r.stdout), "{") {
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("%s --json prints one JSON object: %v\n%s", cmd, err, r.stdout)
		}
	}
	return r, s
}

func mustRemote(t *testing.T, env []string, cmd string, args ...string) remoteJSON {
	t.Helper()
	r, s := runRemote(t, env, cmd, args...)
	if r.code != 0 {
		t.Fatalf("pgtwopass %s to another host: want exit 0, got %s", cmd, r)
	}
	return s
}

// TestRemoteSyncUnderLoad is the main job to another host: live passes and
// the cold pass through a remote shell while pgbench writes; the copy is the
// source byte for byte, passes pg_checksums, starts and holds the same data.
// Then a cold pass over an unchanged, stopped source sends almost nothing.
func TestRemoteSyncUnderLoad(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 3)
	startCluster(t, src)
	dest := filepath.Join(pgTempDir(t), "copy")
	logins := filepath.Join(t.TempDir(), "logins")
	env := []string{fakeRshLogEnv + "=" + logins}

	load, err := src.Load(ctxFor(t, 3*time.Minute), 2, 0)
	if err != nil {
		t.Fatalf("start the pgbench load: %v", err)
	}
	t.Cleanup(func() { load.Stop() })
	first := mustRemote(t, env, "prepare", "--json", src.Dir, "postgres@otherhost:"+dest)
	time.Sleep(time.Second)
	res := mustRemote(t, env, "finish", "--json", src.Dir, "postgres@otherhost:"+dest)
	if n, _ := load.Stop(); n == 0 {
		t.Errorf("the load ran no transactions: the test did not copy under load")
	}
	if b, _ := os.ReadFile(logins); !strings.Contains(string(b), "postgres@otherhost") {
		t.Errorf("the remote shell is given the login of DEST (postgres@otherhost), got %q", b)
	}
	if res.DowntimeSeconds == nil || *res.DowntimeSeconds <= 0 || res.Stopped == nil || !*res.Stopped {
		t.Errorf("finish to another host stops the server and reports the downtime: %+v", res.summaryJSON)
	}
	size := treeSize(t, src.Dir)
	if first.BytesSent < size/2 {
		t.Errorf("the first copy sends the data: bytes_sent %d for %d bytes of data", first.BytesSent, size)
	}
	if res.BytesSent <= 0 || res.BytesReceived <= 0 {
		t.Errorf("--json reports the traffic with the receiver: bytes_sent %d, bytes_received %d", res.BytesSent, res.BytesReceived)
	}

	sameTree(t, "after prepare and finish to another host", src.Dir, dest)
	checksumsOK(t, "after prepare and finish to another host", dest)
	cp := openCopy(t, dest)
	if err := cp.Start(ctxFor(t, 3*time.Minute)); err != nil {
		t.Fatalf("a copy finished on another host starts: %v", err)
	}
	startCluster(t, src)
	sameData(t, src, cp)
	stopCluster(t, cp)
	stopCluster(t, src)

	// The copy was started: the receiver refuses it (it may be a new
	// primary); with --allow-started-copy, finish repairs what the start
	// changed, then a repeat on the unchanged source sends only the file
	// list and the ends of files: the cold pass reads every block, but
	// compares it with the hashes the receiver holds.
	if r, _ := runRemote(t, nil, "finish", "--no-stop", src.Dir, "otherhost:"+dest); r.code != 2 || !strings.Contains(r.stderr, "has run as a PostgreSQL cluster") {
		t.Errorf("a receiver refuses a copy that ran since its seal (exit 2), got %s", r)
	}
	mustRemote(t, nil, "finish", "--no-stop", "--allow-started-copy", src.Dir, "otherhost:"+dest)
	again := mustRemote(t, nil, "finish", "--no-stop", "--json", src.Dir, "otherhost:"+dest)
	t.Logf("cold pass over an unchanged source of %d bytes: %d bytes sent, %d received", size, again.BytesSent, again.BytesReceived)
	if again.BytesWritten != 0 {
		t.Errorf("a cold pass over an unchanged source writes nothing, wrote %d bytes", again.BytesWritten)
	}
	if again.BytesSent > size/100 {
		t.Errorf("a cold pass over an unchanged source sends under 1%% of the data (no blocks), sent %d of %d", again.BytesSent, size)
	}
	if again.BytesReceived > size/50 {
		t.Errorf("a cold pass over an unchanged source receives only the copy's hashes (0.2%% of the data), received %d of %d", again.BytesReceived, size)
	}
	sameTree(t, "after a cold pass over an unchanged source", src.Dir, dest)
}

// TestRemoteCompressAndBandwidthLimit: --compress sends fewer bytes for the
// same copy, and --bwlimit keeps the rate under its limit.
func TestRemoteCompressAndBandwidthLimit(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	base := pgTempDir(t)
	plain := mustRemote(t, nil, "finish", "--no-stop", "--json", src.Dir, "h:"+filepath.Join(base, "plain"))
	packed := mustRemote(t, nil, "finish", "--no-stop", "--json", "--compress", src.Dir, "h:"+filepath.Join(base, "packed"))
	t.Logf("a full copy sends %d bytes, %d with --compress", plain.BytesSent, packed.BytesSent)
	if packed.BytesSent >= plain.BytesSent*7/10 {
		t.Errorf("--compress sends fewer bytes (pgbench data compresses well): %d with it, %d without", packed.BytesSent, plain.BytesSent)
	}
	sameTree(t, "a copy sent compressed", src.Dir, filepath.Join(base, "packed"))
	checksumsOK(t, "a copy sent compressed", filepath.Join(base, "packed"))

	const limit = 8 << 20
	slow := mustRemote(t, nil, "finish", "--no-stop", "--json", "--bwlimit", "8M", src.Dir, "h:"+filepath.Join(base, "slow"))
	floor := float64(slow.BytesSent-256<<10) / limit // the first 256 KiB may go at once
	if slow.DurationSeconds < floor*0.9 {
		t.Errorf("--bwlimit 8M sends at most 8 MiB/s: %d bytes took %.2fs, at least %.2fs expected", slow.BytesSent, slow.DurationSeconds, floor)
	}
	sameTree(t, "a copy sent with --bwlimit", src.Dir, filepath.Join(base, "slow"))
}

// TestRemoteCutStream: a stream cut in the middle of a pass (the receiver
// killed) or corrupted gives a clear error and an unsealed copy, and the
// next finish converges.
func TestRemoteCutStream(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 2)
	size := treeSize(t, src.Dir)
	dest := filepath.Join(pgTempDir(t), "copy")
	remote := "h:" + dest

	for _, tc := range []struct {
		name, env, want string
	}{
		{"cut in the first pass", fakeRshCutEnv + "=" + itoa(size/3), "connection to the receiver on h was lost"},
		{"a bit flipped", fakeRshFlipEnv + "=" + itoa(size/4), "corrupt frame"},
		{"cut early", fakeRshCutEnv + "=2000", "connection to the receiver on h was lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := runRemote(t, []string{tc.env}, "finish", "--no-stop", "--log-format", "json", src.Dir, remote)
			checkFailure(t, r, tc.name, dest, "", tc.want)
			if r, st := runRemote(t, nil, "status", "--json", remote); r.code == 0 && !strings.Contains(r.stdout, `"sealed": false`) {
				t.Errorf("%s: status of the copy on the other host says it is not sealed, got %+v", tc.name, st)
			}
		})
	}
	// Converge, then break the cold pass of a sealed copy after a change.
	mustRemote(t, nil, "finish", "--no-stop", src.Dir, remote)
	startCluster(t, src)
	execSQL(t, src, "UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid % 3 = 0")
	stopCluster(t, src)
	r, _ := runRemote(t, []string{fakeRshCutEnv + "=" + itoa(size/20)}, "finish", "--no-stop", "--log-format", "json", src.Dir, remote)
	checkFailure(t, r, "cut in the cold pass of a sealed copy", dest, "", "lost")

	mustRemote(t, nil, "finish", "--no-stop", src.Dir, remote)
	if !sealed(t, dest) {
		t.Errorf("a finish after cut streams seals the copy")
	}
	sameTree(t, "cut streams, then finish again", src.Dir, dest)
	checksumsOK(t, "cut streams, then finish again", dest)
}

// TestRemoteVerifyAndStatus: status and verify read a copy on another host.
func TestRemoteVerifyAndStatus(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 1)
	startCluster(t, src)
	file := relationFile(t, src, "pgbench_accounts")
	stopCluster(t, src)
	dest := filepath.Join(pgTempDir(t), "copy")
	remote := "h:" + dest
	mustRemote(t, nil, "finish", "--no-stop", src.Dir, remote)

	var st statusJSON
	r, _ := runRemote(t, nil, "status", "--json", remote)
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil || st.Sealed == nil || !*st.Sealed || st.Files == 0 {
		t.Errorf("status of a copy on another host reads its manifest: sealed %v, %d files (%v)\n%s", st.Sealed, st.Files, err, r)
	}
	if r, _ := runRemote(t, nil, "verify", src.Dir, remote); r.code != 0 || !strings.Contains(r.stdout, "identical") {
		t.Errorf("verify of an identical copy on another host exits 0 and says so: %s", r)
	}
	flipByte(t, filepath.Join(dest, file), 8192*3+100)
	for _, args := range [][]string{{"verify", src.Dir, remote}, {"verify", "--manifest-only", remote}} {
		r, _ := runRemote(t, nil, args[0], args[1:]...)
		if r.code != 4 || !strings.Contains(r.stdout, file) {
			t.Errorf("%s finds one changed byte of a copy on another host: exit 4 naming %s, got %s", strings.Join(args[:len(args)-1], " "), file, r)
		}
	}
}

// TestRemoteRefusals: bad remote destinations and remote shells are bad
// input (exit 2) with a hint, and leave the copy alone.
func TestRemoteRefusals(t *testing.T) {
	t.Parallel()
	src := newCluster(t, 0)
	foreign := filepath.Join(pgTempDir(t), "foreign")
	if err := os.MkdirAll(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "data"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := hashTree(t, foreign)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a relative path on the other host", viaRsh("prepare", src.Dir, "h:relative/copy"), "must be absolute"},
		{"no path on the other host", viaRsh("prepare", src.Dir, "h:"), "names no directory"},
		{"a foreign non-empty directory there", viaRsh("prepare", src.Dir, "h:"+foreign), "not a pgtwopass copy"},
		{"no pgtwopass there", []string{"prepare", "-e", testBinary(), "--remote-path", "/nonexistent/pgtwopass", src.Dir, "h:/tmp/x"}, "did not start"},
		{"no such remote shell", []string{"prepare", "-e", "/nonexistent/ssh -p 22", src.Dir, "h:/tmp/x"}, "cannot start the remote shell"},
		{"a bad --bwlimit", viaRsh("prepare", "--bwlimit", "fast", src.Dir, "h:/tmp/x"), "invalid --bwlimit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runWith(t, runOpts{env: fakeRshEnvFor()}, tc.args...)
			checkBadInput(t, r, tc.args, tc.want)
		})
	}
	if hashTree(t, foreign) != before {
		t.Errorf("a refused remote DEST is left untouched")
	}
	if _, err := os.Stat("/tmp/x"); err == nil {
		t.Errorf("a refused remote command creates nothing")
	}
}

// TestRemoteOverOpenSSH runs sync under load through a real OpenSSH server
// on 127.0.0.1, started by the test with its own host key, configuration
// and an authorized key made in the test's directory.
func TestRemoteOverOpenSSH(t *testing.T) {
	needRoot(t, "runs sshd, which needs root")
	rsh := startSSHD(t)
	t.Parallel()
	src := newCluster(t, 2)
	startCluster(t, src)
	dest := filepath.Join(pgTempDir(t), "copy")
	load, err := src.Load(ctxFor(t, 3*time.Minute), 2, 0)
	if err != nil {
		t.Fatalf("start the pgbench load: %v", err)
	}
	t.Cleanup(func() { load.Stop() })
	args := []string{"sync", "--json", "-e", rsh, "--remote-path", binary, "--compress", src.Dir, "root@127.0.0.1:" + dest}
	stdout, _ := mustRun(t, args...)
	load.Stop()
	var res remoteJSON
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("sync --json: %v\n%s", err, stdout)
	}
	t.Logf("sync over ssh: %d bytes sent, %d received, downtime %.2fs", res.BytesSent, res.BytesReceived, *res.DowntimeSeconds)
	if res.BytesSent == 0 {
		t.Errorf("sync over ssh reports bytes_sent")
	}
	sameTree(t, "sync over ssh", src.Dir, dest)
	checksumsOK(t, "sync over ssh", dest)
	cp := openCopy(t, dest)
	if err := cp.Start(ctxFor(t, 3*time.Minute)); err != nil {
		t.Fatalf("a copy made over ssh starts: %v", err)
	}
	startCluster(t, src)
	sameData(t, src, cp)
}

// startSSHD starts sshd on a free port of 127.0.0.1 and returns the --rsh
// that logs into it. Without OpenSSH the test is skipped, saying so loudly
// (.ci/run installs it).
func startSSHD(t *testing.T) string {
	t.Helper()
	for _, prog := range []string{"/usr/sbin/sshd", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(prog); err != nil {
			msg := fmt.Sprintf("SKIPPED: %s is not installed, so the copy over a real ssh is not tested (apt-get install openssh-server openssh-client; .ci/run does)", prog)
			fmt.Fprintln(os.Stderr, msg)
			t.Skip(msg)
		}
	}
	dir := t.TempDir()
	keygen := func(file string) {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", file).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	keygen(filepath.Join(dir, "host_key"))
	keygen(filepath.Join(dir, "id"))
	pub, err := os.ReadFile(filepath.Join(dir, "id.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	config := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PrintMotd no
LogLevel ERROR
`, port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	sshd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	sshdLog, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	sshd.Stdout, sshd.Stderr = sshdLog, sshdLog
	if err := sshd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() {
		sshd.Process.Kill()
		sshd.Wait()
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			b, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			t.Fatalf("sshd does not listen on port %d: %v\n%s", port, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Sprintf("ssh -p %d -i %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
		port, filepath.Join(dir, "id"))
}
