// Package integration runs the pgtwopass binary against real PostgreSQL
// clusters made by internal/scratch: live and cold passes under load,
// refusals of bad input, ownership as root, and byte-for-byte comparisons of
// the copies with their sources.
//
// The binary is built once by TestMain. Without PostgreSQL's programs the
// tests fail; set PGTWOPASS_SKIP_PG=1 to skip them instead.
package integration

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

var (
	// binary is the pgtwopass built by TestMain.
	binary string
	// pgBinDir holds PostgreSQL's programs.
	pgBinDir string
	// skipPG is why the tests are skipped (PGTWOPASS_SKIP_PG=1); "" runs them.
	skipPG string
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeRshEnv) != "" {
		// pgtwopass started this binary as its remote shell (--rsh).
		os.Exit(fakeRsh(os.Args[1:]))
	}
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		// Started as a remote shell without the environment that makes it
		// one: running the tests again would recurse.
		fmt.Fprintf(os.Stderr, "integration.test: started with %q without %s set\n", os.Args[1:], fakeRshEnv)
		os.Exit(255)
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Fprintln(os.Stderr, "integration: skipped under -short (they run PostgreSQL)")
		return 0
	}
	bin, err := scratch.FindBinDir()
	if err == nil && os.Geteuid() == 0 {
		if _, uerr := user.Lookup("postgres"); uerr != nil {
			err = fmt.Errorf("running as root needs a postgres OS user to run PostgreSQL as: %w", uerr)
		}
	}
	if err != nil {
		if os.Getenv("PGTWOPASS_SKIP_PG") != "1" {
			fmt.Fprintf(os.Stderr, "FAIL: integration tests need PostgreSQL: %v\n"+
				"(install PostgreSQL's server programs, set PGTWOPASS_BINDIR, or set PGTWOPASS_SKIP_PG=1 to skip these tests)\n", err)
			return 1
		}
		skipPG = err.Error()
	}
	pgBinDir = bin

	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: go env GOMOD: %v\n", err)
		return 1
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		fmt.Fprintln(os.Stderr, "FAIL: not inside the pgtwopass module (go env GOMOD is empty)")
		return 1
	}
	root := filepath.Dir(gomod)

	tmp, err := os.MkdirTemp("", "pgtwopass-it-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Other OS users run the binary too (an unreadable SRC, as nobody).
	if err := os.Chmod(tmp, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	binary = filepath.Join(tmp, "pgtwopass")
	// With the fault hooks' arming (internal/faults): the crash tests set
	// PGTWOPASS_FAULT_* variables, which a release build ignores.
	build := exec.Command(goBin, "build", "-tags", "pgtwopass_faults", "-o", binary, "./cmd/pgtwopass")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: go build ./cmd/pgtwopass: %v\n%s\n", err, out)
		return 1
	}
	return m.Run()
}

// TestReleaseBinaryHasNoFaultHooks: a release build (no build tag) carries
// neither the fault variables' names nor the code that arms them.
func TestReleaseBinaryHasNoFaultHooks(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	release := filepath.Join(t.TempDir(), "pgtwopass")
	build := exec.Command(goBin, "build", "-o", release, "./cmd/pgtwopass")
	build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pgtwopass: %v\n%s", err, out)
	}
	b, err := os.ReadFile(release)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("PGTWOPASS_FAULT")) {
		t.Errorf("the release binary contains the string PGTWOPASS_FAULT: test hooks must stay out of what users run")
	}
}
