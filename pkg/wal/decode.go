package wal

import (
	"encoding/binary"
	"fmt"
)

// Record layout constants (src/include/access/xlogrecord.h).
const (
	recordHeaderSize = 24 // SizeOfXLogRecord

	maxBlockID        = 32  // XLR_MAX_BLOCK_ID
	blockIDTopLevel   = 252 // XLR_BLOCK_ID_TOPLEVEL_XID, 14+
	blockIDOrigin     = 253 // XLR_BLOCK_ID_ORIGIN
	blockIDDataLong   = 254 // XLR_BLOCK_ID_DATA_LONG
	blockIDDataShort  = 255 // XLR_BLOCK_ID_DATA_SHORT
	maxRecordLen      = 1 << 30
	headKeep          = 1024 // bytes kept from a record's start: all its headers
	blockHeaderMaxLen = 4 + 5 + 2 + 12 + 4
)

// bimg_info bits up to 14 and from 15 on (xlogrecord.h of REL_14_STABLE and
// REL_15_STABLE).
const (
	bkpImageHasHole = 0x01 // both

	bkpImageIsCompressed14 = 0x02 // pglz, up to 14
	bkpImageApply14        = 0x04
	bkpImageAll14          = 0x07

	bkpImageApply15        = 0x02 // from 15
	bkpImageCompressPGLZ15 = 0x04
	bkpImageCompressLZ415  = 0x08
	bkpImageCompressZstd15 = 0x10
	bkpImageAll15          = 0x1F
)

// decodeError is an error in a record's headers; the reader turns it into an
// [Error] of kind [ErrInvalid] once the record's CRC has matched (a CRC
// mismatch is the better explanation of garbage).
type decodeError string

func (e decodeError) Error() string { return string(e) }

func decodeErr(format string, args ...any) error {
	return decodeError(fmt.Sprintf(format, args...))
}

// decodeRecord decodes the fixed header and the block, origin, top-level XID
// and main data headers of a record of tot bytes into rec, from head, the
// first min(tot, headKeep) bytes of the record, with the checks of
// PostgreSQL's DecodeXLogRecord and a few more. It returns the length of the
// main data, which the record's last bytes hold. rec.Blocks is reused.
func decodeRecord(rec *Record, head []byte, tot uint32, version int, blockSize uint32) (mainLen uint32, err error) {
	if tot < recordHeaderSize || len(head) < recordHeaderSize {
		return 0, decodeErr("record length %d is less than its header", tot)
	}
	rec.TotalLen = binary.LittleEndian.Uint32(head[0:])
	rec.XID = binary.LittleEndian.Uint32(head[4:])
	rec.Prev = LSN(binary.LittleEndian.Uint64(head[8:]))
	rec.Info = head[16]
	rec.Rmgr = head[17]
	rec.CRC = binary.LittleEndian.Uint32(head[20:])
	rec.Blocks = rec.Blocks[:0]
	rec.HasOrigin, rec.Origin, rec.TopLevelXID = false, 0, 0
	rec.MainDataLen, rec.MainData = 0, nil
	if rec.TotalLen != tot {
		return 0, decodeErr("xl_tot_len %d, expected %d", rec.TotalLen, tot)
	}

	pos := recordHeaderSize
	remaining := uint64(tot - recordHeaderSize) // bytes after the fixed header not yet read as headers
	var dataTotal uint64                        // bytes of images, block data and main data announced
	take := func(n int) ([]byte, error) {
		if remaining < uint64(n) {
			return nil, decodeErr("headers run past the record's end (%d bytes)", tot)
		}
		if pos+n > len(head) {
			return nil, decodeErr("headers longer than %d bytes", headKeep)
		}
		b := head[pos : pos+n]
		pos += n
		remaining -= uint64(n)
		return b, nil
	}
	maxID := -1
	var lastRel RelFileLocator
	haveRel, seenTop := false, false
loop:
	for remaining > dataTotal {
		b, err := take(1)
		if err != nil {
			return 0, err
		}
		id := b[0]
		switch {
		case id == blockIDDataShort:
			b, err := take(1)
			if err != nil {
				return 0, err
			}
			mainLen = uint32(b[0])
			dataTotal += uint64(mainLen)
			break loop // the main data header is always last
		case id == blockIDDataLong:
			b, err := take(4)
			if err != nil {
				return 0, err
			}
			mainLen = binary.LittleEndian.Uint32(b)
			dataTotal += uint64(mainLen)
			break loop
		case id == blockIDOrigin:
			if rec.HasOrigin {
				return 0, decodeErr("two origin headers")
			}
			b, err := take(2)
			if err != nil {
				return 0, err
			}
			rec.HasOrigin, rec.Origin = true, binary.LittleEndian.Uint16(b)
		case id == blockIDTopLevel:
			if version < 14 {
				return 0, decodeErr("block ID %d (top-level XID) does not exist in PostgreSQL %d", id, version)
			}
			if seenTop {
				return 0, decodeErr("two top-level XID headers")
			}
			b, err := take(4)
			if err != nil {
				return 0, err
			}
			seenTop, rec.TopLevelXID = true, binary.LittleEndian.Uint32(b)
		case id <= maxBlockID:
			if int(id) <= maxID {
				return 0, decodeErr("block ID %d after block ID %d (out of order)", id, maxID)
			}
			maxID = int(id)
			b, err := take(3)
			if err != nil {
				return 0, err
			}
			blk := BlockRef{
				ID:      id,
				Fork:    ForkNumber(b[0] & 0x0F),
				Flags:   b[0] & 0xF0,
				DataLen: binary.LittleEndian.Uint16(b[1:]),
			}
			if blk.Fork > maxFork {
				return 0, decodeErr("block %d: fork number %d", id, blk.Fork)
			}
			if blk.HasData() != (blk.DataLen != 0) {
				return 0, decodeErr("block %d: BKPBLOCK_HAS_DATA is %v but the data length is %d", id, blk.HasData(), blk.DataLen)
			}
			dataTotal += uint64(blk.DataLen)
			if blk.HasImage() {
				b, err := take(5)
				if err != nil {
					return 0, err
				}
				blk.ImageLen = binary.LittleEndian.Uint16(b[0:])
				blk.HoleOffset = binary.LittleEndian.Uint16(b[2:])
				blk.ImageInfo = b[4]
				if err := decodeImage(&blk, version, blockSize, take); err != nil {
					return 0, err
				}
				dataTotal += uint64(blk.ImageLen)
			}
			if blk.Flags&blkSameRel == 0 {
				b, err := take(12)
				if err != nil {
					return 0, err
				}
				blk.Rel = RelFileLocator{
					Tablespace: binary.LittleEndian.Uint32(b[0:]),
					Database:   binary.LittleEndian.Uint32(b[4:]),
					RelNumber:  binary.LittleEndian.Uint32(b[8:]),
				}
				if blk.Rel.Tablespace == 0 || blk.Rel.RelNumber == 0 {
					return 0, decodeErr("block %d: relation %s has a zero OID", id, blk.Rel)
				}
			} else {
				if !haveRel {
					return 0, decodeErr("block %d: BKPBLOCK_SAME_REL on the first block reference", id)
				}
				blk.Rel = lastRel
			}
			b, err = take(4)
			if err != nil {
				return 0, err
			}
			blk.Block = binary.LittleEndian.Uint32(b)
			if blk.Block == 0xFFFFFFFF {
				return 0, decodeErr("block %d: invalid block number", id)
			}
			rec.Blocks = append(rec.Blocks, blk)
			lastRel, haveRel = blk.Rel, true
		default:
			return 0, decodeErr("invalid block ID %d", id)
		}
	}
	if remaining != dataTotal {
		return 0, decodeErr("record length %d does not match its headers: %d bytes of headers announce %d bytes of images and data, %d remain",
			tot, pos, dataTotal, remaining)
	}
	rec.MainDataLen = mainLen
	return mainLen, nil
}

