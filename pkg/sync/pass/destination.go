package pass

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// The two sides of a pass meet here. A pass runs as a stream, so that the
// destination can be on another host (a receiver at the end of a remote
// shell) as well as on this one:
//
//  1. the sender walks SRC and gives the destination the list of entries;
//  2. the destination deletes what SRC no longer has, makes directories
//     and symlinks, and merges the entries with its manifest: for each
//     regular file, in walk order, it either keeps the record (a file
//     trusted by its stat, where the pass allows that) or hands the sender
//     a basis: the block hashes that the copy of that file holds;
//  3. the sender reads each of those files, hashes its blocks, and sends
//     only the blocks whose hashes differ from the basis, then the file's
//     end (its stat, CRC-32C and hashes);
//  4. the destination makes each file durable and records it, and at the
//     commit makes the directories durable, replaces the manifest and, after
//     a cold pass, seals the copy.

// Destination is the side of a job that holds a copy and its manifest.
type Destination interface {
	// Open checks the copy for a job on the cluster that req describes,
	// and, unless req.DryRun, locks it and creates it when missing. A
	// refusal (*InputError) leaves everything as it was.
	Open(ctx context.Context, req *OpenRequest) (*OpenReply, error)
	// BeginPass starts a pass over entries (the walk of SRC, in walk order).
	BeginPass(ctx context.Context, req *PassRequest, entries []Entry) (DestinationPass, error)
	// Timings and SaveTimings keep how long the source's last stop and
	// start took, for the next prediction.
	Timings(ctx context.Context) ServerTimings
	SaveTimings(ctx context.Context, t ServerTimings) error
	// Status reads what the manifest says; it writes nothing.
	Status(ctx context.Context) (*CopyStatus, error)
	// VerifyManifest re-reads the copy and compares it with the manifest.
	VerifyManifest(ctx context.Context, jobs int, ex Excluder) ([]Difference, error)
	// WalkCopy lists the copy the way Walk lists SRC (for verify).
	WalkCopy(ctx context.Context, ex Excluder) ([]Entry, error)
	// HashFiles reads the copy's files rels and calls fn, from one
	// goroutine at a time, with each one's size and block hashes.
	HashFiles(ctx context.Context, rels []string, bs, jobs int, fn func(rel string, size int64, hashes []manifest.Hash, err error) error) error
	// SealedHashes calls fn, in walk order, with each record of the
	// manifest as the last pass left it: the file's path, its size and its
	// block hashes (verify --against-seal).
	SealedHashes(ctx context.Context, fn func(rel string, size int64, hashes []manifest.Hash) error) error
	// InFlight is how many files a pass with jobs workers should have
	// handed to the sender and not done: enough to keep the workers busy
	// across small files, and to fill a network's round trip
	// (InFlightFiles).
	InFlight(jobs int) int
	// Traffic counts the bytes sent to and received from a receiver on
	// another host (0 for a copy on this host).
	Traffic() (sent, received int64)
	// Detach removes pgtwopass's state from a sealed copy that has become
	// a cluster in use.
	Detach(ctx context.Context) error
	// Close unlocks the copy and ends the session.
	Close() error
	// String names the copy for messages.
	String() string
}

// DestinationPass is one pass on the destination side, driven by the sender.
type DestinationPass interface {
	// Next returns the next files the sender must read, in walk order: at
	// least one and at most max, waiting for the first while the files in
	// flight fill the window (see Window); none when there are no more. It
	// must not be called concurrently.
	Next(ctx context.Context, max int) ([]*Basis, error)
	// Write writes data at off into the copy of file id. Safe for
	// concurrent use; the data may be reused once it returns.
	Write(id uint64, off int64, data []byte) error
	// Done completes file id: all its writes have returned.
	Done(res *FileResult) error
	// Flush sends what Write and Done may hold back to send together (a
	// destination on another host). The sender calls it after each batch
	// of files, and after each chunk of a large file.
	Flush() error
	// Commit makes the pass durable once every file is done, and seals the
	// copy after a cold pass. The copy is left as the pass left it when
	// Commit is not called (Abort).
	Commit(ctx context.Context, c *CommitRequest) (*CommitReply, error)
	// Abort ends a pass without committing it.
	Abort()
}

// OpenRequest describes the source to the destination.
type OpenRequest struct {
	SystemIdentifier uint64
	PGVersion        string
	// BlockSize is --block-size; 0 means the copy's, or the default.
	BlockSize int
	DryRun    bool
	// ReadOnly opens the copy for verify: no checks of what it is, no lock.
	ReadOnly bool
	// Quick asks for the checks of the quick cold pass (no network file
	// system under the copy).
	Quick bool
	// Owner is the data directory's owner. A remote destination gives
	// the copy the owner of the same name on its host.
	Owner OwnerIDs
	// Tablespaces are the OIDs of SRC's tablespaces; the destination knows
	// where each one's copy goes.
	Tablespaces []string
	// AllowStarted refreshes a copy that has run since its seal (a test
	// start, an abandoned cutover), discarding what it changed.
	AllowStarted bool
	// MkPath creates the missing parents of DEST and of the parts of the
	// copy outside it (rsync's --mkpath); without it they must exist.
	MkPath bool
	// BootID is the sender's kernel boot ID, and Reads the directories its
	// passes read: a destination on the same boot (the same host) refuses
	// to write any of them (CheckPlaces).
	BootID string
	Reads  []Place
}

