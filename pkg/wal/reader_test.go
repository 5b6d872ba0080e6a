package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// written is what a test wrote: a record's LSN and body.
type written struct {
	lsn  LSN
	rmid uint8
	body []byte
}

// readAll reads records until an error and returns them with the error.
func readAll(t *testing.T, r *Reader) ([]Record, error) {
	t.Helper()
	var out []Record
	for {
		rec, err := r.Next()
		if err != nil {
			return out, err
		}
		c := *rec
		c.Blocks = append([]BlockRef(nil), rec.Blocks...)
		c.MainData = append([]byte(nil), rec.MainData...)
		out = append(out, c)
		if len(out) > 50_000_000 {
			t.Fatal("runaway reader")
		}
	}
}

func wantKind(t *testing.T, err, kind error, lsn LSN) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v, want kind %q", err, kind)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *wal.Error", err)
	}
	if lsn != 0 && e.LSN != lsn {
		t.Fatalf("error at %s, want at %s: %v", e.LSN, lsn, err)
	}
}

func TestLSNFormatAndParse(t *testing.T) {
	l := LSN(0x1_0174BAB8)
	if got := l.String(); got != "1/0174BAB8" {
		t.Errorf("String = %q", got)
	}
	for _, s := range []string{"1/0174BAB8", "1/174BAB8", " 1/174bab8\n"} {
		if got, err := ParseLSN(s); err != nil || got != l {
			t.Errorf("ParseLSN(%q) = %s, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "1", "x/1", "1/", "100000000/0"} {
		if _, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) accepted", s)
		}
	}
	if got := SegmentFileName(1, 256+3, 16<<20); got != "000000010000000100000003" {
		t.Errorf("SegmentFileName = %s", got)
	}
	// 1 GiB segments: 4 per 2^32 bytes.
	if got := SegmentFileName(2, 5, 1<<30); got != "000000020000000100000001" {
		t.Errorf("SegmentFileName(1 GiB) = %s", got)
	}
	tli, no, err := ParseSegmentFileName("000000020000000100000001", 1<<30)
	if err != nil || tli != 2 || no != 5 {
		t.Errorf("ParseSegmentFileName = %d %d %v", tli, no, err)
	}
	if _, _, err := ParseSegmentFileName("000000020000000100000004", 1<<30); err == nil {
		t.Error("ParseSegmentFileName accepted segment 4 of 1 GiB segments")
	}
}

