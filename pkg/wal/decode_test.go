package wal

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// decodeBody decodes a record made of body, as the reader would.
func decodeBody(t *testing.T, version int, b []byte) (*Record, error) {
	t.Helper()
	raw := makeRecord(RmgrHeap, 0, 1, 0x100, b)
	var rec Record
	_, err := decodeRecord(&rec, raw[:min(len(raw), headKeep)], uint32(len(raw)), version, 8192)
	return &rec, err
}

// TestDecodeImageFlagsPerVersion: bimg_info changed in 15. The same byte
// means pglz compression up to 14 and "apply" from 15; the compressed-with-
// hole form stores the hole's length.
func TestDecodeImageFlagsPerVersion(t *testing.T) {
	img := bytes.Repeat([]byte{1}, 500) // a compressed image
	for _, tc := range []struct {
		version     int
		info        uint8
		holeLen     uint16
		compression string
		apply       bool
		errPart     string
	}{
		{14, bkpImageIsCompressed14 | bkpImageApply14, 0, "pglz", true, ""},
		{14, bkpImageIsCompressed14 | bkpImageHasHole, 3000, "pglz", false, ""},
		{13, 0x08, 0, "", false, "unknown image flags"},
		{15, bkpImageApply15 | bkpImageCompressLZ415, 0, "lz4", true, ""},
		{16, bkpImageCompressZstd15 | bkpImageHasHole, 3000, "zstd", false, ""},
		{17, bkpImageCompressPGLZ15 | bkpImageHasHole | bkpImageApply15, 3000, "pglz", true, ""},
		{18, bkpImageCompressPGLZ15 | bkpImageCompressLZ415, 0, "", false, "more than one compression"},
		{15, 0x20, 0, "", false, "unknown image flags"},
		// 0x02 is "compressed" up to 14: with a full-length image it is
		// refused there, while from 15 it is "apply" with a page-sized image.
		{14, 0x02, 0, "", false, "compressed image of 8192"},
	} {
		b := blk{id: 0, rel: relA, block: 1, bimgInfo: tc.info, img: img, holeLen: tc.holeLen}
		if tc.info&bkpImageHasHole != 0 {
			b.holeOff = 200
		}
		if strings.Contains(tc.errPart, "8192") {
			b.img = bytes.Repeat([]byte{1}, 8192)
		}
		rec, err := decodeBody(t, tc.version, body([]blk{b}, nil, 0, nil))
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("PostgreSQL %d, bimg_info 0x%02X: error %v, want %q", tc.version, tc.info, err, tc.errPart)
			}
			continue
		}
		if err != nil {
			t.Errorf("PostgreSQL %d, bimg_info 0x%02X: %v", tc.version, tc.info, err)
			continue
		}
		g := rec.Blocks[0]
		if g.Compression != tc.compression || g.ApplyImage != tc.apply || g.HoleLength != tc.holeLen || g.ImageLen != 500 {
			t.Errorf("PostgreSQL %d, bimg_info 0x%02X: %+v", tc.version, tc.info, g)
		}
	}
	// From 15, 0x02 alone is an applied, uncompressed, full image.
	rec, err := decodeBody(t, 15, body([]blk{{id: 0, rel: relA, block: 1, bimgInfo: 0x02, img: make([]byte, 8192)}}, nil, 0, nil))
	if err != nil || !rec.Blocks[0].ApplyImage || rec.Blocks[0].Compression != "" {
		t.Errorf("15, 0x02: %+v %v", rec.Blocks, err)
	}
}

