package sync

import (
	"context"
	"fmt"
	"io"

	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/sync/remote"
)

// The engine's parts define these; the job's callers (the CLI, the
// benchmarks, the demo) use them from here.

// Observer receives what the engine does; the CLI renders it as logs,
// progress bars or JSON. Its methods may be called from several goroutines.
type Observer = pass.Observer

// Event is one report from the engine; EventKind says what it reports.
type (
	Event       = pass.Event
	EventKind   = pass.EventKind
	ServerPhase = pass.ServerPhase
	PassStats   = pass.Stats
	CopyStatus  = pass.CopyStatus
	Difference  = pass.Difference
	InputError  = pass.InputError
	RemoteError = pass.RemoteError
)

// The kinds of Event.
const (
	PassStarted  = pass.PassStarted
	PassFinished = pass.PassFinished
	Step         = pass.Step
	Warning      = pass.Warning
	FileChanged  = pass.FileChanged
	FileDeleted  = pass.FileDeleted
)

// The phases of the source server that Steps report.
const (
	ServerUnchanged = pass.ServerUnchanged
	ServerStopping  = pass.ServerStopping
	ServerStopped   = pass.ServerStopped
	ServerStarting  = pass.ServerStarting
	ServerStarted   = pass.ServerStarted
)

// Cold pass modes.
const (
	ColdChecksum = pass.ColdChecksum
	ColdQuick    = pass.ColdQuick
	ColdWAL      = pass.ColdWAL
)

// DefaultBlockSize is PostgreSQL's page size (docs/design.md explains it).
const DefaultBlockSize = pass.DefaultBlockSize

// DefaultQuickMargin is the quick cold pass's safe horizon.
const DefaultQuickMargin = pass.DefaultQuickMargin

// DefaultExcludes are left out of every copy (see pass.DefaultExcludes).
var DefaultExcludes = pass.DefaultExcludes

// ErrInterrupted reports a pass stopped by a signal or a cancelled context
// at a clean point: the copy is left unsealed and a rerun converges.
var ErrInterrupted = pass.ErrInterrupted

// A copy on another host.
type (
	Remote         = remote.Remote
	RemoteOptions  = remote.Options
	ReceiveOptions = remote.ReceiveOptions
)

// The defaults of --rsh and --remote-path.
const (
	DefaultRsh        = remote.DefaultRsh
	DefaultRemotePath = remote.DefaultRemotePath
)

// ParseRemote reports whether dest names a directory on another host.
func ParseRemote(dest string) (Remote, bool) { return remote.ParseRemote(dest) }

// Receive serves one session of the wire protocol on r and w: the receiver
// end of a copy to another host (pgtwopass receive).
func Receive(ctx context.Context, r io.Reader, w io.Writer, o ReceiveOptions) error {
	return remote.Receive(ctx, r, w, o)
}

func inputErr(hint, format string, args ...any) error { return pass.InputErr(hint, format, args...) }

// serverStep reports a Step that moves the source server to phase.
func (j *job) serverStep(phase ServerPhase, format string, args ...any) {
	j.opts.Observer.Event(Event{Kind: Step, Server: phase, Msg: fmt.Sprintf(format, args...)})
}
