package wal

import (
	"encoding/binary"
)

// Page header flags (xlp_info, src/include/access/xlog_internal.h, 13 to 18).
const (
	// xlpFirstIsContRecord: the page starts with the continuation of a
	// record begun on an earlier page; xlp_rem_len says how many bytes of it
	// remain.
	xlpFirstIsContRecord = 0x0001
	// xlpLongHeader: the long header, on the first page of a segment.
	xlpLongHeader = 0x0002
	// xlpBkpRemovable: full-page images from this page on are optional
	// (set whenever no online backup runs; unused by this package).
	xlpBkpRemovable = 0x0004
	// xlpFirstIsOverwriteContRecord: the continuation of a record that was
	// never completed (a crash) was overwritten by new WAL from this page on
	// (back-patched to 13 and 14 in 2021 minor releases).
	xlpFirstIsOverwriteContRecord = 0x0008
	xlpAllFlags                   = 0x000F
)

// Page header sizes: MAXALIGN(sizeof(XLogPageHeaderData)) and
// MAXALIGN(sizeof(XLogLongPageHeaderData)).
const (
	shortHeaderSize = 24
	longHeaderSize  = 40
)

// pageHeader is XLogPageHeaderData, and XLogLongPageHeaderData's extra
// fields when xlpLongHeader is set. All integers are little-endian.
//
//	offset size field
//	     0    2 xlp_magic     XLOG_PAGE_MAGIC of the major version
//	     2    2 xlp_info      flags above
//	     4    4 xlp_tli       timeline of the first record on the page
//	     8    8 xlp_pageaddr  LSN of the page
//	    16    4 xlp_rem_len   bytes left of a continued record
//	    20    4 (padding)
//	long header only:
//	    24    8 xlp_sysid        database system identifier
//	    32    4 xlp_seg_size     segment size
//	    36    4 xlp_xlog_blcksz  page size
type pageHeader struct {
	magic    uint16
	info     uint16
	tli      uint32
	pageAddr LSN
	remLen   uint32
	sysID    uint64
	segSize  uint32
	blcksz   uint32
}

func parsePageHeader(p []byte) pageHeader {
	h := pageHeader{
		magic:    binary.LittleEndian.Uint16(p[0:]),
		info:     binary.LittleEndian.Uint16(p[2:]),
		tli:      binary.LittleEndian.Uint32(p[4:]),
		pageAddr: LSN(binary.LittleEndian.Uint64(p[8:])),
		remLen:   binary.LittleEndian.Uint32(p[16:]),
	}
	if h.info&xlpLongHeader != 0 {
		h.sysID = binary.LittleEndian.Uint64(p[24:])
		h.segSize = binary.LittleEndian.Uint32(p[32:])
		h.blcksz = binary.LittleEndian.Uint32(p[36:])
	}
	return h
}

func (h *pageHeader) size() uint32 {
	if h.info&xlpLongHeader != 0 {
		return longHeaderSize
	}
	return shortHeaderSize
}
