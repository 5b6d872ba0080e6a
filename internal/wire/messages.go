package wire

import "github.com/pgtwopass/pgtwopass/pkg/manifest"

// The messages. docs/protocol.md gives each one's fields and when it is
// sent. "S" is the sender (pgtwopass, which reads SRC); "R" the receiver
// (pgtwopass receive, which holds the copy).
const (
	THello          Type = 1  // S→R, R→S: magic, version, program
	TError          Type = 2  // R→S: the request or the pass failed; the receiver then ends the session
	TOpen           Type = 3  // S→R: check (and lock) the copy for a job
	TOpenReply      Type = 4  // R→S
	TEntries        Type = 5  // S→R before TBegin, R→S after TWalk: a batch of entries
	TBegin          Type = 6  // S→R: start a pass over the entries sent
	TReady          Type = 7  // R→S: the pass began (deletions, directories, links done)
	TBasis          Type = 8  // R→S: a file to read and the copy's hashes of it
	TEndBases       Type = 9  // R→S: no more files to read in this pass
	TWrite          Type = 10 // S→R: blocks of a file
	TDone           Type = 11 // S→R: the end of a file
	TCommit         Type = 12 // S→R: every file is done; make the pass durable (and seal)
	TCommitted      Type = 13 // R→S: the pass is durable
	TAbort          Type = 14 // S→R: end the pass without committing it
	TEvent          Type = 15 // R→S: something the user should see
	TTimings        Type = 16 // S→R: the server timings kept in the copy
	TTimingsReply   Type = 17 // R→S
	TSaveTimings    Type = 18 // S→R
	TOK             Type = 19 // R→S: a request without a reply of its own succeeded
	TStatus         Type = 20 // S→R: what the manifest says
	TStatusReply    Type = 21 // R→S
	TVerifyManifest Type = 22 // S→R: re-hash the copy, compare with the manifest
	TDiffs          Type = 23 // R→S
	TWalk           Type = 24 // S→R: list the copy (TEntries..., TEndEntries)
	TEndEntries     Type = 25 // R→S
	THash           Type = 26 // S→R: hash these files of the copy (THashReply..., TEndHashes)
	THashReply      Type = 27 // R→S
	TEndHashes      Type = 28 // R→S
	TDetach         Type = 30 // S→R: remove pgtwopass's state from the copy (TOK)
	TSealed         Type = 31 // S→R: the manifest's records (THashReply..., TEndHashes)
	TBye            Type = 29 // S→R: the session ends; the receiver unlocks the copy and exits
)

// Error kinds.
const (
	ErrKindFailure = 1 // something failed (exit status 1)
	ErrKindInput   = 2 // bad input: nothing was changed (exit status 2)
)

// Hello opens the session from both ends.
type Hello struct {
	Magic   string
	Version uint16
	Program string // e.g. "pgtwopass 0.3.0"
}

func (Hello) Type() Type { return THello }
func (m Hello) Encode(e *Encoder) {
	e.String(m.Magic)
	e.U16(m.Version)
	e.String(m.Program)
}
func DecodeHello(d *Decoder) (m Hello) {
	m.Magic, m.Version, m.Program = d.String(), d.U16(), d.String()
	return m
}

// Error reports a failure of the receiver.
type Error struct {
	Kind uint8
	What string
	Hint string
}

func (Error) Type() Type { return TError }
func (m Error) Encode(e *Encoder) {
	e.U8(m.Kind)
	e.String(m.What)
	e.String(m.Hint)
}
func DecodeError(d *Decoder) (m Error) {
	m.Kind, m.What, m.Hint = d.U8(), d.String(), d.String()
	return m
}

// Open asks the receiver to check the copy for a job on a cluster.
type Open struct {
	SystemIdentifier uint64
	PGVersion        string
	BlockSize        uint32
	DryRun           bool
	ReadOnly         bool
	Quick            bool
	UID, GID         uint32
	User, Group      string
	Tablespaces      []string // OIDs
	// BootID is the sender's kernel boot ID; Reads are the directories its
	// passes read. A receiver on the same boot (the same host) checks that
	// it writes none of them.
	BootID string
	Reads  []Place
	// MkPath creates the missing parents of the copy's directories.
	MkPath bool
	// AllowStarted refreshes a copy that has run since its seal.
	AllowStarted bool
}

