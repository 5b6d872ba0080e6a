package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"testing"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
)

// This file builds synthetic WAL the way PostgreSQL writes it (xloginsert.c's
// XLogRecordAssemble for a record's bytes, xlog.c's CopyXLogRecordToWAL for
// pages), for the unit tests and the fuzz seeds.

const synthSegSize = 1 << 20

// synth is a WAL writer into in-memory segments; it is also a SegmentSource.
type synth struct {
	version int
	magic   uint16
	tli     uint32
	segSize uint32
	sysID   uint64
	segs    map[uint64][]byte
	pos     LSN // where the next byte goes
	prev    LSN // the last record written
}

// newSynth returns a writer whose first record goes to start (segment and
// page headers before it are written, with empty pages).
func newSynth(version int, start LSN) *synth {
	m, ok := PageMagic(version)
	if !ok {
		panic(fmt.Sprint("no magic for version ", version))
	}
	s := &synth{version: version, magic: m, tli: 1, segSize: synthSegSize, sysID: 7000000000000000001,
		segs: make(map[uint64][]byte), prev: start - 0x28}
	s.pos = LSN(uint64(start) / uint64(s.segSize) * uint64(s.segSize))
	for s.pos < start {
		if s.pos%PageSize == 0 {
			s.pageHeader(0, 0)
		}
		if pageStart(s.pos) == pageStart(start) {
			s.pos = start
		} else {
			s.pos = pageStart(s.pos) + PageSize
		}
	}
	return s
}

func (s *synth) OpenSegment(tli uint32, segNo uint64, segSize uint32) (io.ReaderAt, error) {
	b, ok := s.segs[segNo]
	if !ok || tli != s.tli || segSize != s.segSize {
		return nil, fmt.Errorf("synthetic segment %s: %w", SegmentFileName(tli, segNo, segSize), fs.ErrNotExist)
	}
	return bytes.NewReader(b), nil
}

// bytesAt returns the segment bytes at lsn (allocating the segment).
func (s *synth) bytesAt(lsn LSN) []byte {
	no := uint64(lsn) / uint64(s.segSize)
	seg, ok := s.segs[no]
	if !ok {
		seg = make([]byte, s.segSize)
		s.segs[no] = seg
	}
	return seg[uint64(lsn)%uint64(s.segSize):]
}

// pageHeader writes the header of the page at s.pos (which must be a page
// start) and moves past it. remLen > 0 marks a continuation.
func (s *synth) pageHeader(remLen uint32, extraInfo uint16) {
	p := s.bytesAt(s.pos)
	info := uint16(xlpBkpRemovable) | extraInfo
	if remLen > 0 {
		info |= xlpFirstIsContRecord
	}
	long := uint64(s.pos)%uint64(s.segSize) == 0
	if long {
		info |= xlpLongHeader
	}
	binary.LittleEndian.PutUint16(p[0:], s.magic)
	binary.LittleEndian.PutUint16(p[2:], info)
	binary.LittleEndian.PutUint32(p[4:], s.tli)
	binary.LittleEndian.PutUint64(p[8:], uint64(s.pos))
	binary.LittleEndian.PutUint32(p[16:], remLen)
	if long {
		binary.LittleEndian.PutUint64(p[24:], s.sysID)
		binary.LittleEndian.PutUint32(p[32:], s.segSize)
		binary.LittleEndian.PutUint32(p[36:], PageSize)
		s.pos += longHeaderSize
	} else {
		s.pos += shortHeaderSize
	}
}

// put writes a whole record (header included) at the next aligned position,
// continuing it over pages as PostgreSQL does, and returns its LSN.
func (s *synth) put(rec []byte) LSN {
	s.pos = maxAlign(s.pos)
	if s.pos%PageSize == 0 {
		s.pageHeader(0, 0)
	}
	lsn := s.pos
	for rest := rec; len(rest) > 0; {
		if s.pos%PageSize == 0 {
			s.pageHeader(uint32(len(rest)), 0)
		}
		n := copy(s.bytesAt(s.pos)[:min(uint64(len(rest)), uint64(PageSize-s.pos%PageSize))], rest)
		rest = rest[n:]
		s.pos += LSN(n)
	}
	s.prev = lsn
	return lsn
}

// record builds a record with xl_prev = the last record written and puts
// it.
func (s *synth) record(rmid, info uint8, xid uint32, body []byte) LSN {
	return s.put(makeRecord(rmid, info, xid, s.prev, body))
}

// makeRecord returns a record's bytes: the 24-byte header with a correct
// CRC-32C, then body.
func makeRecord(rmid, info uint8, xid uint32, prev LSN, body []byte) []byte {
	rec := make([]byte, recordHeaderSize+len(body))
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(rec)))
	binary.LittleEndian.PutUint32(rec[4:], xid)
	binary.LittleEndian.PutUint64(rec[8:], uint64(prev))
	rec[16], rec[17] = info, rmid
	copy(rec[recordHeaderSize:], body)
	crc := crc32c.Update(crc32c.Checksum(rec[recordHeaderSize:]), rec[:20])
	binary.LittleEndian.PutUint32(rec[20:], crc)
	return rec
}