// TestDecodeRejectsInconsistentHeaders: every inconsistency
// DecodeXLogRecord rejects, and the few more this package does, is an error.
func TestDecodeRejectsInconsistentHeaders(t *testing.T) {
	full := make([]byte, 8192)
	ok := blk{id: 0, rel: relA, block: 1, data: []byte{1}}
	setFlags := func(b []byte, i int, f func(*byte)) []byte { f(&b[i]); return b }
	for _, tc := range []struct {
		name    string
		version int
		body    []byte
		errPart string
	}{
		{"out-of-order block IDs", 15, body([]blk{{id: 2, rel: relA, block: 1}, {id: 1, rel: relA, block: 2}}, nil, 0, nil), "out of order"},
		{"repeated block ID", 15, body([]blk{{id: 2, rel: relA, block: 1}, {id: 2, rel: relA, block: 2}}, nil, 0, nil), "out of order"},
		{"block ID 33", 15, body([]blk{{id: 33, rel: relA, block: 1}}, nil, 0, nil), "invalid block ID 33"},
		{"SAME_REL first", 15, body([]blk{{id: 0, sameRel: true, block: 1}}, nil, 0, nil), "SAME_REL"},
		{"fork 4", 15, setFlags(body([]blk{ok}, nil, 0, nil), 1, func(b *byte) { *b |= 4 }), "fork number"},
		{"HAS_DATA without data", 15, setFlags(body([]blk{{id: 0, rel: relA, block: 1}}, nil, 0, nil), 1, func(b *byte) { *b |= blkHasData }), "HAS_DATA"},
		{"data without HAS_DATA", 15, setFlags(body([]blk{ok}, nil, 0, nil), 1, func(b *byte) { *b &^= blkHasData }), "HAS_DATA"},
		{"zero relation", 15, body([]blk{{id: 0, rel: RelFileLocator{1663, 5, 0}, block: 1}}, nil, 0, nil), "zero OID"},
		{"invalid block number", 15, body([]blk{{id: 0, rel: relA, block: 0xFFFFFFFF}}, nil, 0, nil), "invalid block number"},
		{"top-level XID in 13", 13, body([]blk{ok}, nil, 77, nil), "top-level XID"},
		{"image too short, no hole", 15, body([]blk{{id: 0, rel: relA, block: 1, img: make([]byte, 8000)}}, nil, 0, nil), "no BKPIMAGE_HAS_HOLE, but hole offset 0 length 192"},
		{"hole flag, no hole", 15, body([]blk{{id: 0, rel: relA, block: 1, img: full, bimgInfo: bkpImageHasHole, holeOff: 10}}, nil, 0, nil), "HAS_HOLE"},
		{"hole at offset 0", 15, body([]blk{{id: 0, rel: relA, block: 1, img: make([]byte, 8000), bimgInfo: bkpImageHasHole}}, nil, 0, nil), "HAS_HOLE"},
		{"hole past the block", 15, body([]blk{{id: 0, rel: relA, block: 1, img: make([]byte, 8000), bimgInfo: bkpImageHasHole, holeOff: 8100}}, nil, 0, nil), "runs past the block"},
		{"hole offset without hole flag", 15, body([]blk{{id: 0, rel: relA, block: 1, img: full, holeOff: 10}}, nil, 0, nil), "no BKPIMAGE_HAS_HOLE"},
		{"compressed larger than the page", 15, body([]blk{{id: 0, rel: relA, block: 1, img: make([]byte, 6000), bimgInfo: bkpImageCompressPGLZ15 | bkpImageHasHole, holeOff: 100, holeLen: 3000}}, nil, 0, nil), "compressed image"},
		{"image over the block size", 15, body([]blk{{id: 0, rel: relA, block: 1, img: make([]byte, 9000)}}, nil, 0, nil), "exceeds the block size"},
	} {
		_, err := decodeBody(t, tc.version, tc.body)
		if err == nil || !strings.Contains(err.Error(), tc.errPart) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.errPart)
		}
	}

	// Lengths that do not add up: a byte more or less than the headers
	// announce, or headers running past the record's end.
	b := body([]blk{ok}, nil, 0, []byte{1, 2, 3})
	for _, cut := range []int{-1, 1} {
		bb := b[:len(b)+min(cut, 0)]
		if cut > 0 {
			bb = append(append([]byte(nil), b...), 0)
		}
		if _, err := decodeBody(t, 15, bb); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("body %+d bytes: error %v", cut, err)
		}
	}
	if _, err := decodeBody(t, 15, b[:5]); err == nil {
		t.Error("headers cut short: accepted")
	}
	// A duplicate origin.
	two := append([]byte{blockIDOrigin, 1, 0, blockIDOrigin, 1, 0}, body(nil, nil, 0, nil)...)
	if _, err := decodeBody(t, 15, two); err == nil || !strings.Contains(err.Error(), "two origin") {
		t.Errorf("two origins: %v", err)
	}
}