// Place is a directory, with the device and inode of itself (zero when it
// does not exist) and of its ancestors, nearest first.
type Place struct {
	What, Path string
	Self       FileID
	Up         []FileID
}

// FileID is a device and an inode number.
type FileID struct{ Dev, Ino uint64 }

func (Open) Type() Type { return TOpen }
func (m Open) Encode(e *Encoder) {
	e.U64(m.SystemIdentifier)
	e.String(m.PGVersion)
	e.U32(m.BlockSize)
	e.Bool(m.DryRun)
	e.Bool(m.ReadOnly)
	e.Bool(m.Quick)
	e.U32(m.UID)
	e.U32(m.GID)
	e.String(m.User)
	e.String(m.Group)
	encodeStrings(e, m.Tablespaces)
	e.Bool(m.MkPath)
	e.Bool(m.AllowStarted)
	e.String(m.BootID)
	e.U32(uint32(len(m.Reads)))
	for _, p := range m.Reads {
		e.String(p.What)
		e.String(p.Path)
		e.U64(p.Self.Dev)
		e.U64(p.Self.Ino)
		e.U32(uint32(len(p.Up)))
		for _, id := range p.Up {
			e.U64(id.Dev)
			e.U64(id.Ino)
		}
	}
}
func DecodeOpen(d *Decoder) (m Open) {
	m.SystemIdentifier, m.PGVersion, m.BlockSize = d.U64(), d.String(), d.U32()
	m.DryRun, m.ReadOnly, m.Quick = d.Bool(), d.Bool(), d.Bool()
	m.UID, m.GID, m.User, m.Group = d.U32(), d.U32(), d.String(), d.String()
	m.Tablespaces = decodeStrings(d)
	m.MkPath, m.AllowStarted = d.Bool(), d.Bool()
	m.BootID = d.String()
	n := d.Count(4 + 4 + 16 + 4)
	for range n {
		p := Place{What: d.String(), Path: d.String(), Self: FileID{d.U64(), d.U64()}}
		k := d.Count(16)
		for range k {
			p.Up = append(p.Up, FileID{d.U64(), d.U64()})
		}
		m.Reads = append(m.Reads, p)
	}
	return m
}

func encodeStrings(e *Encoder, ss []string) {
	e.U32(uint32(len(ss)))
	for _, s := range ss {
		e.String(s)
	}
}

func decodeStrings(d *Decoder) []string {
	n := d.Count(4)
	ss := make([]string, 0, n)
	for range n {
		ss = append(ss, d.String())
	}
	return ss
}

// A pass and a manifest header travel as the manifest's own types
// (manifest.Pass, manifest.Header); a header from the other end is checked
// as the manifest's reader checks one.

func encodePass(e *Encoder, p *manifest.Pass) {
	e.U8(uint8(p.Kind))
	for _, v := range []int64{p.Started, p.Finished, p.BytesRead, p.BytesWritten, p.FilesChanged, p.FilesDeleted, p.ReadNs, p.WriteNs} {
		e.I64(v)
	}
}

func decodePass(d *Decoder) (p manifest.Pass) {
	p.Kind = manifest.PassKind(d.U8())
	p.Started, p.Finished, p.BytesRead, p.BytesWritten = d.I64(), d.I64(), d.I64(), d.I64()
	p.FilesChanged, p.FilesDeleted, p.ReadNs, p.WriteNs = d.I64(), d.I64(), d.I64(), d.I64()
	return p
}

func encodeHeader(e *Encoder, h *manifest.Header) {
	e.Bool(h != nil)
	if h == nil {
		return
	}
	e.U16(h.Flags)
	e.U32(h.BlockSize)
	e.U64(h.SystemIdentifier)
	e.String(h.PGVersion)
	e.I64(h.Created)
	e.U64(h.Files)
	e.U64(h.Bytes)
	e.U32(uint32(len(h.Passes)))
	for i := range h.Passes {
		encodePass(e, &h.Passes[i])
	}
}

