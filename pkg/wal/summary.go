package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Summary is what a range of WAL changed in relation files: the map a
// WAL-guided cold pass reads. It is trustworthy only when Fallback is nil;
// otherwise the caller must read everything.
type Summary struct {
	Version  int    // major version of the WAL
	TLI      uint32 // timeline read
	SystemID uint64 // database system identifier of the WAL

	Start    LSN    // where reading began
	FirstLSN LSN    // the first record's LSN
	End      LSN    // the end of the last record summarized (the end checkpoint's End)
	Records  uint64 // records summarized

	// Checkpoint is the checkpoint record that ended the summary (nil until
	// found); Checkpoints are all the checkpoint records in the range, in
	// order, the last one included.
	Checkpoint  *Checkpoint
	Checkpoints []Checkpoint
	// StartIsRedo reports that a checkpoint in the range has Start as its
	// redo LSN: Start was a redo point, not an LSN taken on trust.
	StartIsRedo bool

	// Blocks are the blocks that block references name, per relation fork,
	// all forks included (FSM too, though FSM changes are not all
	// WAL-logged).
	Blocks map[RelFork]*BlockSet

	// What block references do not cover; each names files to read whole.
	Created     []Creation       // relation forks created (XLOG_SMGR_CREATE)
	Truncated   []Truncation     // relations truncated (XLOG_SMGR_TRUNCATE)
	Dropped     []Drop           // relations dropped at commit or abort
	Databases   []DatabaseChange // database directories created or dropped
	Tablespaces []TablespaceChange

	// Fallback, when not nil, says why the summary cannot be trusted.
	Fallback *Fallback
}

// Checkpoint is a checkpoint record.
type Checkpoint struct {
	LSN      LSN    // the record's LSN
	Redo     LSN    // its redo LSN
	TLI      uint32 // ThisTimeLineID
	PrevTLI  uint32 // PrevTimeLineID (differs from TLI at a timeline switch)
	Shutdown bool   // XLOG_CHECKPOINT_SHUTDOWN (else XLOG_CHECKPOINT_ONLINE)
	WALLevel int    // wal_level (17+), -1 when the record does not say (13 to 16)
}

// Creation is an XLOG_SMGR_CREATE record: a relation fork's first file was
// created (empty; its blocks may come with or without block references).
type Creation struct {
	LSN LSN
	RelFork
}

// Truncation is an XLOG_SMGR_TRUNCATE record: a relation was cut to Blocks
// blocks; its VM and FSM forks, when named, to the map pages that cover
// those blocks.
type Truncation struct {
	LSN    LSN
	Rel    RelFileLocator
	Blocks uint32       // the main fork's new length in blocks
	Forks  []ForkNumber // the forks truncated (main, vm, fsm)
}

// Drop is a relation whose files a commit or abort record removes (every
// fork).
type Drop struct {
	LSN LSN
	Rel RelFileLocator
}

// DatabaseChange is a database directory created or dropped: pg_default's
// base/<Database>, or another tablespace's pg_tblspc/<Tablespace>/<version
// directory>/<Database>.
type DatabaseChange struct {
	LSN        LSN
	Kind       string // "create_file_copy" (also 13 and 14's CREATE), "create_wal_log" or "drop"
	Tablespace uint32
	Database   uint32
	// For create_file_copy, the directory copied.
	SrcTablespace, SrcDatabase uint32
}

// TablespaceChange is a tablespace created or dropped.
type TablespaceChange struct {
	LSN        LSN
	Kind       string // "create" or "drop"
	Tablespace uint32
	Path       string // create: the location
}

// Reason says why a [Summary] cannot be trusted. Its values are stable
// strings, for logs and JSON.
type Reason string