// switchSegment moves to the next segment as after XLOG_SWITCH.
func (s *synth) switchSegment() {
	s.pos = LSN((uint64(s.pos) + uint64(s.segSize) - 1) / uint64(s.segSize) * uint64(s.segSize))
}

// blk describes a block reference to build.
type blk struct {
	id       uint8
	fork     ForkNumber
	rel      RelFileLocator
	block    uint32
	sameRel  bool
	willInit bool
	data     []byte
	// image: when img is not nil; holeLen is the hole's length stored for
	// compressed images with a hole.
	img      []byte
	holeOff  uint16
	holeLen  uint16
	bimgInfo uint8
}

// body builds what follows a record header (XLogRecordAssemble's order):
// block headers, origin, top-level XID, main data header, then each block's
// image and data, then the main data.
func body(blocks []blk, origin *uint16, topXID uint32, main []byte) []byte {
	var h, d bytes.Buffer
	le16 := func(v uint16) { binary.Write(&h, binary.LittleEndian, v) }
	le32 := func(v uint32) { binary.Write(&h, binary.LittleEndian, v) }
	for _, b := range blocks {
		flags := uint8(b.fork)
		if b.img != nil {
			flags |= blkHasImage
		}
		if len(b.data) > 0 {
			flags |= blkHasData
		}
		if b.willInit {
			flags |= blkWillInit
		}
		if b.sameRel {
			flags |= blkSameRel
		}
		h.WriteByte(b.id)
		h.WriteByte(flags)
		le16(uint16(len(b.data)))
		if b.img != nil {
			le16(uint16(len(b.img)))
			le16(b.holeOff)
			h.WriteByte(b.bimgInfo)
			if b.holeLen != 0 {
				le16(b.holeLen)
			}
		}
		if !b.sameRel {
			le32(b.rel.Tablespace)
			le32(b.rel.Database)
			le32(b.rel.RelNumber)
		}
		le32(b.block)
		d.Write(b.img)
		d.Write(b.data)
	}
	if origin != nil {
		h.WriteByte(blockIDOrigin)
		le16(*origin)
	}
	if topXID != 0 {
		h.WriteByte(blockIDTopLevel)
		le32(topXID)
	}
	if len(main) > 255 {
		h.WriteByte(blockIDDataLong)
		le32(uint32(len(main)))
	} else if len(main) > 0 {
		h.WriteByte(blockIDDataShort)
		h.WriteByte(uint8(len(main)))
	}
	d.Write(main)
	return append(h.Bytes(), d.Bytes()...)
}

// fullImage returns a block with a full-page image of 8192 bytes without a
// hole, or with a hole when holeLen > 0 (uncompressed: the hole's length is
// implied).
func imageBlock(id uint8, rel RelFileLocator, block uint32, holeOff, holeLen uint16, version int) blk {
	apply := uint8(bkpImageApply15)
	if version <= 14 {
		apply = bkpImageApply14
	}
	b := blk{id: id, rel: rel, block: block, img: bytes.Repeat([]byte{0xA5}, 8192-int(holeLen)), bimgInfo: apply}
	if holeLen > 0 {
		b.holeOff = holeOff
		b.bimgInfo |= bkpImageHasHole
	}
	return b
}

// checkpointBody returns the main data body of a checkpoint record (88
// bytes of CheckPoint; wal_level at offset 20 from 17 on).
func checkpointBody(redo LSN, tli, prevTLI uint32, walLevel int32) []byte {
	md := make([]byte, checkpointSize)
	binary.LittleEndian.PutUint64(md[0:], uint64(redo))
	binary.LittleEndian.PutUint32(md[8:], tli)
	binary.LittleEndian.PutUint32(md[12:], prevTLI)
	md[16] = 1 // fullPageWrites
	binary.LittleEndian.PutUint32(md[20:], uint32(walLevel))
	return body(nil, nil, 0, md)
}

var (
	relA = RelFileLocator{Tablespace: 1663, Database: 5, RelNumber: 16384}
	relB = RelFileLocator{Tablespace: 1663, Database: 5, RelNumber: 16390}
)

// heapRecord returns the body of a heap-like record touching blocks of rel.
func heapRecord(rel RelFileLocator, blocks ...uint32) []byte {
	var bs []blk
	for i, b := range blocks {
		bs = append(bs, blk{id: uint8(i), rel: rel, block: b, sameRel: i > 0, data: []byte{1, 2, 3}})
	}
	return body(bs, nil, 0, []byte{0, 0, 0, 1})
}

func openSynth(t testing.TB, s *synth, start LSN) *Reader {
	t.Helper()
	r, err := NewReader(ReaderOptions{Source: s, Start: start, TLI: s.tli, SegmentSize: s.segSize})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