func decodeHeader(d *Decoder) *manifest.Header {
	if !d.Bool() {
		return nil
	}
	h := &manifest.Header{Flags: d.U16(), BlockSize: d.U32(), SystemIdentifier: d.U64(), PGVersion: d.String(), Created: d.I64(), Files: d.U64(), Bytes: d.U64()}
	n := d.Count(65)
	for range n {
		h.Passes = append(h.Passes, decodePass(d))
	}
	if d.Err() == nil && (!manifest.ValidBlockSize(int(h.BlockSize)) || len(h.Passes) > manifest.MaxPasses) {
		d.Fail("a manifest header with block size %d and %d passes", h.BlockSize, len(h.Passes))
	}
	return h
}

// OpenReply is what the receiver says about the copy.
type OpenReply struct {
	Header      *manifest.Header // nil: a new copy, or a manifest that cannot be trusted
	Exists      bool
	UID, GID    uint32 // the source owner's ids on the receiver's host
	AsRoot      bool
	Tablespaces []string // OID, directory, OID, directory...
}

func (OpenReply) Type() Type { return TOpenReply }
func (m OpenReply) Encode(e *Encoder) {
	encodeHeader(e, m.Header)
	e.Bool(m.Exists)
	e.U32(m.UID)
	e.U32(m.GID)
	e.Bool(m.AsRoot)
	encodeStrings(e, m.Tablespaces)
}
func DecodeOpenReply(d *Decoder) (m OpenReply) {
	m.Header, m.Exists, m.UID, m.GID, m.AsRoot = decodeHeader(d), d.Bool(), d.U32(), d.U32(), d.Bool()
	m.Tablespaces = decodeStrings(d)
	if len(m.Tablespaces)%2 != 0 {
		d.Fail("odd tablespace list")
	}
	return m
}

// Entry types.
const (
	EntryDir     = 'd'
	EntryFile    = 'f'
	EntrySymlink = 'l'
)

// Entry is one entry of a walk: of SRC (sent before a pass) or of the copy
// (sent for verify). Mode holds the permission bits and the set-uid,
// set-gid and sticky bits as in st_mode (07777).
type Entry struct {
	Rel                 string
	Kind                uint8
	Mode                uint32
	UID, GID            uint32
	Size                int64
	Mtime, Ctime, Atime int64
	Inode               uint64
	Target              string
	// WAL is what the WAL says of the entry in a WAL-guided cold pass
	// (pass.WALNone, WALBlocks, WALWhole); 0 otherwise. Blocks are the
	// blocks it names (WALBlocks), sorted.
	WAL    uint8
	Blocks []uint32
}

const entryMinSize = 4 + 1 + 4 + 4 + 4 + 8*5 + 4 + 1 + 4

func (x *Entry) encode(e *Encoder) {
	e.String(x.Rel)
	e.U8(x.Kind)
	e.U32(x.Mode)
	e.U32(x.UID)
	e.U32(x.GID)
	e.I64(x.Size)
	e.I64(x.Mtime)
	e.I64(x.Ctime)
	e.I64(x.Atime)
	e.U64(x.Inode)
	e.String(x.Target)
	e.U8(x.WAL)
	encodeBlocks(e, x.Blocks)
}

// encodeBlocks and decodeBlocks carry a list of block numbers, sorted,
// each once.
func encodeBlocks(e *Encoder, blocks []uint32) {
	e.U32(uint32(len(blocks)))
	for _, b := range blocks {
		e.U32(b)
	}
}

func decodeBlocks(d *Decoder) []uint32 {
	n := d.Count(4)
	if n == 0 {
		return nil
	}
	bs := make([]uint32, n)
	for i := range bs {
		bs[i] = d.U32()
		if i > 0 && bs[i] <= bs[i-1] && d.Err() == nil {
			d.Fail("block %d after block %d", bs[i], bs[i-1])
		}
	}
	return bs
}

func decodeEntry(d *Decoder) (x Entry) {
	x.Rel, x.Kind, x.Mode, x.UID, x.GID = d.String(), d.U8(), d.U32(), d.U32(), d.U32()
	x.Size, x.Mtime, x.Ctime, x.Atime, x.Inode, x.Target = d.I64(), d.I64(), d.I64(), d.I64(), d.U64(), d.String()
	x.WAL, x.Blocks = d.U8(), decodeBlocks(d)
	switch {
	case x.Kind != EntryDir && x.Kind != EntryFile && x.Kind != EntrySymlink:
		d.Fail("entry %q of kind %d", x.Rel, x.Kind)
	case x.Mode&^0o7777 != 0:
		d.Fail("entry %q with mode %o", x.Rel, x.Mode)
	case x.Size < 0:
		d.Fail("entry %q of size %d", x.Rel, x.Size)
	}
	return x
}