// decodeImage interprets a block image header (XLogRecordBlockImageHeader,
// and the hole length of XLogRecordBlockCompressHeader when compressed with
// a hole) with the bimg_info bits of the version, and checks it.
func decodeImage(blk *BlockRef, version int, blockSize uint32, take func(int) ([]byte, error)) error {
	info := blk.ImageInfo
	hasHole := info&bkpImageHasHole != 0
	compressed := false
	if version <= 14 {
		if info&^bkpImageAll14 != 0 {
			return decodeErr("block %d: unknown image flags 0x%02X", blk.ID, info)
		}
		blk.ApplyImage = info&bkpImageApply14 != 0
		if info&bkpImageIsCompressed14 != 0 {
			compressed, blk.Compression = true, "pglz"
		}
	} else {
		if info&^bkpImageAll15 != 0 {
			return decodeErr("block %d: unknown image flags 0x%02X", blk.ID, info)
		}
		blk.ApplyImage = info&bkpImageApply15 != 0
		switch info & (bkpImageCompressPGLZ15 | bkpImageCompressLZ415 | bkpImageCompressZstd15) {
		case 0:
		case bkpImageCompressPGLZ15:
			compressed, blk.Compression = true, "pglz"
		case bkpImageCompressLZ415:
			compressed, blk.Compression = true, "lz4"
		case bkpImageCompressZstd15:
			compressed, blk.Compression = true, "zstd"
		default:
			return decodeErr("block %d: more than one compression method in image flags 0x%02X", blk.ID, info)
		}
	}
	n := uint32(blk.ImageLen)
	switch {
	case compressed && hasHole:
		b, err := take(2)
		if err != nil {
			return err
		}
		blk.HoleLength = binary.LittleEndian.Uint16(b)
	case compressed:
		blk.HoleLength = 0
	case n <= blockSize:
		blk.HoleLength = uint16(blockSize - n)
	default:
		return decodeErr("block %d: image length %d exceeds the block size %d", blk.ID, n, blockSize)
	}
	hole := uint32(blk.HoleLength)
	switch {
	case hasHole && (blk.HoleOffset == 0 || hole == 0 || n == blockSize):
		return decodeErr("block %d: BKPIMAGE_HAS_HOLE, but hole offset %d length %d image length %d", blk.ID, blk.HoleOffset, hole, n)
	case hasHole && uint32(blk.HoleOffset)+hole > blockSize:
		return decodeErr("block %d: hole offset %d length %d runs past the block", blk.ID, blk.HoleOffset, hole)
	case !hasHole && (blk.HoleOffset != 0 || hole != 0):
		return decodeErr("block %d: no BKPIMAGE_HAS_HOLE, but hole offset %d length %d", blk.ID, blk.HoleOffset, hole)
	case compressed && (n == 0 || n >= blockSize-hole):
		return decodeErr("block %d: compressed image of %d bytes for %d bytes of page", blk.ID, n, blockSize-hole)
	case !hasHole && !compressed && n != blockSize:
		return decodeErr("block %d: neither hole nor compression, but image length %d", blk.ID, n)
	}
	return nil
}