// The reasons for a fallback.
const (
	ReasonWALLevelMinimal  Reason = "wal_level_minimal"          // relations created or truncated in a transaction skip WAL
	ReasonHintBits         Reason = "wal_log_hints_off"          // hint-bit changes would be missing (no data checksums)
	ReasonTimeline         Reason = "timeline_change"            // an end-of-recovery record, a checkpoint or page of another timeline
	ReasonUnknownRmgr      Reason = "unknown_resource_manager"   // a custom or unknown resource manager
	ReasonSpecialRelUpdate Reason = "unknown_special_rel_update" // XLR_SPECIAL_REL_UPDATE on a record not understood
	ReasonUnknownRecord    Reason = "unknown_record"             // a record type not understood where it matters, or with an unexpected layout
	ReasonRecordTooLarge   Reason = "record_too_large"           // main data needed but over the reader's MainDataLimit
	ReasonUnsupportedMagic Reason = "unsupported_page_magic"
	ReasonMissingSegment   Reason = "missing_segment"
	ReasonTruncatedSegment Reason = "truncated_segment"
	ReasonBadCRC           Reason = "bad_crc"
	ReasonBrokenChain      Reason = "broken_prev_link"
	ReasonUnparsable       Reason = "unparsable_wal"
	ReasonReadError        Reason = "read_error"
	ReasonIncomplete       Reason = "no_end_checkpoint" // the WAL ended, or the summary was taken, before the end record
	ReasonEndNotFound      Reason = "end_not_found"     // no record starts at the requested end LSN
	ReasonWALAfterEnd      Reason = "wal_after_end"     // a record follows the shutdown checkpoint
)

// Fallback says why a summary cannot be trusted, and where.
type Fallback struct {
	Reason Reason
	LSN    LSN    // the record or position that decided it
	Detail string // for people
	Err    error  // the read error, when one decided it
}

func (f *Fallback) String() string {
	return fmt.Sprintf("%s at %s: %s", f.Reason, f.LSN, f.Detail)
}

// SummaryOptions configure a [Summarizer].
type SummaryOptions struct {
	// End, when not 0, is the LSN of the record that ends the summary: the
	// shutdown checkpoint, pg_controldata's "Latest checkpoint location"
	// once the server is cleanly stopped. A record must start there. When 0,
	// the first XLOG_CHECKPOINT_SHUTDOWN record ends the summary.
	End LSN
	// DataChecksums says the cluster has data checksums. Without them,
	// hint-bit changes reach the WAL only with wal_log_hints on, so a
	// parameter-change record that turns it off is a fallback.
	DataChecksums bool
}

// Summarizer builds a [Summary] from the records of a [Reader], possibly in
// several calls of Feed: while the server runs (with the reader's limit at
// its flush LSN), then once more after it stopped.
type Summarizer struct {
	// config
	opts SummaryOptions

	// state
	sum      Summary
	finished bool // the summary is final: end verified, or a fallback
	atEnd    bool // the end record was summarized; the end of WAL after it is not yet verified
	lastFork RelFork
	lastSet  *BlockSet
}

// NewSummarizer returns a Summarizer with an empty summary.
func NewSummarizer(opts SummaryOptions) *Summarizer {
	return &Summarizer{opts: opts, sum: Summary{Blocks: make(map[RelFork]*BlockSet)}}
}

// Summarize reads r to the end record (see [SummaryOptions.End]), checks
// that the WAL ends right after it, and returns the summary. Every problem
// is reported as the summary's Fallback, never as an error; the error is
// ctx's, or wraps [ErrLimit] when r has a limit (the summary then has a
// Fallback of ReasonIncomplete).
func Summarize(ctx context.Context, r *Reader, opts SummaryOptions) (*Summary, error) {
	s := NewSummarizer(opts)
	err := s.Feed(ctx, r)
	return s.Summary(), err
}

// Done reports whether the summary is final: the end record was found and
// the WAL ends after it, or a fallback was decided.
func (s *Summarizer) Done() bool { return s.finished }

// Clone returns a copy of s that shares nothing Feed changes: a snapshot
// of a summary still being fed (for an estimate, never for a plan).
func (s *Summary) Clone() *Summary {
	c := *s
	c.Blocks = make(map[RelFork]*BlockSet, len(s.Blocks))
	for k, b := range s.Blocks {
		c.Blocks[k] = b.Clone()
	}
	if s.Checkpoint != nil {
		cp := *s.Checkpoint
		c.Checkpoint = &cp
	}
	c.Checkpoints = slices.Clone(s.Checkpoints)
	c.Created = slices.Clone(s.Created)
	c.Truncated = slices.Clone(s.Truncated)
	c.Dropped = slices.Clone(s.Dropped)
	c.Databases = slices.Clone(s.Databases)
	c.Tablespaces = slices.Clone(s.Tablespaces)
	return &c
}