// TestReaderReadsWhatWasWritten writes records of every size class (within a
// page, spanning pages, spanning a segment boundary, larger than a segment)
// and checks that the reader returns each with its LSN, End, xl_prev, block
// references and main data, then stops with ErrEndOfWAL where the WAL ends.
func TestReaderReadsWhatWasWritten(t *testing.T) {
	for _, version := range Versions {
		t.Run(fmt.Sprint(version), func(t *testing.T) {
			start := LSN(3*synthSegSize + 5*PageSize + 0x18)
			s := newSynth(version, start)
			var ws []written
			sizes := []int{0, 1, 100, 255, 256, 3000, 8100, 8200, 20000, 70000, 3 * synthSegSize / 2, 50}
			for i := 0; i < 300; i++ {
				n := sizes[i%len(sizes)]
				if i > 250 && n > 100000 {
					n = 7
				}
				md := bytes.Repeat([]byte{byte(i)}, n)
				b := body([]blk{{id: 0, rel: relA, block: uint32(i), data: []byte{byte(i)}}}, nil, 0, md)
				if i%7 == 3 {
					b = body([]blk{imageBlock(0, relB, uint32(i), 100, 2000, version), {id: 3, rel: relB, block: 9, sameRel: true, willInit: true}}, nil, 0, md)
				}
				ws = append(ws, written{lsn: s.record(RmgrHeap, 0x10, uint32(1000+i), b), rmid: RmgrHeap, body: b})
			}
			end := maxAlign(s.pos)
			r := openSynth(t, s, start)
			recs, err := readAll(t, r)
			wantKind(t, err, ErrEndOfWAL, end)
			if len(recs) != len(ws) {
				t.Fatalf("read %d records, wrote %d", len(recs), len(ws))
			}
			prev := start - 0x28
			for i, rec := range recs {
				w := ws[i]
				if rec.LSN != w.lsn || rec.Prev != prev || rec.TotalLen != uint32(24+len(w.body)) || rec.XID != uint32(1000+i) {
					t.Fatalf("record %d: LSN %s prev %s len %d xid %d, want %s %s %d %d", i, rec.LSN, rec.Prev, rec.TotalLen, rec.XID, w.lsn, prev, 24+len(w.body), 1000+i)
				}
				if i+1 < len(ws) && rec.End != ws[i+1].lsn && !(ws[i+1].lsn%PageSize != 0 && pageStart(ws[i+1].lsn) == rec.End) {
					t.Fatalf("record %d ends at %s, the next starts at %s", i, rec.End, ws[i+1].lsn)
				}
				if int(rec.MainDataLen) != len(rec.MainData) || !bytes.Equal(rec.MainData, w.body[len(w.body)-len(rec.MainData):]) {
					t.Fatalf("record %d: main data of %d bytes differs", i, rec.MainDataLen)
				}
				if i%7 == 3 {
					b := rec.Blocks
					if len(b) != 2 || !b[0].HasImage() || b[0].ImageLen != 8192-2000 || b[0].HoleOffset != 100 || b[0].HoleLength != 2000 ||
						!b[0].ApplyImage || b[1].ID != 3 || b[1].Rel != relB || !b[1].WillInit() || b[1].Block != 9 {
						t.Fatalf("record %d: blocks %+v", i, b)
					}
				} else if len(rec.Blocks) != 1 || rec.Blocks[0].Block != uint32(i) || rec.Blocks[0].Rel != relA || rec.Blocks[0].DataLen != 1 {
					t.Fatalf("record %d: blocks %+v", i, rec.Blocks)
				}
				prev = rec.LSN
			}
			// ErrEndOfWAL consumes nothing: more WAL written later is read.
			more := s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
			rec, err := r.Next()
			if err != nil || rec.LSN != more {
				t.Fatalf("after more WAL: %v, %v; want the record at %s", rec, err, more)
			}
		})
	}
}

// TestReaderRecordHeaderSplitAcrossPages: a record that starts 16 or 8
// bytes before a page's end has its fixed header split; it is checked once
// whole.
func TestReaderRecordHeaderSplitAcrossPages(t *testing.T) {
	for _, gap := range []LSN{8, 16} {
		start := LSN(synthSegSize + 2*PageSize - gap)
		s := newSynth(16, start)
		a := s.record(RmgrHeap, 0, 7, heapRecord(relA, 1, 2))
		b := s.record(RmgrHeap, 0, 8, heapRecord(relA, 3))
		recs, err := readAll(t, openSynth(t, s, start))
		wantKind(t, err, ErrEndOfWAL, 0)
		if len(recs) != 2 || recs[0].LSN != a || recs[1].LSN != b || len(recs[0].Blocks) != 2 {
			t.Fatalf("gap %d: records %+v", gap, recs)
		}
		// A broken xl_prev in the split header is caught once it is whole.
		s = newSynth(16, start)
		s.put(makeRecord(RmgrHeap, 0, 7, 0x1234, heapRecord(relA, 1)))
		r, _ := NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize, PrevLSN: 0x1238})
		_, err = r.Next()
		wantKind(t, err, ErrBrokenChain, start)
	}
}

// TestReaderChecksEveryCRC flips one byte of a record, in its first piece
// and in a continuation, and expects ErrBadCRC at that record, never a
// record with wrong contents.
func TestReaderChecksEveryCRC(t *testing.T) {
	for _, where := range []string{"header", "first page", "continuation", "image"} {
		t.Run(where, func(t *testing.T) {
			start := LSN(synthSegSize + 0x28)
			s := newSynth(15, start)
			s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
			b := body([]blk{imageBlock(0, relA, 5, 0, 0, 15)}, nil, 0, bytes.Repeat([]byte{7}, 9000))
			bad := s.record(RmgrHeap, 0, 2, b)
			s.record(RmgrHeap, 0, 3, heapRecord(relA, 2))
			var at LSN
			switch where {
			case "header":
				at = bad + 4 // xl_xid
			case "first page":
				at = bad + 30
			case "image":
				at = bad + 100
			case "continuation":
				at = pageStart(bad) + 2*PageSize + 100 // on the third page, past its header
			}
			s.bytesAt(at)[0] ^= 0x40
			recs, err := readAll(t, openSynth(t, s, start))
			wantKind(t, err, ErrBadCRC, bad)
			if len(recs) != 1 {
				t.Fatalf("read %d records before the bad one, want 1", len(recs))
			}
		})
	}
}