// OpenReply is what the destination says about the copy.
type OpenReply struct {
	// Header is the manifest's header; nil for a new copy or when the
	// manifest cannot be trusted.
	Header *manifest.Header
	Exists bool
	// Owner is the source's owner as the copy's files must have it.
	Owner OwnerIDs
	// AsRoot: the destination can give files any owner.
	AsRoot bool
	// Tablespaces maps each OID to the directory of its copy.
	Tablespaces map[string]string
}

// PassRequest starts a pass.
type PassRequest struct {
	Kind        manifest.PassKind
	BlockSize   int
	DryRun      bool
	Quick       bool  // a quick cold pass: trust files past the safe horizon
	QuickMargin int64 // ns
	// InFlight bounds the files handed to the sender and not yet done;
	// MaxInFlightBytes bounds their bytes.
	InFlight int
	// Quiet: report no events (a dry run that predicts the downtime).
	Quiet bool
	// Jobs is how many files the sender works on at once.
	Jobs int
	// WAL, for a WAL-guided cold pass, says what the WAL tells of each
	// file of the walk; nil for every other pass.
	WAL *WALRequest
}

// WALRequest is what a WAL-guided cold pass tells the destination: what
// the WAL between a checkpoint's redo point and the shutdown checkpoint
// says of each file, and since when a record is good at that redo point.
type WALRequest struct {
	// Kinds holds, for each entry of the pass, what the WAL says of it:
	// WALNone, WALBlocks or WALWhole (entries that are no regular files
	// have WALWhole).
	Kinds []byte
	// Blocks holds, for each entry of kind WALBlocks, the blocks the WAL
	// names (sorted, each once); nil for the others. The destination needs
	// them to send, of a file read in part, the hashes of the blocks the
	// sender reads and no others (PartialBlocks).
	Blocks [][]uint32
	// Since (Unix ns) is when the CHECKPOINT returned: a record whose read
	// began later describes the file as it was at the redo point or after,
	// and the WAL names every block changed since.
	Since int64
	// Margin (ns) is the source's safe horizon: a record read earlier is
	// good at the redo point if the source file's stat has not moved since
	// its read, and its ctime was older than the read's start by more than
	// Margin (the quick cold pass's rule).
	Margin int64
}

// What the WAL says of a file (WALRequest.Kinds).
const (
	// WALNone: the WAL names no block of it; its record stands if it is
	// good at the redo point and the file's size did not change.
	WALNone byte = iota
	// WALBlocks: the WAL names some of its blocks; only those (and what lies
	// past the record's size) need reading.
	WALBlocks
	// WALWhole: the WAL does not cover it: read it whole.
	WALWhole
)

// Basis is what the copy holds of one file that the sender must read.
type Basis struct {
	ID  uint64
	Rel string
	// Index is the file's place in the entries of the pass.
	Index int
	// Hashes are the hashes of the copy's blocks: the trusted record's, or
	// those of the copy's contents when no record can be trusted; empty for
	// a file the copy does not have. With Partial, those of Blocks only.
	Hashes []manifest.Hash
	// Size is the size of the copy's file (-1: none).
	Size int64
	// Partial (WAL-guided cold pass): the file has a trusted record, good
	// at the redo point; the sender reads only the blocks the WAL names and
	// what lies past the record's size (PartialBlocks), and the record
	// stands for the others. Hashes are then the record's hashes of Blocks:
	// the blocks of PartialBlocks(named, Size, Size, bs), those the sender
	// may read that the record has.
	Partial bool
	Blocks  []uint32
}

// MaxNamedBlocks bounds the blocks that the WAL may name of one file for it
// to be read in part: a file with more is read whole (the list travels to
// a destination on another host in one frame, 4 bytes a block).
const MaxNamedBlocks = 1 << 21

// PartialBlocks returns the blocks a WAL-guided cold pass reads of a file of
// size bytes read in part (Basis.Partial), whose copy has copySize bytes:
// those the WAL names (named, sorted) below the file's end, and every block
// from the one that holds the copy's end on (the file grew, or shrank and
// grew again), in order, each once.
func PartialBlocks(named []uint32, copySize, size int64, bs int) []uint32 {
	nb := uint32(manifest.NumBlocks(size, bs))
	tail := uint32(min(max(copySize, 0)/int64(bs), int64(nb)))
	end, _ := slices.BinarySearch(named, tail)
	blocks := make([]uint32, 0, end+int(nb-tail))
	blocks = append(blocks, named[:end]...)
	for b := tail; b < nb; b++ {
		blocks = append(blocks, b)
	}
	return blocks
}