// Summary returns the summary. Until Done, it has a Fallback of
// ReasonIncomplete (the caller must not trust a partial map); the returned
// Summary must not be modified while Feed may still be called.
func (s *Summarizer) Summary() *Summary {
	out := s.sum
	if !s.finished && out.Fallback == nil {
		out.Fallback = &Fallback{Reason: ReasonIncomplete, LSN: out.End,
			Detail: "the summary was taken before the end checkpoint was reached and the end of the WAL confirmed"}
	}
	return &out
}

// Feed reads records from r and summarizes them until the summary is final.
// It returns nil then; an error that wraps [ErrLimit] when r's limit stopped
// it (raise the limit and call Feed again); or ctx's error. A Summarizer
// must be fed from one Reader, which must start where the summary should.
func (s *Summarizer) Feed(ctx context.Context, r *Reader) error {
	if s.sum.Start == 0 {
		s.sum.Start, s.sum.TLI = r.NextLSN(), r.TLI()
	}
	for i := 0; !s.finished; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := r.Next()
		s.sum.Version, s.sum.SystemID = r.Version(), r.SystemID()
		if s.atEnd {
			switch {
			case err == nil:
				s.fail(ReasonWALAfterEnd, rec.LSN, nil, "a %s record follows the end checkpoint at %s: the server ran again after it", RmgrName(rec.Rmgr), s.sum.Checkpoint.LSN)
			case errors.Is(err, ErrLimit):
				return err
			case errors.Is(err, ErrEndOfWAL), errors.Is(err, ErrMissingSegment):
				s.finished = true
			default:
				s.failRead(err, "after the end checkpoint")
			}
			continue
		}
		if err != nil {
			if errors.Is(err, ErrLimit) {
				return err
			}
			s.failRead(err, "")
			continue
		}
		s.add(rec)
	}
	return nil
}

// fail decides a fallback (the first one stands) and ends the summary.
func (s *Summarizer) fail(reason Reason, lsn LSN, err error, format string, args ...any) {
	if s.sum.Fallback == nil {
		s.sum.Fallback = &Fallback{Reason: reason, LSN: lsn, Detail: fmt.Sprintf(format, args...), Err: err}
	}
	s.finished = true
}

// failRead turns a read error into a fallback.
func (s *Summarizer) failRead(err error, where string) {
	reason := ReasonReadError
	for _, k := range []struct {
		kind   error
		reason Reason
	}{
		{ErrEndOfWAL, ReasonIncomplete},
		{ErrMissingSegment, ReasonMissingSegment},
		{ErrTruncatedSegment, ReasonTruncatedSegment},
		{ErrBadCRC, ReasonBadCRC},
		{ErrBrokenChain, ReasonBrokenChain},
		{ErrUnsupportedMagic, ReasonUnsupportedMagic},
		{ErrTimeline, ReasonTimeline},
		{ErrUnknownRmgr, ReasonUnknownRmgr},
		{ErrInvalid, ReasonUnparsable},
	} {
		if errors.Is(err, k.kind) {
			reason = k.reason
			break
		}
	}
	lsn := s.sum.End
	var e *Error
	if errors.As(err, &e) {
		lsn = e.LSN
	}
	if where != "" {
		s.fail(reason, lsn, err, "%s: %v", where, err)
		return
	}
	s.fail(reason, lsn, err, "%v", err)
}