// TestReaderFollowsPrevLinks: a record whose xl_prev is not the record
// before is ErrBrokenChain, also for the first record when PrevLSN is given.
func TestReaderFollowsPrevLinks(t *testing.T) {
	start := LSN(synthSegSize + 0x28)
	s := newSynth(17, start)
	first := s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
	second := s.record(RmgrHeap, 0, 1, heapRecord(relA, 2))
	bad := s.put(makeRecord(RmgrHeap, 0, 1, first, heapRecord(relA, 3))) // skips second
	_ = bad
	recs, err := readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrBrokenChain, bad)
	if len(recs) != 2 || recs[1].LSN != second {
		t.Fatalf("records %+v", recs)
	}

	r, _ := NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize, PrevLSN: start - 8})
	_, err = r.Next()
	wantKind(t, err, ErrBrokenChain, start)

	// A first record whose xl_prev is not before it.
	s = newSynth(17, start)
	s.put(makeRecord(RmgrHeap, 0, 1, start+0x100, heapRecord(relA, 3)))
	_, err = readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrBrokenChain, start)
}

// TestReaderMissingAndTruncatedSegments: a record that continues into a
// missing segment, or past the end of a short segment file, is an error of
// that kind, not the end of the WAL.
func TestReaderMissingAndTruncatedSegments(t *testing.T) {
	start := LSN(2*synthSegSize - 2*PageSize + 0x18)
	build := func() (*synth, LSN) {
		s := newSynth(15, start)
		s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
		span := s.record(RmgrHeap, 0, 2, body(nil, nil, 0, bytes.Repeat([]byte{3}, 3*PageSize)))
		s.record(RmgrHeap, 0, 3, heapRecord(relA, 2))
		return s, span
	}
	s, span := build()
	delete(s.segs, 2)
	recs, err := readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrMissingSegment, 2*synthSegSize)
	if len(recs) != 1 || !bytes.Contains([]byte(err.Error()), []byte(SegmentFileName(1, 2, synthSegSize))) {
		t.Fatalf("records %d, error %v: want 1 and the segment's name", len(recs), err)
	}

	s, _ = build()
	s.segs[2] = s.segs[2][:PageSize/2]
	_, err = readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrTruncatedSegment, 0)

	s, _ = build()
	s.segs[1] = s.segs[1][:synthSegSize-PageSize]
	_, err = readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrTruncatedSegment, 0)

	// A page never written in the middle of a record is a record cut short.
	s, span = build()
	clear(s.segs[2][:PageSize])
	_, err = readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrInvalid, 0)
	if !bytes.Contains([]byte(err.Error()), []byte(span.String())) {
		t.Errorf("error %v does not name the record %s", err, span)
	}

	// A missing segment at a record boundary is ErrMissingSegment too.
	s = newSynth(15, start)
	s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
	s.record(RmgrXLOG, xlogSwitch, 0, nil)
	recs, err = readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrMissingSegment, 2*synthSegSize)
	if len(recs) != 2 {
		t.Fatalf("read %d records", len(recs))
	}
}

// TestReaderSwitch: after XLOG_SWITCH the next record is at the start of the
// next segment, and the rest of the segment is not read.
func TestReaderSwitch(t *testing.T) {
	start := LSN(synthSegSize + 0x28)
	s := newSynth(13, start)
	s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
	sw := s.record(RmgrXLOG, xlogSwitch, 0, nil)
	// Garbage in the rest of the segment must not be read.
	copy(s.bytesAt(s.pos+64), bytes.Repeat([]byte{0xEE}, 4*PageSize))
	s.switchSegment()
	next := s.record(RmgrHeap, 0, 1, heapRecord(relA, 2))
	recs, err := readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrEndOfWAL, 0)
	if len(recs) != 3 || recs[1].LSN != sw || recs[1].End != 2*synthSegSize || recs[2].LSN != next || next != 2*synthSegSize+longHeaderSize {
		t.Fatalf("records %+v", recs)
	}
}

