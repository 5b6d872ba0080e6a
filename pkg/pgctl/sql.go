package pgctl

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtwopass/pgtwopass/internal/faults"
)

// Checkpointer sends the CHECKPOINT that finish issues before it stops the
// server, so that the shutdown checkpoint (downtime) has little to write.
type Checkpointer interface {
	// Check connects and says whether the CHECKPOINT could run (who
	// connects, as which role, and whether that role may CHECKPOINT),
	// without running it: --dry-run, and the check before a job touches
	// anything.
	Check(ctx context.Context) (string, error)
	// Checkpoint runs CHECKPOINT and returns once it is done.
	Checkpoint(ctx context.Context) error
	// String names the connection for messages.
	String() string
}

// SQL connects to a running server with a DSN (libpq's keyword/value or
// URL form). When this process runs as root, connections to a unix socket
// are made as Owner (see ServeOwnerHelper), so that peer authentication
// lets them in as it lets in `sudo -u postgres psql`.
type SQL struct {
	DSN   string
	Owner Owner
}

// NewSQL returns the connection to dsn, made as owner where that matters.
func NewSQL(dsn string, owner Owner) *SQL { return &SQL{DSN: dsn, Owner: owner} }

// asOwner reports whether connections to unix sockets go through the helper.
func (s *SQL) asOwner() bool {
	return os.Geteuid() == 0 && s.Owner.UID != 0 && helperServed.Load()
}

// String says as whom the connections are made: "as OS user postgres"
// through the helper, "" when this process connects itself.
func (s *SQL) String() string {
	if s.asOwner() {
		return "as OS user " + s.Owner.String()
	}
	return ""
}

// Connect opens a connection.
func (s *SQL) Connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.DSN)
	if err != nil {
		return nil, fmt.Errorf("invalid DSN: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if s.asOwner() {
		direct := cfg.DialFunc
		owner := s.Owner
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if network != "unix" {
				return direct(ctx, network, addr)
			}
			return dialAsOwner(ctx, addr, owner)
		}
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// mayCheckpoint says whether the connected role may run CHECKPOINT: a
// superuser, or (PostgreSQL 15 and later) a member of pg_checkpoint.
const mayCheckpoint = `SELECT current_user::text, r.rolsuper,
	CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_checkpoint')
	     THEN pg_has_role(current_user, 'pg_checkpoint', 'MEMBER') ELSE false END
	FROM pg_roles r WHERE r.rolname = current_user`

func (s *SQL) Check(ctx context.Context) (string, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var role string
	var super, member bool
	if err := conn.QueryRow(ctx, mayCheckpoint).Scan(&role, &super, &member); err != nil {
		return "", fmt.Errorf("failed to ask whether role may CHECKPOINT: %w", err)
	}
	who := "connected as role " + role
	if as := s.String(); as != "" {
		who = "connected " + as + " as role " + role
	}
	switch {
	case super:
		return who + " (a superuser)", nil
	case member:
		return who + " (a member of pg_checkpoint)", nil
	}
	return "", fmt.Errorf("%s, which may not run CHECKPOINT (neither a superuser nor a member of pg_checkpoint)", who)
}

func (s *SQL) Checkpoint(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	faults.Phase("checkpoint")
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("failed to run CHECKPOINT: %w", err)
	}
	return nil
}

func (s *SQL) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := s.Connect(ctx)
	if err != nil && s.String() != "" {
		return nil, fmt.Errorf("failed to connect %s: %w", s, err)
	} else if err != nil {
		return nil, fmt.Errorf("failed to connect: %w", err)
	}
	return conn, nil
}

// Checkpoint connects to dsn as this process's user and runs CHECKPOINT.
func Checkpoint(ctx context.Context, dsn string) error {
	return (&SQL{DSN: dsn}).Checkpoint(ctx)
}

// FlushWatcher reads a running server's WAL flush position
// (pg_current_wal_flush_lsn()) on one connection, opened on first use and
// kept until Close: the WAL before that position is on disk.
type FlushWatcher struct {
	sql  *SQL
	conn *pgx.Conn
}

// FlushWatcher returns a watcher that connects as s does.
func (s *SQL) FlushWatcher() *FlushWatcher { return &FlushWatcher{sql: s} }

// FlushLSN returns the flush position. After an error the connection is
// closed; the next call connects again.
func (w *FlushWatcher) FlushLSN(ctx context.Context) (LSN, error) {
	if w.conn == nil {
		conn, err := w.sql.connect(ctx)
		if err != nil {
			return 0, err
		}
		w.conn = conn
	}
	var s string
	if err := w.conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&s); err != nil {
		w.Close()
		return 0, fmt.Errorf("failed to read the WAL flush position: %w", err)
	}
	return ParseLSN(s)
}

// Close closes the connection, if one is open.
func (w *FlushWatcher) Close() {
	if w.conn != nil {
		w.conn.Close(context.Background())
		w.conn = nil
	}
}