// add summarizes one record.
func (s *Summarizer) add(rec *Record) {
	sum := &s.sum
	sum.Records++
	if sum.Records == 1 {
		sum.FirstLSN = rec.LSN
	}
	sum.End = rec.End
	if s.opts.End != 0 && rec.LSN > s.opts.End {
		s.fail(ReasonEndNotFound, rec.LSN, nil, "no record starts at the end LSN %s: this record starts after it", s.opts.End)
		return
	}
	if rec.Rmgr > rmgrMaxBuiltin {
		s.fail(ReasonUnknownRmgr, rec.LSN, nil, "a record of custom resource manager %d, whose effect on files is unknown", rec.Rmgr)
		return
	}
	for i := range rec.Blocks {
		b := &rec.Blocks[i]
		rf := b.RelFork()
		if s.lastSet == nil || rf != s.lastFork {
			set := sum.Blocks[rf]
			if set == nil {
				set = &BlockSet{}
				sum.Blocks[rf] = set
			}
			s.lastFork, s.lastSet = rf, set
		}
		s.lastSet.Add(b.Block)
	}
	special := false // the record's XLR_SPECIAL_REL_UPDATE is understood
	switch rec.Rmgr {
	case RmgrXLOG:
		s.xlog(rec)
	case RmgrXact:
		special = s.xact(rec)
	case RmgrSmgr:
		special = s.smgr(rec)
	case RmgrDatabase:
		special = s.dbase(rec)
	case RmgrTablespace:
		s.tblspc(rec)
	}
	if rec.SpecialRelUpdate() && !special {
		s.fail(ReasonSpecialRelUpdate, rec.LSN, nil, "%s record with info 0x%02X has XLR_SPECIAL_REL_UPDATE: it changes relation files in a way not understood", RmgrName(rec.Rmgr), rec.RmgrInfo())
	}
}

// mainData returns the record's main data, or decides a fallback when the
// reader did not keep it.
func (s *Summarizer) mainData(rec *Record) ([]byte, bool) {
	if rec.MainData == nil && rec.MainDataLen > 0 {
		s.fail(ReasonRecordTooLarge, rec.LSN, nil, "%s record with %d bytes of main data, over the reader's limit", RmgrName(rec.Rmgr), rec.MainDataLen)
		return nil, false
	}
	return rec.MainData, true
}

func (s *Summarizer) unknown(rec *Record, format string, args ...any) {
	s.fail(ReasonUnknownRecord, rec.LSN, nil, "%s record with info 0x%02X: %s", RmgrName(rec.Rmgr), rec.RmgrInfo(), fmt.Sprintf(format, args...))
}

// xlog handles the XLOG resource manager: checkpoints (timeline, wal_level,
// the end), parameter changes (wal_level, wal_log_hints), end of recovery.
func (s *Summarizer) xlog(rec *Record) {
	v := s.sum.Version
	switch info := rec.RmgrInfo(); info {
	case xlogCheckpointShutdown, xlogCheckpointOnline:
		if _, ok := s.mainData(rec); !ok {
			return
		}
		cp, err := parseCheckpoint(rec, v)
		if err != nil {
			s.unknown(rec, "%v", err)
			return
		}
		s.sum.Checkpoints = append(s.sum.Checkpoints, cp)
		if cp.Redo == s.sum.Start {
			s.sum.StartIsRedo = true
		}
		switch {
		case cp.TLI != s.sum.TLI || cp.PrevTLI != cp.TLI:
			s.fail(ReasonTimeline, rec.LSN, nil, "checkpoint of timeline %d (previous %d) while reading timeline %d", cp.TLI, cp.PrevTLI, s.sum.TLI)
			return
		case cp.WALLevel == walLevelMinimal:
			s.fail(ReasonWALLevelMinimal, rec.LSN, nil, "checkpoint with wal_level=minimal")
			return
		}
		if cp.Shutdown && (s.opts.End == 0 || rec.LSN == s.opts.End) {
			end := cp
			s.sum.Checkpoint = &end
			s.atEnd = true
		} else if rec.LSN == s.opts.End {
			s.fail(ReasonEndNotFound, rec.LSN, nil, "the record at the end LSN is an online checkpoint, not a shutdown checkpoint")
		}
	case xlogCheckpointRedo:
		if v < 17 {
			s.unknown(rec, "XLOG_CHECKPOINT_REDO does not exist before PostgreSQL 17")
			return
		}
		md, ok := s.mainData(rec)
		if !ok {
			return
		}
		if len(md) != 4 {
			s.unknown(rec, "XLOG_CHECKPOINT_REDO with %d bytes of main data, expected 4", len(md))
			return
		}
		if int32(le32(md)) == walLevelMinimal {
			s.fail(ReasonWALLevelMinimal, rec.LSN, nil, "redo point with wal_level=minimal")
		}
	case xlogParameterChange:
		md, ok := s.mainData(rec)
		if !ok {
			return
		}
		pc, err := parseParameterChange(md)
		if err != nil {
			s.unknown(rec, "%v", err)
			return
		}
		switch {
		case pc.walLevel == walLevelMinimal:
			s.fail(ReasonWALLevelMinimal, rec.LSN, nil, "parameter change to wal_level=minimal")
		case !pc.walLogHints && !s.opts.DataChecksums:
			s.fail(ReasonHintBits, rec.LSN, nil, "parameter change with wal_log_hints=off and no data checksums: hint-bit changes are not in the WAL")
		}
	case xlogEndOfRecovery:
		s.fail(ReasonTimeline, rec.LSN, nil, "end-of-recovery record: a new timeline begins")
	case xlogNoop, xlogNextOID, xlogSwitch, xlogBackupEnd, xlogRestorePoint, xlogFPWChange,
		xlogFPIForHint, xlogFPI, xlogOverwriteContrecord:
		// Block references (FPI) or nothing that changes relation files.
	default:
		s.unknown(rec, "unknown XLOG record type")
	}
}