// Entries is a batch of entries, in walk order.
type Entries struct{ Entries []Entry }

func (Entries) Type() Type { return TEntries }
func (m Entries) Encode(e *Encoder) {
	e.U32(uint32(len(m.Entries)))
	for i := range m.Entries {
		m.Entries[i].encode(e)
	}
}
func DecodeEntries(d *Decoder) (m Entries) {
	n := d.Count(entryMinSize)
	m.Entries = make([]Entry, 0, n)
	for range n {
		m.Entries = append(m.Entries, decodeEntry(d))
	}
	return m
}

// EntryBatchBytes is how many bytes of entries one TEntries frame carries
// at most (before the last entry).
const EntryBatchBytes = 1 << 20

// Begin starts a pass over the entries sent since the last pass.
type Begin struct {
	Kind        uint8
	BlockSize   uint32
	DryRun      bool
	Quick       bool
	QuickMargin int64
	InFlight    uint32
	Quiet       bool
	Jobs        uint32
	// WAL: a WAL-guided cold pass; its entries carry what the WAL says of
	// each (Entry.WAL), with the time since when records are good at the
	// redo point, and the source's safe horizon (ns).
	WAL       bool
	WALSince  int64
	WALMargin int64
}

func (Begin) Type() Type { return TBegin }
func (m Begin) Encode(e *Encoder) {
	e.U8(m.Kind)
	e.U32(m.BlockSize)
	e.Bool(m.DryRun)
	e.Bool(m.Quick)
	e.I64(m.QuickMargin)
	e.U32(m.InFlight)
	e.Bool(m.Quiet)
	e.U32(m.Jobs)
	e.Bool(m.WAL)
	e.I64(m.WALSince)
	e.I64(m.WALMargin)
}
func DecodeBegin(d *Decoder) (m Begin) {
	m.Kind, m.BlockSize, m.DryRun, m.Quick, m.QuickMargin = d.U8(), d.U32(), d.Bool(), d.Bool(), d.I64()
	m.InFlight, m.Quiet, m.Jobs = d.U32(), d.Bool(), d.U32()
	m.WAL, m.WALSince, m.WALMargin = d.Bool(), d.I64(), d.I64()
	return m
}

func encodeHashes(e *Encoder, hs []manifest.Hash) {
	e.U32(uint32(len(hs)))
	for i := range hs {
		e.b = append(e.b, hs[i][:]...)
	}
}

func decodeHashes(d *Decoder) []manifest.Hash {
	n := d.Count(16)
	if n == 0 {
		return nil
	}
	hs := make([]manifest.Hash, n)
	for i := range hs {
		copy(hs[i][:], d.take(16))
	}
	return hs
}

// HashesPerFrame bounds the hashes of one frame (8 MiB of them): a file
// with more is sent in several frames with More set on all but the last.
const HashesPerFrame = 512 << 10

// Basis is a file the sender must read, with the copy's block hashes.
type Basis struct {
	ID     uint64
	Index  uint32
	Rel    string
	Size   int64 // -1: the copy has no such file
	More   bool  // the next TBasis carries more of this file's hashes
	Hashes []manifest.Hash
	// Partial: a WAL-guided cold pass reads only the blocks the WAL names;
	// Hashes are then those of Blocks (as many), sorted.
	Partial bool
	Blocks  []uint32
}

func (Basis) Type() Type { return TBasis }
func (m Basis) Encode(e *Encoder) {
	e.U64(m.ID)
	e.U32(m.Index)
	e.String(m.Rel)
	e.I64(m.Size)
	e.Bool(m.More)
	encodeHashes(e, m.Hashes)
	e.Bool(m.Partial)
	encodeBlocks(e, m.Blocks)
}
func DecodeBasis(d *Decoder) (m Basis) {
	m.ID, m.Index, m.Rel, m.Size, m.More, m.Hashes = d.U64(), d.U32(), d.String(), d.I64(), d.Bool(), decodeHashes(d)
	m.Partial, m.Blocks = d.Bool(), decodeBlocks(d)
	if d.Err() == nil && (m.Partial && len(m.Blocks) != len(m.Hashes) || !m.Partial && m.Blocks != nil) {
		d.Fail("a basis of %d hashes with %d blocks", len(m.Hashes), len(m.Blocks))
	}
	return m
}

