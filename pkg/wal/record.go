package wal

import "fmt"

// ForkNumber is a relation fork (src/include/common/relpath.h).
type ForkNumber uint8

// The forks of a relation, in the order of their numbers.
const (
	MainFork ForkNumber = 0 // the data: "16384"
	FSMFork  ForkNumber = 1 // free space map: "16384_fsm"
	VMFork   ForkNumber = 2 // visibility map: "16384_vm"
	InitFork ForkNumber = 3 // init fork of an unlogged relation: "16384_init"

	maxFork = InitFork
)

// String returns the name pg_waldump gives the fork ("main", "fsm", "vm",
// "init").
func (f ForkNumber) String() string {
	switch f {
	case MainFork:
		return "main"
	case FSMFork:
		return "fsm"
	case VMFork:
		return "vm"
	case InitFork:
		return "init"
	}
	return fmt.Sprintf("fork%d", uint8(f))
}

// Suffix returns the file name suffix of the fork: "" for the main fork,
// "_fsm", "_vm" or "_init".
func (f ForkNumber) Suffix() string {
	if f == MainFork {
		return ""
	}
	return "_" + f.String()
}

// RelFileLocator names a relation's files (RelFileNode up to 15,
// RelFileLocator from 16; the same 12 bytes): the tablespace OID (1663 for
// pg_default, base/; 1664 for pg_global, global/), the database OID (0 for
// shared relations) and the relation file number, the file's name.
type RelFileLocator struct {
	Tablespace uint32
	Database   uint32
	RelNumber  uint32
}

// String returns "spc/db/rel", pg_waldump's form.
func (r RelFileLocator) String() string {
	return fmt.Sprintf("%d/%d/%d", r.Tablespace, r.Database, r.RelNumber)
}

// RelFork is one fork of a relation: one series of files
// (16384, 16384.1, ... for the main fork).
type RelFork struct {
	RelFileLocator
	Fork ForkNumber
}

// String returns "spc/db/rel fork".
func (r RelFork) String() string { return r.RelFileLocator.String() + " " + r.Fork.String() }

// BlockRef is a block reference of a record: a block of a relation fork that
// replaying the record reads or writes, possibly with a full-page image.
type BlockRef struct {
	ID    uint8 // block reference ID, 0 to 32
	Rel   RelFileLocator
	Fork  ForkNumber
	Block uint32 // block number in the fork

	// Flags are the upper 4 bits of fork_flags: BKPBLOCK_HAS_IMAGE (0x10),
	// BKPBLOCK_HAS_DATA (0x20), BKPBLOCK_WILL_INIT (0x40),
	// BKPBLOCK_SAME_REL (0x80).
	Flags   uint8
	DataLen uint16 // bytes of block data (not counting the image)

	// With an image (HasImage):
	ImageLen    uint16 // bytes of the stored image (after hole removal and compression)
	HoleOffset  uint16 // bytes of the page before the hole
	HoleLength  uint16 // bytes of the hole (zeros, not stored)
	ImageInfo   uint8  // bimg_info as stored (its bits differ before and from 15)
	ApplyImage  bool   // replay restores the image (not only wal_consistency_checking)
	Compression string // "", "pglz", "lz4" or "zstd"
}

// Fork flags (BKPBLOCK_*).
const (
	blkHasImage = 0x10
	blkHasData  = 0x20
	blkWillInit = 0x40
	blkSameRel  = 0x80
)

// HasImage reports whether the reference carries a full-page image.
func (b *BlockRef) HasImage() bool { return b.Flags&blkHasImage != 0 }

// HasData reports whether the reference carries block data.
func (b *BlockRef) HasData() bool { return b.Flags&blkHasData != 0 }

// WillInit reports whether replay re-initializes the page (BKPBLOCK_WILL_INIT).
func (b *BlockRef) WillInit() bool { return b.Flags&blkWillInit != 0 }

// RelFork returns the fork the reference points into.
func (b *BlockRef) RelFork() RelFork { return RelFork{b.Rel, b.Fork} }

// Record is a decoded WAL record. The [Reader] reuses it: a Record (its
// Blocks and MainData too) is valid until the next call of [Reader.Next].
type Record struct {
	LSN      LSN    // where the record starts
	End      LSN    // where the next record starts (EndRecPtr)
	TotalLen uint32 // xl_tot_len: header, block headers, images, data
	XID      uint32 // xl_xid
	Prev     LSN    // xl_prev: the LSN of the record before
	Info     uint8  // xl_info: the upper 4 bits are the resource manager's
	Rmgr     uint8  // xl_rmid
	CRC      uint32 // xl_crc

	Blocks []BlockRef

	HasOrigin   bool   // an origin header (block ID 253) was present
	Origin      uint16 // replication origin
	TopLevelXID uint32 // top-level XID (block ID 252, 14+), 0 when absent

	// MainDataLen is the length of the main data; MainData holds it unless
	// it is longer than ReaderOptions.MainDataLimit (then nil).
	MainDataLen uint32
	MainData    []byte
}

// xl_info bits (src/include/access/xlogrecord.h).
const (
	xlrInfoMask         = 0x0F
	xlrSpecialRelUpdate = 0x01
	xlrCheckConsistency = 0x02
)

// RmgrInfo returns the resource manager's bits of xl_info (the upper 4).
func (r *Record) RmgrInfo() uint8 { return r.Info &^ xlrInfoMask }

// SpecialRelUpdate reports whether XLR_SPECIAL_REL_UPDATE is set: the record
// modifies relation files in ways its block references do not describe.
func (r *Record) SpecialRelUpdate() bool { return r.Info&xlrSpecialRelUpdate != 0 }

// ImageBytes returns the bytes of full-page images in the record (the
// difference between pg_waldump's "tot" and "rec" lengths).
func (r *Record) ImageBytes() uint32 {
	var n uint32
	for i := range r.Blocks {
		if r.Blocks[i].HasImage() {
			n += uint32(r.Blocks[i].ImageLen)
		}
	}
	return n
}
