package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
)

// TestInterrupts: finish interrupted at each of its phases, by SIGINT to
// its process group (a terminal's Ctrl-C, which reaches pgtwopass and, unless
// they run in groups of their own, the pg_ctl it runs) and by SIGTERM to
// pgtwopass alone, with and without --restart. Fault hooks make each phase
// last long enough to be hit: the CHECKPOINT (connected, before it is sent),
// the stop (a shell that sleeps, then runs pg_ctl stop), the cold pass (a
// delay after each file), the seal (after the manifest, before pg_control)
// and the start (as the stop).
//
// Afterwards, whatever the signal:
//   - before the stop, the server was never stopped, and the error says it
//     runs (with its pid, read from the server);
//   - a stop in progress ran to its end, nothing was copied, the copy is
//     unsealed; with --restart the server runs again, without it the server
//     is cleanly stopped and the error says so;
//   - the cold pass stopped at a clean point: as for the stop;
//   - an interrupt once the seal has begun, or during the start, lets the
//     job complete: exit 0, the copy sealed;
//   - a second signal while pgtwopass holds the server is reported (what it
//     waits for: "already starting the server again; waiting for it"), not
//     obeyed: pgtwopass exits by itself, not killed by the signal;
//   - the restarted server logs where it logged before (its own log file),
//     not in a file pgtwopass chose.
//
// The copy converges with the next finish.
func TestInterrupts(t *testing.T) {
	t.Parallel()
	const delay = 1500 * time.Millisecond

	type outcome int
	const (
		notStopped  outcome = iota // interrupted before the stop
		interrupted                // interrupted from the stop on: unsealed
		completed                  // exit 0, sealed
	)
	phases := []struct {
		name    string
		wait    string // what stderr says once the phase runs
		errHas  string // in the error line, for notStopped and interrupted
		outcome outcome
		twice   bool // the phase lasts long enough for a second signal
	}{
		{"checkpoint", "pgtwopass: fault: checkpoint:", "CHECKPOINT interrupted", notStopped, true},
		{"stop", "pgtwopass: fault: stop:", "interrupted while the server was stopping: the stop was let finish, and nothing was copied", interrupted, true},
		{"cold", `"msg":"cold pass started"`, "cold pass interrupted", interrupted, false},
		{"seal", "pgtwopass: fault: seal:", "", completed, true},
		{"start", "pgtwopass: fault: start:", "", completed, true},
	}
	// A source cluster for each signal, side by side.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig], func(t *testing.T) {
			t.Parallel()
			src := newCluster(t, 1)
			startCluster(t, src)
			dest := filepath.Join(pgTempDir(t), "copy")
			mustRun(t, "prepare", src.Dir, dest)
			for _, phase := range phases {
				for _, restart := range []bool{true, false} {
					if phase.name == "start" && !restart {
						continue // no start without --restart
					}
					name := phase.name + "/" + map[syscall.Signal]string{syscall.SIGINT: "SIGINT-to-group", syscall.SIGTERM: "SIGTERM"}[sig]
					if restart {
						name += "/restart"
					}
					t.Run(name, func(t *testing.T) {
						if !src.Running() {
							startCluster(t, src)
						}
						sealedBefore := sealed(t, dest)
						logBefore := fileSize(t, src.LogFile)
						// Its own temporary directory, to see that pgtwopass puts
						// no server log there.
						tmp := t.TempDir()
						env := []string{"TMPDIR=" + tmp, "PGTWOPASS_FAULT_PHASE_DELAY=" + phase.name + "=" + delay.String()}
						if phase.name == "cold" {
							env = []string{"TMPDIR=" + tmp, "PGTWOPASS_FAULT_FILE_DELAY=20ms"}
						}
						args := []string{"finish", "--json", "--log-format", "json", src.Dir, dest}
						if restart {
							args = append([]string{"finish", "--restart"}, args[1:]...)
						}
						bg := startWith(t, runOpts{env: env, ownGroup: true}, args...)
						if !bg.waitFor(phase.wait, time.Minute) {
							t.Fatalf("%s: finish reaches the phase (%q on stderr):\n%s", name, phase.wait, bg.stderrSoFar())
						}
						if phase.name == "cold" {
							time.Sleep(100 * time.Millisecond)
						}
						send := func() {
							if sig == syscall.SIGINT {
								bg.signalGroup(sig) // Ctrl-C: the whole foreground job
							} else {
								bg.signal(sig) // kill PID: pgtwopass alone
							}
						}
						send()
						if phase.twice {
							time.Sleep(300 * time.Millisecond)
							send()
						}
						r := bg.wait()
						t.Logf("%s: %s", name, strings.Join(append(stderrLines(r.stderr, "pgtwopass: error:"), stderrLines(r.stderr, "pgtwopass: hint:")...), " | "))
						if r.signal != 0 {
							t.Fatalf("%s: pgtwopass ends by itself, not killed by %v (a second signal is reported, not obeyed):\n%s", name, r.signal, r.stderr)
						}
						if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
							t.Errorf("%s: no panic:\n%s", name, r.stderr)
						}

						st := pgctl.ReadServerState(src.Dir)
						if !st.Known() {
							t.Fatalf("%s: the source's postmaster.pid reads: %v", name, st.Err)
						}
						wantRunning := restart || phase.outcome == notStopped
						if st.Running != wantRunning {
							t.Errorf("%s: afterwards the source server runs: %v, want %v", name, st.Running, wantRunning)
						}
						if !st.Running {
							if cf, err := pgctl.ReadControlFile(src.Dir); err != nil || !cf.CleanlyShutDown() {
								t.Errorf("%s: the source left stopped is cleanly shut down (pg_control), got %v, %v", name, cf, err)
							}
						}

						var s struct {
							OK        bool  `json:"ok"`
							Stopped   *bool `json:"stopped"`
							Restarted *bool `json:"restarted"`
						}
						if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
							t.Errorf("%s: --json prints one JSON object: %v\n%s", name, err, r.stdout)
						}
						errLines := stderrLines(r.stderr, "pgtwopass: error:")
						switch phase.outcome {
						case completed:
							if r.code != 0 || !s.OK || len(errLines) != 0 {
								t.Errorf("%s: an interrupt once the seal has begun lets finish complete: exit 0, got %s", name, r)
							}
							if !sealed(t, dest) {
								t.Errorf("%s: the copy is sealed", name)
							}
						default:
							if r.code != 1 || s.OK {
								t.Errorf("%s: an interrupted finish exits 1, got %s", name, r)
							}
							var note string
							switch {
							case phase.outcome == notStopped && st.Running:
								note = fmt.Sprintf("(the source server was not stopped: it runs, pid %d)", st.PM.PID)
							case st.Running:
								note = fmt.Sprintf("(the source server runs again: pid %d)", st.PM.PID)
							default:
								note = "(the source server is stopped: start it yourself, or use --restart)"
							}
							if len(errLines) != 1 || !strings.Contains(errLines[0], phase.errHas) || !strings.HasSuffix(errLines[0], note) {
								t.Errorf("%s: one error line saying %q and, as read from the server, %q; got %q", name, phase.errHas, note, errLines)
							}
							if h := stderrLines(r.stderr, "pgtwopass: hint:"); len(h) != 1 || !strings.Contains(h[0], "run the same command again") {
								t.Errorf("%s: a hint says how to go on: %q", name, h)
							}
							if phase.outcome == notStopped && sealed(t, dest) != sealedBefore {
								t.Errorf("%s: an interrupt before any pass leaves the copy as it was (sealed %v)", name, sealedBefore)
							}
							if phase.outcome == interrupted && sealed(t, dest) {
								t.Errorf("%s: the copy is left unsealed", name)
							}
						}
						wantStopped := phase.outcome != notStopped
						if s.Stopped == nil || *s.Stopped != wantStopped || s.Restarted == nil || *s.Restarted != (restart && wantStopped) {
							t.Errorf("%s: --json says stopped=%v restarted=%v, want %v, %v", name, s.Stopped, s.Restarted, wantStopped, restart && wantStopped)
						}

						// Each signal is reported with what pgtwopass does about it.
						said := map[string]string{
							"checkpoint": "stopping at a clean point",
							"stop":       "the server is stopping: waiting for the stop to complete; then nothing is copied",
							"cold":       "the cold pass stops at its next clean point",
							"seal":       "the cold pass stops at its next clean point (a seal that has begun completes)",
							"start":      "already starting the server again; waiting for it",
						}[phase.name]
						sigName := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig]
						if !strings.Contains(r.stderr, "interrupted by "+sigName+": "+said) {
							t.Errorf("%s: the signal is reported with what pgtwopass does (%q):\n%s", name, "interrupted by "+sigName+": "+said, r.stderr)
						}
						if phase.twice && !strings.Contains(r.stderr, sigName+" again: "+said) {
							t.Errorf("%s: the second signal is reported, not obeyed (%q):\n%s", name, sigName+" again: "+said, r.stderr)
						}
						if restart && wantStopped {
							// The restarted server logs where it did before.
							if fileSize(t, src.LogFile) <= logBefore {
								t.Errorf("%s: the restarted server logs to its own log %s, which did not grow", name, src.LogFile)
							}
							if m, _ := filepath.Glob(filepath.Join(tmp, "*")); len(m) > 0 {
								t.Errorf("%s: pgtwopass chooses no log file of its own, but its temporary directory holds %v", name, m)
							}
						}
					})
				}
			}
			if src.Running() {
				stopCluster(t, src)
			}
			converges(t, "interrupted finishes", src.Dir, dest)
		})
	}
}