// Write carries blocks of a file, at a block boundary. With Compressed, Data
// is a zstd frame of RawLen bytes.
type Write struct {
	ID         uint64
	Off        int64
	Compressed bool
	RawLen     uint32
	Data       []byte
}

func (Write) Type() Type { return TWrite }
func (m Write) Encode(e *Encoder) {
	e.U64(m.ID)
	e.I64(m.Off)
	e.Bool(m.Compressed)
	e.U32(m.RawLen)
	e.Bytes32(m.Data)
}
func DecodeWrite(d *Decoder) (m Write) {
	m.ID, m.Off, m.Compressed, m.RawLen, m.Data = d.U64(), d.I64(), d.Bool(), d.U32(), d.Bytes32()
	switch {
	case m.Off < 0:
		d.Fail("write at offset %d", m.Off)
	case m.RawLen > MaxPayload:
		d.Fail("write of %d bytes", m.RawLen)
	case !m.Compressed && int(m.RawLen) != len(m.Data):
		d.Fail("write of %d bytes holds %d", m.RawLen, len(m.Data))
	}
	return m
}

// Done ends a file: its source entry as read, CRC-32C and the xxh3-64 of its
// block hashes (which the receiver rebuilt from the basis and the writes).
type Done struct {
	ID        uint64
	Vanished  bool
	Entry     Entry
	Flags     uint32
	CRC32C    uint32
	ReadStart int64
	HashesSum uint64
}

func (Done) Type() Type { return TDone }
func (m Done) Encode(e *Encoder) {
	e.U64(m.ID)
	e.Bool(m.Vanished)
	m.Entry.encode(e)
	e.U32(m.Flags)
	e.U32(m.CRC32C)
	e.I64(m.ReadStart)
	e.U64(m.HashesSum)
}
func DecodeDone(d *Decoder) (m Done) {
	m.ID, m.Vanished, m.Entry = d.U64(), d.Bool(), decodeEntry(d)
	m.Flags, m.CRC32C, m.ReadStart, m.HashesSum = d.U32(), d.U32(), d.I64(), d.U64()
	return m
}

// Commit ends a pass.
type Commit struct {
	Pass           manifest.Pass
	BackupManifest bool
	Timeline       string
	CheckpointLSN  string
}

func (Commit) Type() Type { return TCommit }
func (m Commit) Encode(e *Encoder) {
	encodePass(e, &m.Pass)
	e.Bool(m.BackupManifest)
	e.String(m.Timeline)
	e.String(m.CheckpointLSN)
}
func DecodeCommit(d *Decoder) (m Commit) {
	m.Pass, m.BackupManifest, m.Timeline, m.CheckpointLSN = decodePass(d), d.Bool(), d.String(), d.String()
	return m
}

// Committed is the receiver's account of a committed pass.
type Committed struct {
	Header                                   *manifest.Header
	FilesSkipped, FilesChanged, FilesDeleted int64
	BytesRead                                int64
}

func (Committed) Type() Type { return TCommitted }
func (m Committed) Encode(e *Encoder) {
	encodeHeader(e, m.Header)
	e.I64(m.FilesSkipped)
	e.I64(m.FilesChanged)
	e.I64(m.FilesDeleted)
	e.I64(m.BytesRead)
}
func DecodeCommitted(d *Decoder) (m Committed) {
	m.Header, m.FilesSkipped, m.FilesChanged, m.FilesDeleted, m.BytesRead = decodeHeader(d), d.I64(), d.I64(), d.I64(), d.I64()
	return m
}

// Event is a step, a warning or a file changed or deleted, for the user.
type Event struct {
	Kind uint8
	Pass uint8
	Msg  string
	Path string
}

func (Event) Type() Type { return TEvent }
func (m Event) Encode(e *Encoder) {
	e.U8(m.Kind)
	e.U8(m.Pass)
	e.String(m.Msg)
	e.String(m.Path)
}
func DecodeEvent(d *Decoder) (m Event) {
	m.Kind, m.Pass, m.Msg, m.Path = d.U8(), d.U8(), d.String(), d.String()
	return m
}

