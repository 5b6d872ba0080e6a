package pgctl

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Postmaster is postmaster.pid parsed. Fields absent from the file (it is
// written in stages during startup) are left zero.
type Postmaster struct {
	PID        int
	DataDir    string
	StartTime  int64
	Port       int
	SocketDir  string
	ListenAddr string
	Status     string // e.g. "ready", "starting", "stopping"
}

// ReadPostmasterPID parses dataDir/postmaster.pid. It returns (nil, nil)
// when the file is absent.
func ReadPostmasterPID(dataDir string) (*Postmaster, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read postmaster.pid: %w", err)
	}
	pm, err := parsePostmasterPID(string(b))
	if err != nil {
		return nil, fmt.Errorf("failed to parse postmaster.pid: %w", err)
	}
	return pm, nil
}

func parsePostmasterPID(text string) (*Postmaster, error) {
	lines := strings.Split(text, "\n")
	line := func(i int) string {
		if i < len(lines) {
			return strings.TrimSpace(lines[i])
		}
		return ""
	}
	if len(lines) < 2 {
		// PostgreSQL writes the PID with its newline in one write: a first
		// line without one was cut short (12 may be the start of 1234).
		return nil, fmt.Errorf("bad PID line %q: no newline (half-written)", line(0))
	}
	pid, err := strconv.Atoi(line(0))
	if err != nil {
		return nil, fmt.Errorf("bad PID line %q: %w", line(0), err)
	}
	if pid < 0 { // very old releases wrote -PID for a standalone backend
		pid = -pid
	}
	// ServerRunning signals the PID: one that a pid_t cannot hold would
	// name another process, or (negative) a process group.
	if pid < 0 || pid > math.MaxInt32 {
		return nil, fmt.Errorf("bad PID line %q: out of range", line(0))
	}
	pm := &Postmaster{PID: pid, DataDir: line(1), SocketDir: line(4), ListenAddr: line(5), Status: line(7)}
	if s := line(2); s != "" {
		if pm.StartTime, err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, fmt.Errorf("bad start time %q: %w", s, err)
		}
	}
	if s := line(3); s != "" {
		if pm.Port, err = strconv.Atoi(s); err != nil {
			return nil, fmt.Errorf("bad port %q: %w", s, err)
		}
		if pm.Port < 0 || pm.Port > 65535 {
			return nil, fmt.Errorf("bad port %q: out of range", s)
		}
	}
	return pm, nil
}

// ServerRunning reports whether a postmaster is alive for dataDir:
// postmaster.pid is present and its PID exists. For a stale pid file it
// returns false together with the parsed Postmaster. An error (the file
// cannot be read, or is not what PostgreSQL writes) means that a server
// may be running: callers must fail closed (ReadServerState).
func ServerRunning(dataDir string) (bool, *Postmaster, error) {
	st := ReadServerState(dataDir)
	return st.Running, st.PM, st.Err
}

// ServerState is what dataDir/postmaster.pid says, read at one moment, about
// the server on a data directory: the test of pg_ctl status (the file is
// there and the process it names is alive), done without running pg_ctl,
// so that it works whatever stops and starts the server.
type ServerState struct {
	Dir     string
	Running bool
	// PM is the parsed postmaster.pid; nil when there is none.
	PM *Postmaster
	// Err: postmaster.pid is there but cannot be read or is not what
	// PostgreSQL writes (half-written, damaged, unreadable): a server may
	// be running, and whoever asks must not act as if none did.
	Err error
}

// ReadServerState reads dataDir/postmaster.pid now.
func ReadServerState(dataDir string) ServerState {
	st := ServerState{Dir: dataDir}
	st.PM, st.Err = ReadPostmasterPID(dataDir)
	if st.Err != nil || st.PM == nil {
		return st
	}
	if st.PM.PID == 0 {
		// PostgreSQL never writes 0, and kill(0, 0) would test this
		// process's own group.
		st.Err = fmt.Errorf("failed to parse postmaster.pid: PID 0")
		return st
	}
	err := unix.Kill(st.PM.PID, 0)
	st.Running = err == nil || errors.Is(err, unix.EPERM)
	return st
}

// Known reports whether the state could be read.
func (s ServerState) Known() bool { return s.Err == nil }

// String says the state for messages: "running (pid 123)", "stopped",
// "stopped (postmaster.pid names pid 123, which is not running)", or
// "unknown: ...".
func (s ServerState) String() string {
	switch {
	case s.Err != nil:
		return "unknown: " + s.Err.Error()
	case s.Running:
		return fmt.Sprintf("running (pid %d)", s.PM.PID)
	case s.PM != nil:
		return fmt.Sprintf("stopped (a stale postmaster.pid names pid %d, which is not running)", s.PM.PID)
	}
	return "stopped"
}

// ReadPostmasterOpts reads dataDir/postmaster.opts, which PostgreSQL writes
// as the unquoted postgres binary followed by each argument in double
// quotes. It returns the binary and the unquoted arguments.
func ReadPostmasterOpts(dataDir string) (binary string, args []string, err error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.opts"))
	if err != nil {
		return "", nil, fmt.Errorf("failed to read postmaster.opts: %w", err)
	}
	binary, args = parsePostmasterOpts(string(b))
	if binary == "" {
		return "", nil, fmt.Errorf("failed to parse postmaster.opts: no postgres binary")
	}
	return binary, args, nil
}

// parsePostmasterOpts splits `/bin/postgres "-D" "/x" "-p" "5433"`.
// PostgreSQL does not escape quotes inside arguments, so an argument ends
// at a `"` followed by a space or the end of the text.
func parsePostmasterOpts(text string) (string, []string) {
	text = strings.TrimRight(text, "\r\n")
	binary, rest, _ := strings.Cut(text, ` "`)
	binary = strings.TrimSpace(binary)
	if rest == "" {
		return binary, nil
	}
	rest = `"` + rest
	var args []string
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			return binary, args
		}
		if rest[0] != '"' { // not PostgreSQL's format: take a bare word
			word, r, _ := strings.Cut(rest, " ")
			args, rest = append(args, word), r
			continue
		}
		rest = rest[1:]
		end := strings.Index(rest, `" `)
		if end < 0 {
			args = append(args, strings.TrimSuffix(rest, `"`))
			return binary, args
		}
		args, rest = append(args, rest[:end]), rest[end+2:]
	}
}

// DefaultDSN builds a libpq keyword/value connection string to the
// postgres database for the server described by pm.
func DefaultDSN(pm *Postmaster, user string) string {
	host := pm.SocketDir
	if host == "" {
		host, _, _ = strings.Cut(pm.ListenAddr, ",")
		switch host = strings.TrimSpace(host); host {
		case "", "*":
			host = "localhost"
		case "0.0.0.0":
			host = "127.0.0.1"
		case "::":
			host = "::1"
		}
	}
	parts := []string{"host=" + dsnQuote(host)}
	if pm.Port != 0 {
		parts = append(parts, "port="+strconv.Itoa(pm.Port))
	}
	parts = append(parts, "dbname=postgres")
	if user != "" {
		parts = append(parts, "user="+dsnQuote(user))
	}
	parts = append(parts, "connect_timeout=5")
	return strings.Join(parts, " ")
}

func dsnQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
