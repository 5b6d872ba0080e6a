package pgctl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
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
// returns false together with the parsed Postmaster.
func ServerRunning(dataDir string) (bool, *Postmaster, error) {
	pm, err := ReadPostmasterPID(dataDir)
	if err != nil || pm == nil {
		return false, pm, err
	}
	if pm.PID <= 0 {
		return false, pm, nil
	}
	err = unix.Kill(pm.PID, 0)
	return err == nil || errors.Is(err, unix.EPERM), pm, nil
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

// Checkpoint connects to dsn and runs CHECKPOINT.
func Checkpoint(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("failed to connect for CHECKPOINT: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("failed to run CHECKPOINT: %w", err)
	}
	return nil
}

// FlushLSN connects to dsn and returns the server's WAL flush position
// (pg_current_wal_flush_lsn()): the WAL before it is on disk.
func FlushLSN(ctx context.Context, dsn string) (LSN, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("failed to connect: %w", err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&s); err != nil {
		return 0, fmt.Errorf("failed to read the WAL flush position: %w", err)
	}
	return ParseLSN(s)
}