// Blob is a message of one byte string: TTimingsReply and TSaveTimings
// (JSON).
type Blob struct {
	T    Type
	Data []byte
}

func (m Blob) Type() Type          { return m.T }
func (m Blob) Encode(e *Encoder)   { e.Bytes32(m.Data) }
func DecodeBlob(d *Decoder) []byte { return d.Bytes32() }

// Empty is a message without fields: TReady, TEndBases, TAbort, TTimings,
// TOK, TStatus, TEndEntries, TEndHashes, TBye.
type Empty Type

func (m Empty) Type() Type    { return Type(m) }
func (Empty) Encode(*Encoder) {}

// StatusReply is what the manifest says.
type StatusReply struct {
	Dest         string
	Header       *manifest.Header
	Sealed       bool
	RanSinceSeal bool
	Running      bool
	PID          uint32
}

func (StatusReply) Type() Type { return TStatusReply }
func (m StatusReply) Encode(e *Encoder) {
	e.String(m.Dest)
	encodeHeader(e, m.Header)
	e.Bool(m.Sealed)
	e.Bool(m.RanSinceSeal)
	e.Bool(m.Running)
	e.U32(m.PID)
}
func DecodeStatusReply(d *Decoder) (m StatusReply) {
	m.Dest, m.Header, m.Sealed = d.String(), decodeHeader(d), d.Bool()
	m.RanSinceSeal, m.Running, m.PID = d.Bool(), d.Bool(), d.U32()
	if m.Header == nil {
		d.Fail("status without a header")
	}
	return m
}

// Patterns carries exclude patterns: TVerifyManifest and TWalk.
type Patterns struct {
	T        Type
	Jobs     uint32
	Excludes []string
}

func (m Patterns) Type() Type { return m.T }
func (m Patterns) Encode(e *Encoder) {
	e.U32(m.Jobs)
	encodeStrings(e, m.Excludes)
}
func DecodePatterns(d *Decoder) (m Patterns) {
	m.Jobs, m.Excludes = d.U32(), decodeStrings(d)
	return m
}

// Diff is one difference verify found.
type Diff struct{ Path, What string }

// Diffs are the differences verify --manifest-only found.
type Diffs struct{ Diffs []Diff }

func (Diffs) Type() Type { return TDiffs }
func (m Diffs) Encode(e *Encoder) {
	e.U32(uint32(len(m.Diffs)))
	for _, x := range m.Diffs {
		e.String(x.Path)
		e.String(x.What)
	}
}
func DecodeDiffs(d *Decoder) (m Diffs) {
	n := d.Count(8)
	for range n {
		m.Diffs = append(m.Diffs, Diff{d.String(), d.String()})
	}
	return m
}

// Hash asks for the block hashes of files of the copy; More says that
// another THash with more files follows.
type HashFiles struct {
	BlockSize uint32
	Jobs      uint32
	More      bool
	Rels      []string
}

func (HashFiles) Type() Type { return THash }
func (m HashFiles) Encode(e *Encoder) {
	e.U32(m.BlockSize)
	e.U32(m.Jobs)
	e.Bool(m.More)
	encodeStrings(e, m.Rels)
}
func DecodeHashFiles(d *Decoder) (m HashFiles) {
	m.BlockSize, m.Jobs, m.More, m.Rels = d.U32(), d.U32(), d.Bool(), decodeStrings(d)
	return m
}

// HashReply is one file's block hashes, or why they could not be read.
type HashReply struct {
	Rel    string
	Size   int64
	Err    string
	More   bool // the next THashReply carries more of this file's hashes
	Hashes []manifest.Hash
}

func (HashReply) Type() Type { return THashReply }
func (m HashReply) Encode(e *Encoder) {
	e.String(m.Rel)
	e.I64(m.Size)
	e.String(m.Err)
	e.Bool(m.More)
	encodeHashes(e, m.Hashes)
}
func DecodeHashReply(d *Decoder) (m HashReply) {
	m.Rel, m.Size, m.Err, m.More, m.Hashes = d.String(), d.I64(), d.String(), d.Bool(), decodeHashes(d)
	return m
}
