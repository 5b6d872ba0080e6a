package wal

import (
	"encoding/binary"
	"fmt"
)

// This file decodes the main data of the few records the summary treats
// specially. Each layout is fixed in 13 to 18 unless noted; docs/wal.md
// gives the source of each.

// XLOG resource manager record types (src/include/catalog/pg_control.h).
const (
	xlogCheckpointShutdown  = 0x00
	xlogCheckpointOnline    = 0x10
	xlogNoop                = 0x20
	xlogNextOID             = 0x30
	xlogSwitch              = 0x40
	xlogBackupEnd           = 0x50
	xlogParameterChange     = 0x60
	xlogRestorePoint        = 0x70
	xlogFPWChange           = 0x80
	xlogEndOfRecovery       = 0x90
	xlogFPIForHint          = 0xA0
	xlogFPI                 = 0xB0
	xlogOverwriteContrecord = 0xD0 // 0xC0 was used by 9.5 to 11
	xlogCheckpointRedo      = 0xE0 // 17+
)

// Transaction resource manager record types (src/include/access/xact.h).
const (
	xactOpMask         = 0x70
	xactCommit         = 0x00
	xactPrepare        = 0x10
	xactAbort          = 0x20
	xactCommitPrepared = 0x30
	xactAbortPrepared  = 0x40
	xactAssignment     = 0x50
	xactInvalidations  = 0x60 // 14+
	xactHasInfo        = 0x80

	xinfoHasDBInfo   = 1 << 0
	xinfoHasSubxacts = 1 << 1
	xinfoHasRels     = 1 << 2 // XACT_XINFO_HAS_RELFILENODES, _RELFILELOCATORS from 16
)

// Storage resource manager (src/include/catalog/storage_xlog.h).
const (
	smgrCreate   = 0x10
	smgrTruncate = 0x20

	smgrTruncateHeap = 0x0001
	smgrTruncateVM   = 0x0002
	smgrTruncateFSM  = 0x0004
	smgrTruncateAll  = 0x0007
)

// Database resource manager (src/include/commands/dbcommands_xlog.h): up to
// 14 CREATE (a file copy) and DROP; from 15 CREATE_FILE_COPY,
// CREATE_WAL_LOG and DROP, renumbered.
const (
	dbaseCreate14 = 0x00
	dbaseDrop14   = 0x10

	dbaseCreateFileCopy15 = 0x00
	dbaseCreateWALLog15   = 0x10
	dbaseDrop15           = 0x20
)

// Tablespace resource manager (src/include/commands/tablespace.h).
const (
	tblspcCreate = 0x00
	tblspcDrop   = 0x10
)

// wal_level values (src/include/access/xlog.h).
const (
	walLevelMinimal = 0
	walLevelReplica = 1
	walLevelLogical = 2
)

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// checkpointSize is sizeof(CheckPoint) in 13 to 18 (its layout is in
// src/include/catalog/pg_control.h; 17 put wal_level into former padding).
const checkpointSize = 88

// parseCheckpoint decodes the CheckPoint main data of a checkpoint record:
// redo (offset 0), ThisTimeLineID (8), PrevTimeLineID (12), and from 17 on
// wal_level (20).
func parseCheckpoint(rec *Record, version int) (Checkpoint, error) {
	md := rec.MainData
	if len(md) != checkpointSize {
		return Checkpoint{}, fmt.Errorf("checkpoint record with %d bytes of main data, expected %d", rec.MainDataLen, checkpointSize)
	}
	cp := Checkpoint{
		LSN:      rec.LSN,
		Redo:     LSN(binary.LittleEndian.Uint64(md[0:])),
		TLI:      le32(md[8:]),
		PrevTLI:  le32(md[12:]),
		Shutdown: rec.RmgrInfo() == xlogCheckpointShutdown,
		WALLevel: -1,
	}
	if version >= 17 {
		cp.WALLevel = int(int32(le32(md[20:])))
	}
	return cp, nil
}

// parameterChange is xl_parameter_change (src/include/access/xlog_internal.h):
// six ints, then two bools, 28 bytes with padding.
type parameterChange struct {
	walLevel    int
	walLogHints bool
}

func parseParameterChange(md []byte) (parameterChange, error) {
	if len(md) != 28 {
		return parameterChange{}, fmt.Errorf("XLOG_PARAMETER_CHANGE with %d bytes of main data, expected 28", len(md))
	}
	return parameterChange{walLevel: int(int32(le32(md[20:]))), walLogHints: md[24] != 0}, nil
}

// parseXactRels returns the relations a commit or abort record (also of a
// prepared transaction) drops, from xl_xact_commit / xl_xact_abort
// (src/include/access/xact.h; parsed as xactdesc.c's ParseCommitRecord and
// ParseAbortRecord do): the 8-byte xact_time; with XLOG_XACT_HAS_INFO a
// 4-byte xinfo; then, as xinfo says, 8 bytes of xl_xact_dbinfo, the
// subtransactions (a count, then 4 bytes each), and the relations (a count,
// then 12 bytes each). What follows the relations is not needed.
func parseXactRels(info uint8, md []byte) ([]RelFileLocator, error) {
	p := 8
	if len(md) < p {
		return nil, fmt.Errorf("transaction record with %d bytes of main data", len(md))
	}
	var xinfo uint32
	if info&xactHasInfo != 0 {
		if len(md) < p+4 {
			return nil, fmt.Errorf("transaction record too short for xinfo")
		}
		xinfo = le32(md[p:])
		p += 4
	}
	if xinfo&xinfoHasDBInfo != 0 {
		p += 8
	}
	count := func(what string, size int) (int, error) {
		if len(md) < p+4 {
			return 0, fmt.Errorf("transaction record too short for its %s count", what)
		}
		n := int64(int32(le32(md[p:])))
		p += 4
		if n < 0 || n > int64(len(md)-p)/int64(size) {
			return 0, fmt.Errorf("transaction record says %d %s in %d bytes", n, what, len(md)-p)
		}
		return int(n), nil
	}
	if xinfo&xinfoHasSubxacts != 0 {
		n, err := count("subtransactions", 4)
		if err != nil {
			return nil, err
		}
		p += 4 * n
	}
	if xinfo&xinfoHasRels == 0 {
		return nil, nil
	}
	n, err := count("relations", 12)
	if err != nil {
		return nil, err
	}
	rels := make([]RelFileLocator, n)
	for i := range rels {
		b := md[p+12*i:]
		rels[i] = RelFileLocator{Tablespace: le32(b), Database: le32(b[4:]), RelNumber: le32(b[8:])}
	}
	return rels, nil
}
