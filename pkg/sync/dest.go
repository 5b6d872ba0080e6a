package sync

import (
	"context"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// The engine has two sides, as rsync has: the sender reads SRC, and the
// destination holds the copy and its manifest. A pass runs between them as
// a stream, so that the destination can be on another host (a receiver at
// the end of a remote shell) as well as on this one:
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
//
// localDest is the destination on this host; remoteDest speaks the wire
// protocol (pkg/wire) to a receiver that serves a localDest on another.

// dest is the destination side of a job: a copy and its manifest.
type dest interface {
	// open checks the copy for a job on the cluster that req describes,
	// and, unless req.DryRun, locks it and creates it when missing. A
	// refusal (*InputError) leaves everything as it was.
	open(ctx context.Context, req *openRequest) (*openReply, error)
	// beginPass starts a pass over entries (the walk of SRC, in walk order).
	beginPass(ctx context.Context, req *passRequest, entries []entry) (destPass, error)
	// timings and saveTimings keep how long the source's last stop and
	// start took, for the next prediction.
	timings(ctx context.Context) serverTimings
	saveTimings(ctx context.Context, t serverTimings) error
	// status reads what the manifest says; it writes nothing.
	status(ctx context.Context) (*CopyStatus, error)
	// verifyManifest re-reads the copy and compares it with the manifest.
	verifyManifest(ctx context.Context, jobs int, ex excluder) ([]Difference, error)
	// walkCopy lists the copy the way walk lists SRC (for verify).
	walkCopy(ctx context.Context, ex excluder) ([]entry, error)
	// hashFiles reads the copy's files rels and calls fn, from one
	// goroutine at a time, with each one's size and block hashes.
	hashFiles(ctx context.Context, rels []string, bs, jobs int, fn func(rel string, size int64, hashes []manifest.Hash, err error) error) error
	// close unlocks the copy and ends the session.
	close() error
	// String names the copy for messages.
	String() string
}

// destPass is one pass on the destination side, driven by the sender.
type destPass interface {
	// next returns the next file the sender must read, in walk order, or
	// nil when there are no more. It must not be called concurrently.
	next(ctx context.Context) (*basis, error)
	// write writes data at off into the copy of file id. Safe for
	// concurrent use; the data may be reused once it returns.
	write(id uint64, off int64, data []byte) error
	// done completes file id: all its writes have returned.
	done(res *fileResult) error
	// commit makes the pass durable once every file is done, and seals the
	// copy after a cold pass. The copy is left as the pass left it when
	// commit is not called (abort).
	commit(ctx context.Context, c *commitRequest) (*commitReply, error)
	// abort ends a pass without committing it.
	abort()
}

// openRequest describes the source to the destination.
type openRequest struct {
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
	Owner ownerIDs
	// Tablespaces are the OIDs of SRC's tablespaces; the destination knows
	// where each one's copy goes.
	Tablespaces []string
}

// ownerIDs names an owner by number and by name.
type ownerIDs struct {
	UID, GID    uint32
	User, Group string
}

// openReply is what the destination says about the copy.
type openReply struct {
	// Header is the manifest's header; nil for a new copy or when the
	// manifest cannot be trusted.
	Header *manifest.Header
	Exists bool
	// Owner is the source's owner as the copy's files must have it.
	Owner ownerIDs
	// AsRoot: the destination can give files any owner.
	AsRoot bool
	// Tablespaces maps each OID to the directory of its copy.
	Tablespaces map[string]string
}

// passRequest starts a pass.
type passRequest struct {
	Kind        manifest.PassKind
	BlockSize   int
	DryRun      bool
	Quick       bool  // a quick cold pass: trust files past the safe horizon
	QuickMargin int64 // ns
	// InFlight bounds the files handed to the sender and not yet done.
	InFlight int
	// Quiet: report no events (a dry run that predicts the downtime).
	Quiet bool
	// Jobs is how many files the sender works on at once.
	Jobs int
}

// basis is what the copy holds of one file that the sender must read.
type basis struct {
	ID  uint64
	Rel string
	// Index is the file's place in the entries of the pass.
	Index int
	// Hashes are the hashes of the copy's blocks: the trusted record's, or
	// those of the copy's contents when no record can be trusted; empty for
	// a file the copy does not have.
	Hashes []manifest.Hash
	// Size is the size of the copy's file (-1: none).
	Size int64
}

// fileResult ends one file of a pass.
type fileResult struct {
	ID uint64
	// Vanished: the running server removed, shortened or replaced the
	// file under the live pass; it gets no record, and the next pass
	// compares it again.
	Vanished bool
	// Entry is the source file as fstat saw it just before it was read:
	// the copy gets its size, mode, owner and times.
	Entry     entry
	Flags     uint32
	CRC32C    uint32
	ReadStart int64
	// Hashes are the hashes of every block of the source file. A remote
	// receiver rebuilds them from the basis and the blocks it received, and
	// checks them against HashesSum (xxh3-64 of the hashes; the sender sets it
	// only for a receiver, which is the only one to check it).
	Hashes    []manifest.Hash
	HashesSum uint64
}

// commitRequest ends a pass.
type commitRequest struct {
	// Pass is the sender's account of the pass, for the manifest's history.
	Pass manifest.Pass
	// BackupManifest, after a cold pass, writes PostgreSQL's
	// backup_manifest; its WAL range is the checkpoint TimeLine and LSN.
	BackupManifest bool
	Timeline       string
	CheckpointLSN  string
}

// commitReply is the destination's account of a pass.
type commitReply struct {
	Header       *manifest.Header // the manifest now committed (nil in a dry run)
	FilesSkipped int64
	FilesChanged int64
	FilesDeleted int64
	// BytesRead counts the copy's own bytes read where no record could
	// vouch for them.
	BytesRead int64
}