// TestReaderOverwriteContrecord: after a crash cut a record spanning pages,
// PostgreSQL writes XLOG_OVERWRITE_CONTRECORD on the next page, flagged
// XLP_FIRST_IS_OVERWRITE_CONTRECORD; the abandoned record is not returned,
// and the overwrite record must name it.
func TestReaderOverwriteContrecord(t *testing.T) {
	for _, tc := range []struct {
		name    string
		names   func(aborted LSN) LSN
		wantErr bool
	}{
		{"names the abandoned record", func(a LSN) LSN { return a }, false},
		{"names another record", func(a LSN) LSN { return a + 8 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := LSN(synthSegSize + 0x28)
			s := newSynth(14, start)
			good := s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
			// A record that would span 3 pages: only its first page's part
			// was written before the crash.
			full := makeRecord(RmgrHeap, 0, 2, good, body(nil, nil, 0, bytes.Repeat([]byte{9}, 2*PageSize)))
			s.pos = maxAlign(s.pos)
			aborted := s.pos
			n := int(PageSize - s.pos%PageSize)
			copy(s.bytesAt(s.pos), full[:n])
			s.pos += LSN(n)
			// The new WAL after recovery: an overwrite page, its record
			// pointing back past the abandoned one.
			s.pageHeader(0, xlpFirstIsOverwriteContRecord)
			md := make([]byte, 16)
			binary.LittleEndian.PutUint64(md, uint64(tc.names(aborted)))
			ow := s.put(makeRecord(RmgrXLOG, xlogOverwriteContrecord, 0, good, body(nil, nil, 0, md)))
			after := s.record(RmgrHeap, 0, 3, heapRecord(relA, 2))
			recs, err := readAll(t, openSynth(t, s, start))
			if tc.wantErr {
				wantKind(t, err, ErrInvalid, ow)
				return
			}
			wantKind(t, err, ErrEndOfWAL, 0)
			if len(recs) != 3 || recs[0].LSN != good || recs[1].LSN != ow || recs[2].LSN != after {
				t.Fatalf("records at %v", lsns(recs))
			}
		})
	}
}

func lsns(recs []Record) []LSN {
	var out []LSN
	for _, r := range recs {
		out = append(out, r.LSN)
	}
	return out
}