// TestDecodeAllFields decodes a record with every kind of header.
func TestDecodeAllFields(t *testing.T) {
	origin := uint16(3)
	md := bytes.Repeat([]byte{4}, 300) // long main data header
	blocks := []blk{
		{id: 0, rel: relA, block: 10, data: []byte{1, 2}},
		{id: 5, rel: relA, block: 11, sameRel: true, fork: VMFork},
		imageBlock(7, relB, 12, 40, 100, 16),
		{id: 32, rel: relB, block: 13, sameRel: true, fork: InitFork, willInit: true, data: []byte{9}},
	}
	rec, err := decodeBody(t, 16, body(blocks, &origin, 999, md))
	if err != nil {
		t.Fatal(err)
	}
	if !rec.HasOrigin || rec.Origin != 3 || rec.TopLevelXID != 999 || rec.MainDataLen != 300 || len(rec.Blocks) != 4 {
		t.Fatalf("%+v", rec)
	}
	want := []struct {
		id    uint8
		rel   RelFileLocator
		fork  ForkNumber
		block uint32
	}{{0, relA, MainFork, 10}, {5, relA, VMFork, 11}, {7, relB, MainFork, 12}, {32, relB, InitFork, 13}}
	for i, w := range want {
		g := rec.Blocks[i]
		if g.ID != w.id || g.Rel != w.rel || g.Fork != w.fork || g.Block != w.block {
			t.Errorf("block %d: %+v, want %+v", i, g, w)
		}
	}
	if g := rec.Blocks[2]; g.ImageLen != 8092 || g.HoleOffset != 40 || g.HoleLength != 100 || rec.ImageBytes() != 8092 {
		t.Errorf("image block: %+v", g)
	}
	// 33 block references and every optional header: the headers' maximum
	// size fits in what the reader keeps.
	var many []blk
	for i := 0; i <= maxBlockID; i++ {
		b := blk{id: uint8(i), rel: RelFileLocator{1663, 5, uint32(20000 + i)}, block: uint32(i),
			img: make([]byte, 500), bimgInfo: bkpImageCompressZstd15 | bkpImageHasHole, holeOff: 100, holeLen: 200, data: []byte{1}}
		many = append(many, b)
	}
	raw := body(many, &origin, 1, md)
	hdrLen := len(raw) - 33*501 - len(md)
	if hdrLen+recordHeaderSize > headKeep || hdrLen != 33*blockHeaderMaxLen+3+5+5 {
		t.Fatalf("maximal headers are %d bytes", hdrLen)
	}
	rec, err = decodeBody(t, 18, raw)
	if err != nil || len(rec.Blocks) != 33 || rec.Blocks[32].Rel.RelNumber != 20032 {
		t.Fatalf("33 blocks: %v", err)
	}
}

// TestDecodeMainDataShortAndLong: main data of 255 bytes has the short
// header, 256 the long one; both decode.
func TestDecodeMainDataShortAndLong(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 70000} {
		md := bytes.Repeat([]byte{5}, n)
		b := body([]blk{{id: 0, rel: relA, block: 1}}, nil, 0, md)
		rec, err := decodeBody(t, 15, b)
		if err != nil || rec.MainDataLen != uint32(n) {
			t.Errorf("%d bytes: %v, %d", n, err, rec.MainDataLen)
		}
		if n > 255 && b[len(b)-n-5] != blockIDDataLong || n > 0 && n <= 255 && b[len(b)-n-2] != blockIDDataShort {
			t.Errorf("%d bytes: wrong main data header in the test's body", n)
		}
	}
	_ = binary.LittleEndian
}