// xact handles commit and abort records, which drop relations (from 14
// they carry XLR_SPECIAL_REL_UPDATE when they do).
func (s *Summarizer) xact(rec *Record) (special bool) {
	info := rec.RmgrInfo()
	switch info & xactOpMask {
	case xactCommit, xactAbort, xactCommitPrepared, xactAbortPrepared:
		md, ok := s.mainData(rec)
		if !ok {
			return true
		}
		rels, err := parseXactRels(info, md)
		if err != nil {
			s.unknown(rec, "%v", err)
			return true
		}
		if len(rels) == 0 && rec.SpecialRelUpdate() {
			// PostgreSQL sets the flag exactly when the record lists
			// relations (xact.c): one without any is not understood.
			s.unknown(rec, "XLR_SPECIAL_REL_UPDATE, but no relations dropped")
			return true
		}
		for _, r := range rels {
			s.sum.Dropped = append(s.sum.Dropped, Drop{LSN: rec.LSN, Rel: r})
		}
		return true
	case xactPrepare, xactAssignment:
		// A prepared transaction drops its relations at COMMIT PREPARED or
		// ROLLBACK PREPARED, whose records name them.
	case xactInvalidations:
		if s.sum.Version < 14 {
			s.unknown(rec, "XLOG_XACT_INVALIDATIONS does not exist before PostgreSQL 14")
		}
	default:
		s.unknown(rec, "unknown transaction record type")
	}
	return false
}

// smgr handles relation fork creation and truncation.
func (s *Summarizer) smgr(rec *Record) (special bool) {
	md, ok := s.mainData(rec)
	if !ok {
		return true
	}
	switch rec.RmgrInfo() {
	case smgrCreate:
		// xl_smgr_create: RelFileLocator (12), ForkNumber (4).
		if len(md) != 16 {
			s.unknown(rec, "%d bytes of main data, expected 16", len(md))
			return true
		}
		fork := int32(le32(md[12:]))
		if fork < 0 || fork > int32(maxFork) {
			s.unknown(rec, "fork number %d", fork)
			return true
		}
		s.sum.Created = append(s.sum.Created, Creation{LSN: rec.LSN, RelFork: RelFork{relAt(md), ForkNumber(fork)}})
		return true
	case smgrTruncate:
		// xl_smgr_truncate: BlockNumber (4), RelFileLocator (12), flags (4).
		if len(md) != 20 {
			s.unknown(rec, "%d bytes of main data, expected 20", len(md))
			return true
		}
		flags := le32(md[16:])
		if flags&^smgrTruncateAll != 0 {
			s.unknown(rec, "unknown truncate flags 0x%X", flags)
			return true
		}
		t := Truncation{LSN: rec.LSN, Rel: relAt(md[4:]), Blocks: le32(md)}
		for _, f := range []struct {
			flag uint32
			fork ForkNumber
		}{{smgrTruncateHeap, MainFork}, {smgrTruncateVM, VMFork}, {smgrTruncateFSM, FSMFork}} {
			if flags&f.flag != 0 {
				t.Forks = append(t.Forks, f.fork)
			}
		}
		s.sum.Truncated = append(s.sum.Truncated, t)
		return true
	default:
		s.unknown(rec, "unknown storage record type")
		return true
	}
}