// FileResult ends one file of a pass.
type FileResult struct {
	ID uint64
	// Vanished: the running server removed, shortened or replaced the
	// file under the live pass; it gets no record, and the next pass
	// compares it again.
	Vanished bool
	// Entry is the source file as fstat saw it just before it was read:
	// the copy gets its size, mode, owner and times.
	Entry     Entry
	Flags     uint32
	CRC32C    uint32
	ReadStart int64
	// Hashes are the hashes of every block of the source file; for a file
	// read in part (Basis.Partial), those of Blocks, the blocks read
	// (PartialBlocks): the record stands for the others.
	Hashes []manifest.Hash
	Blocks []uint32
}

// CommitRequest ends a pass.
type CommitRequest struct {
	// Pass is the sender's account of the pass, for the manifest's history.
	Pass manifest.Pass
	// BackupManifest, after a cold pass, writes PostgreSQL's
	// backup_manifest; its WAL range is the checkpoint TimeLine and LSN.
	BackupManifest bool
	Timeline       string
	CheckpointLSN  string
}

// CommitReply is the destination's account of a pass.
type CommitReply struct {
	Header       *manifest.Header // the manifest now committed (nil in a dry run)
	FilesSkipped int64
	FilesChanged int64
	FilesDeleted int64
	// BytesRead counts the copy's own bytes read where no record could
	// vouch for them.
	BytesRead int64
}

// CopyStatus is what the manifest of a copy says.
type CopyStatus struct {
	Dest   string
	Header manifest.Header
	// Sealed: a cold pass completed and global/pg_control is installed,
	// so the copy can be started.
	Sealed bool
	// RanSinceSeal: the installed pg_control changed since the seal: the
	// copy has run as a PostgreSQL cluster, and is not a copy any more.
	RanSinceSeal bool
	// Running: a server runs on the copy (PID), or its postmaster.pid
	// cannot be read.
	Running bool
	PID     int
}

// Difference is one way in which the copy differs from the source.
type Difference struct {
	Path string
	What string
}

func (d Difference) String() string { return d.Path + ": " + d.What }

// Differences collects the differences that workers find.
type Differences struct {
	mu   sync.Mutex
	list []Difference
}

// Add records a difference of path, described by format and args.
func (v *Differences) Add(path, format string, args ...any) {
	v.mu.Lock()
	v.list = append(v.list, Difference{Path: path, What: fmt.Sprintf(format, args...)})
	v.mu.Unlock()
}

// Sorted returns the differences in walk order.
func (v *Differences) Sorted() []Difference {
	v.mu.Lock()
	defer v.mu.Unlock()
	sort.Slice(v.list, func(a, b int) bool { return manifest.ComparePaths(v.list[a].Path, v.list[b].Path) < 0 })
	return append([]Difference{}, v.list...)
}

// ServerTimings are how long the last stop and start of the source took,
// kept in DEST/.pgtwopass/server.json for the next prediction.
type ServerTimings struct {
	StopSeconds  float64   `json:"stop_seconds"`
	StartSeconds float64   `json:"start_seconds"`
	When         time.Time `json:"when"`
}

// Stop and Start are the times as durations.
func (t ServerTimings) Stop() time.Duration  { return time.Duration(t.StopSeconds * 1e9) }
func (t ServerTimings) Start() time.Duration { return time.Duration(t.StartSeconds * 1e9) }

// MaxServerSeconds bounds a believable stop or start of the server.
const MaxServerSeconds = 24 * 60 * 60

// ParseTimings reads server.json, a file in DEST that anyone may have
// edited or damaged. A time it cannot believe (negative, over a day, not a
// number) counts as unknown, so that it can neither shorten a prediction
// below the copy's own time nor overflow it: a prediction that lets a budget
// pass wrongly stops a server for longer than the DBA allowed.
func ParseTimings(b []byte) ServerTimings {
	var t ServerTimings
	if err := json.Unmarshal(b, &t); err != nil {
		return ServerTimings{}
	}
	for _, s := range []*float64{&t.StopSeconds, &t.StartSeconds} {
		if !(*s >= 0 && *s <= MaxServerSeconds) { // NaN fails both
			*s = 0
		}
	}
	return t
}

// TimingsName is the file in DEST/.pgtwopass that keeps the ServerTimings.
const TimingsName = "server.json"

// ReadTimings reads the ServerTimings of the copy in dest (none: zero).
func ReadTimings(dest string) ServerTimings {
	b, err := os.ReadFile(filepath.Join(dest, manifest.DirName, TimingsName))
	if err != nil {
		return ServerTimings{}
	}
	return ParseTimings(b)
}

// WriteTimings records the ServerTimings of the copy in dest, atomically.
func WriteTimings(dest string, t ServerTimings) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(dest, manifest.DirName)
	if err := renameio.WriteFile(filepath.Join(dir, TimingsName), append(b, '\n'), 0o600, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	return manifest.SyncDir(dir)
}