// TestReaderPageHeaderChecks corrupts one page header field at a time; each
// is an error of the right kind, at the page.
func TestReaderPageHeaderChecks(t *testing.T) {
	start := LSN(synthSegSize + 0x28)
	build := func() (*synth, LSN) {
		s := newSynth(16, start)
		s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
		s.record(RmgrHeap, 0, 2, body(nil, nil, 0, bytes.Repeat([]byte{3}, 2*PageSize)))
		return s, synthSegSize + PageSize // the first continuation page
	}
	m13, _ := PageMagic(13)
	for _, tc := range []struct {
		name string
		mod  func(p []byte)
		kind error
	}{
		{"other version's magic", func(p []byte) { binary.LittleEndian.PutUint16(p, m13) }, ErrUnsupportedMagic},
		{"unknown magic", func(p []byte) { binary.LittleEndian.PutUint16(p, 0xD0FF) }, ErrUnsupportedMagic},
		{"unknown flag", func(p []byte) { p[2] |= 0x10 }, ErrInvalid},
		{"long header inside a segment", func(p []byte) { p[2] |= xlpLongHeader }, ErrInvalid},
		{"other timeline", func(p []byte) { p[4] = 2 }, ErrTimeline},
		{"wrong page address", func(p []byte) { p[9] ^= 0x40 }, ErrInvalid},
		{"continuation length", func(p []byte) { p[16]++ }, ErrInvalid},
		{"no continuation flag", func(p []byte) { p[2] &^= xlpFirstIsContRecord }, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, page := build()
			tc.mod(s.bytesAt(page))
			_, err := readAll(t, openSynth(t, s, start))
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want kind %q", err, tc.kind)
			}
		})
	}

	// The long header of the first segment: segment size, page size,
	// system identifier of a later segment.
	for _, tc := range []struct {
		name string
		off  int
		v    uint32
	}{{"segment size", 32, 2 << 20}, {"page size", 36, 4096}} {
		s, _ := build()
		binary.LittleEndian.PutUint32(s.bytesAt(synthSegSize)[tc.off:], tc.v)
		_, err := readAll(t, openSynth(t, s, start))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v", tc.name, err)
		}
	}
	s := newSynth(16, start)
	s.record(RmgrHeap, 0, 1, body(nil, nil, 0, bytes.Repeat([]byte{3}, synthSegSize+PageSize)))
	s.bytesAt(2 * synthSegSize)[24]++ // xlp_sysid of segment 2
	_, err := readAll(t, openSynth(t, s, start))
	if !errors.Is(err, ErrInvalid) || !bytes.Contains([]byte(err.Error()), []byte("system identifier")) {
		t.Errorf("another cluster's segment: %v", err)
	}

	// The expected version and system identifier, when given, are checked.
	s, _ = build()
	r, _ := NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize, Version: 17})
	_, err = r.Next()
	wantKind(t, err, ErrUnsupportedMagic, synthSegSize)
	r, _ = NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize, SystemID: 42})
	_, err = r.Next()
	wantKind(t, err, ErrInvalid, synthSegSize)
}

// TestReaderEndOfWAL: the WAL ends where a record length is 0, where a page
// was never written, or where a page is left from a recycled segment; each
// only at a record boundary.
func TestReaderEndOfWAL(t *testing.T) {
	start := LSN(synthSegSize + 0x28)
	// A record that ends exactly at a page end, followed by a zero page.
	s := newSynth(18, start)
	s.record(RmgrHeap, 0, 1, body(nil, nil, 0, bytes.Repeat([]byte{1}, PageSize-0x28-24-5)))
	if s.pos != synthSegSize+PageSize {
		t.Fatalf("setup: record ends at %s", s.pos)
	}
	_, err := readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrEndOfWAL, synthSegSize+PageSize)

	// The same, followed by a page of a recycled segment.
	p := s.bytesAt(synthSegSize + PageSize)
	m, _ := PageMagic(18)
	binary.LittleEndian.PutUint16(p, m)
	binary.LittleEndian.PutUint32(p[4:], 1)
	binary.LittleEndian.PutUint64(p[8:], uint64(5*synthSegSize+PageSize)) // an older (or other) position
	_, err = readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrEndOfWAL, synthSegSize+PageSize)

	// Reading from a start past the end.
	s = newSynth(18, start)
	_, err = readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrEndOfWAL, start)

	// A record length below the header size is not the end but garbage.
	s = newSynth(18, start)
	s.bytesAt(start)[0] = 12
	_, err = readAll(t, openSynth(t, s, start))
	wantKind(t, err, ErrInvalid, start)
}

// TestReaderStartPositions: a start at a page boundary skips the page
// header; a start at a continuation is refused.
func TestReaderStartPositions(t *testing.T) {
	start := LSN(synthSegSize + PageSize)
	s := newSynth(15, start)
	a := s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
	s.record(RmgrHeap, 0, 1, body(nil, nil, 0, bytes.Repeat([]byte{2}, PageSize)))
	r := openSynth(t, s, start)
	rec, err := r.Next()
	if err != nil || rec.LSN != a || a != start+shortHeaderSize {
		t.Fatalf("first record %v at %s, %v", rec, a, err)
	}
	_, err = readAll(t, openSynth(t, s, start+PageSize)) // the continuation's page
	wantKind(t, err, ErrInvalid, start+PageSize)
	if _, err := NewReader(ReaderOptions{Source: s, Start: start + 4, TLI: 1, SegmentSize: synthSegSize}); err == nil {
		t.Error("NewReader accepted an unaligned start")
	}
}