func relAt(b []byte) RelFileLocator {
	return RelFileLocator{Tablespace: le32(b), Database: le32(b[4:]), RelNumber: le32(b[8:])}
}

// dbase handles database creation (whole directories copied or created) and
// drop.
func (s *Summarizer) dbase(rec *Record) (special bool) {
	md, ok := s.mainData(rec)
	if !ok {
		return true
	}
	info := rec.RmgrInfo()
	var kind string
	switch {
	case s.sum.Version <= 14 && info == dbaseCreate14, s.sum.Version >= 15 && info == dbaseCreateFileCopy15:
		kind = "create_file_copy"
	case s.sum.Version >= 15 && info == dbaseCreateWALLog15:
		kind = "create_wal_log"
	case s.sum.Version <= 14 && info == dbaseDrop14, s.sum.Version >= 15 && info == dbaseDrop15:
		kind = "drop"
	default:
		s.unknown(rec, "unknown database record type for PostgreSQL %d", s.sum.Version)
		return true
	}
	switch kind {
	case "create_file_copy":
		// xl_dbase_create_rec / xl_dbase_create_file_copy_rec: db_id,
		// tablespace_id, src_db_id, src_tablespace_id.
		if len(md) != 16 {
			s.unknown(rec, "%d bytes of main data, expected 16", len(md))
			return true
		}
		s.sum.Databases = append(s.sum.Databases, DatabaseChange{LSN: rec.LSN, Kind: kind,
			Database: le32(md), Tablespace: le32(md[4:]), SrcDatabase: le32(md[8:]), SrcTablespace: le32(md[12:])})
	case "create_wal_log":
		// xl_dbase_create_wal_log_rec: db_id, tablespace_id.
		if len(md) != 8 {
			s.unknown(rec, "%d bytes of main data, expected 8", len(md))
			return true
		}
		s.sum.Databases = append(s.sum.Databases, DatabaseChange{LSN: rec.LSN, Kind: kind, Database: le32(md), Tablespace: le32(md[4:])})
	case "drop":
		// xl_dbase_drop_rec: db_id, ntablespaces, tablespace_ids[].
		if len(md) < 8 {
			s.unknown(rec, "%d bytes of main data", len(md))
			return true
		}
		n := int64(int32(le32(md[4:])))
		if n < 1 || int64(len(md)) != 8+4*n {
			s.unknown(rec, "%d tablespaces in %d bytes of main data", n, len(md))
			return true
		}
		for i := int64(0); i < n; i++ {
			s.sum.Databases = append(s.sum.Databases, DatabaseChange{LSN: rec.LSN, Kind: kind, Database: le32(md), Tablespace: le32(md[8+4*i:])})
		}
	}
	return true
}

// tblspc handles tablespace creation and drop.
func (s *Summarizer) tblspc(rec *Record) {
	md, ok := s.mainData(rec)
	if !ok {
		return
	}
	switch rec.RmgrInfo() {
	case tblspcCreate:
		// xl_tblspc_create_rec: ts_id, then the location, NUL-terminated.
		if len(md) < 5 || md[len(md)-1] != 0 || bytes.IndexByte(md[4:], 0) != len(md)-5 {
			s.unknown(rec, "malformed tablespace creation (%d bytes)", len(md))
			return
		}
		s.sum.Tablespaces = append(s.sum.Tablespaces, TablespaceChange{LSN: rec.LSN, Kind: "create",
			Tablespace: binary.LittleEndian.Uint32(md), Path: string(md[4 : len(md)-1])})
	case tblspcDrop:
		// xl_tblspc_drop_rec: ts_id.
		if len(md) != 4 {
			s.unknown(rec, "%d bytes of main data, expected 4", len(md))
			return
		}
		s.sum.Tablespaces = append(s.sum.Tablespaces, TablespaceChange{LSN: rec.LSN, Kind: "drop", Tablespace: le32(md)})
	default:
		s.unknown(rec, "unknown tablespace record type")
	}
}
