package pass

import (
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// Observer receives what the engine does; the CLI renders it as logs,
// progress bars or JSON. Its methods may be called from several goroutines.
type Observer interface {
	// Event reports a step: a pass starting or ending, the server being
	// checkpointed, stopped or started, or a warning.
	Event(Event)
	// Progress adds bytes read from the source and written to the copy by
	// the running pass.
	Progress(read, written int64)
}

// EventKind says what an Event reports.
type EventKind int

const (
	// PassStarted: a pass begins; Pass and Total are set.
	PassStarted EventKind = iota
	// PassFinished: a pass ended; Stats is set.
	PassFinished
	// Step: a step of the job (checkpoint, stop, start, seal); Msg says which.
	Step
	// Warning: something the user should know; the job goes on.
	Warning
	// FileChanged: one file's contents or metadata were written (Path).
	FileChanged
	// FileDeleted: an entry of the copy was removed (Path).
	FileDeleted
)

// Event is one report from the engine.
type Event struct {
	Kind  EventKind
	Pass  manifest.PassKind
	Msg   string
	Path  string
	Total int64 // PassStarted: bytes the pass will read at most
	Stats *Stats
	// Server is set on the Steps that stop and start the source server.
	Server ServerPhase
}

// ServerPhase says where a Step leaves the source server, for renderers
// that show the downtime while it runs.
type ServerPhase int

const (
	// ServerUnchanged: the Step is not about stopping or starting the server.
	ServerUnchanged ServerPhase = iota
	// ServerStopping: the stop command was issued; the downtime counts from here.
	ServerStopping
	// ServerStopped: the server is down.
	ServerStopped
	// ServerStarting: the start command was issued.
	ServerStarting
	// ServerStarted: the server runs again; the downtime ends here.
	ServerStarted
)

// Stats is what one pass did.
type Stats struct {
	Kind          manifest.PassKind
	DryRun        bool
	Started       time.Time
	Finished      time.Time
	FilesExamined int64 // regular files whose contents were read
	FilesSkipped  int64 // regular files trusted by their stat (live pass)
	FilesChanged  int64 // entries whose contents or metadata were written
	FilesDeleted  int64 // entries removed from the copy
	BytesRead     int64 // from the source (and from the copy when the manifest could not answer)
	BytesWritten  int64 // to the copy
	BlocksWritten int64
	// What the walk found that the copy does not carry as it is (see
	// Notes): counted in every pass, reported in the first of a job.
	Specials, HardLinked, OutsideLinks int64
	// ReadTime and WriteTime split the time spent copying files between
	// reading (and hashing) and writing (and fsync).
	ReadTime  time.Duration
	WriteTime time.Duration
}

// Duration is how long the pass took.
func (s *Stats) Duration() time.Duration { return s.Finished.Sub(s.Started) }

// NopObserver discards everything.
type NopObserver struct{}

func (NopObserver) Event(Event)           {}
func (NopObserver) Progress(int64, int64) {}