// TestReaderLimit: a record reaching past the limit is not consumed; after
// the limit is raised it is read, even when the bytes under the old limit
// changed in between (nothing stale is kept).
func TestReaderLimit(t *testing.T) {
	start := LSN(synthSegSize + 0x28)
	s := newSynth(17, start)
	a := s.record(RmgrHeap, 0, 1, heapRecord(relA, 1))
	b := s.record(RmgrHeap, 0, 1, body(nil, nil, 0, bytes.Repeat([]byte{2}, 3*PageSize)))
	r, _ := NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize, Limit: b + PageSize})
	if rec, err := r.Next(); err != nil || rec.LSN != a {
		t.Fatalf("first: %v %v", rec, err)
	}
	for i := 0; i < 2; i++ {
		_, err := r.Next()
		wantKind(t, err, ErrLimit, b)
	}
	r.SetLimit(0)
	if rec, err := r.Next(); err != nil || rec.LSN != b {
		t.Fatalf("after raising the limit: %v %v", rec, err)
	}
	// A limit exactly at a record start stops before it.
	c := s.record(RmgrHeap, 0, 1, heapRecord(relA, 2))
	r.SetLimit(c)
	_, err := r.Next()
	wantKind(t, err, ErrLimit, c)
}

// TestReaderMainDataLimit: main data over the limit is skipped, its length
// still reported, and the CRC still checked.
func TestReaderMainDataLimit(t *testing.T) {
	start := LSN(synthSegSize + 0x28)
	s := newSynth(15, start)
	s.record(RmgrLogicalMessage, 0, 1, body(nil, nil, 0, bytes.Repeat([]byte{2}, 100000)))
	r, _ := NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize, MainDataLimit: 1000})
	rec, err := r.Next()
	if err != nil || rec.MainData != nil || rec.MainDataLen != 100000 {
		t.Fatalf("%v, %v", rec, err)
	}
	s.bytesAt(start + 50000)[0]++
	r, _ = NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize, MainDataLimit: 1000})
	_, err = r.Next()
	wantKind(t, err, ErrBadCRC, start)
}

// TestReaderRmgrIDs: IDs 22 to 127 never exist; custom IDs (128-255) exist
// from 15.
func TestReaderRmgrIDs(t *testing.T) {
	for _, tc := range []struct {
		version int
		rmid    uint8
		ok      bool
	}{{13, 21, true}, {13, 22, false}, {14, 128, false}, {15, 128, true}, {18, 255, true}, {16, 127, false}} {
		start := LSN(synthSegSize + 0x28)
		s := newSynth(tc.version, start)
		s.record(tc.rmid, 0, 1, nil)
		_, err := openSynth(t, s, start).Next()
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrUnknownRmgr)) {
			t.Errorf("PostgreSQL %d, rmgr %d: %v", tc.version, tc.rmid, err)
		}
	}
}

// TestReaderUnknownInfoBits: xl_info bits 0x04 and 0x08 are never set by
// PostgreSQL.
func TestReaderUnknownInfoBits(t *testing.T) {
	start := LSN(synthSegSize + 0x28)
	s := newSynth(15, start)
	s.record(RmgrHeap, 0x04, 1, nil)
	_, err := openSynth(t, s, start).Next()
	wantKind(t, err, ErrInvalid, start)
}

func TestReadSegmentHeader(t *testing.T) {
	s := newSynth(16, 3*synthSegSize+0x28)
	h, err := ReadSegmentHeader(bytes.NewReader(s.segs[3]))
	if err != nil || h.Version != 16 || h.SegmentSize != synthSegSize || h.PageAddr != 3*synthSegSize || h.TLI != 1 || h.SystemID != s.sysID {
		t.Fatalf("%+v, %v", h, err)
	}
	if _, err := ReadSegmentHeader(bytes.NewReader(s.segs[3][:20])); !errors.Is(err, ErrTruncatedSegment) {
		t.Errorf("short file: %v", err)
	}
	s.segs[3][32] = 3 // segment size not a power of two
	if _, err := ReadSegmentHeader(bytes.NewReader(s.segs[3])); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad segment size: %v", err)
	}
}
