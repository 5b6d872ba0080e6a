// Package systemd holds the systemd units of docs/runbook.md; this test
// checks them with systemd-analyze verify.
package systemd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitsVerify runs systemd-analyze verify on the service and the
// timer. The binary in ExecStart is replaced by /bin/true, since verify
// requires it to exist and pgtwopass need not be installed here. verify
// exits 0 on unknown keys and bad values, so any output fails the test.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		msg := "SKIP: systemd-analyze not found: the unit files in contrib/systemd were NOT verified (apt-get install systemd)"
		fmt.Fprintln(os.Stderr, msg)
		t.Skip(msg)
	}
	dir := t.TempDir()
	units := []string{"pgtwopass-prepare@.service", "pgtwopass-prepare@.timer"}
	var paths []string
	for _, name := range units {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/local/bin/pgtwopass ", "/bin/true ")
		if name == units[0] && text == string(b) {
			t.Fatalf("%s runs /usr/local/bin/pgtwopass, where docs/runbook.md installs it", name)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, paths...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify accepts the units without a warning: %v\n%s", err, out)
	}
}

// TestServiceRunsPrepare: the service keeps a copy warm with prepare (never
// finish: it must not stop the server), writes the metrics file and draws no
// progress into the journal.
func TestServiceRunsPrepare(t *testing.T) {
	b, err := os.ReadFile("pgtwopass-prepare@.service")
	if err != nil {
		t.Fatal(err)
	}
	var exec string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "ExecStart=") {
			exec = line
		}
	}
	for _, want := range []string{" prepare ", "--metrics-file ${METRICS_DIR}/", "--no-progress", "${SRC} ${DEST}"} {
		if !strings.Contains(exec, want) {
			t.Errorf("the service's ExecStart contains %q: %s", want, exec)
		}
	}
	for _, never := range []string{" finish ", " sync "} {
		if strings.Contains(exec, never) {
			t.Errorf("the nightly service never stops the server (%q): %s", never, exec)
		}
	}
	if !strings.Contains(string(b), "\nType=oneshot\n") {
		t.Errorf("the service is Type=oneshot")
	}
}
