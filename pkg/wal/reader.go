package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
)

// ReaderOptions configure a [Reader].
type ReaderOptions struct {
	// Source opens the segment files. Required.
	Source SegmentSource
	// Start is where reading begins: the LSN of a record (a checkpoint's
	// redo LSN is one), or of a page whose first record starts right after
	// its header. Required.
	Start LSN
	// TLI is the timeline to read: segment files are opened by this
	// timeline's names, and every page must carry it. Required.
	TLI uint32
	// SegmentSize is the WAL segment size (pg_controldata's "Bytes per WAL
	// segment", or [ReadSegmentHeader]). Every segment's long page header
	// must agree. Required.
	SegmentSize uint32
	// Version is the expected major version (13 to 18); 0 takes it from the
	// first page's magic. Every page must carry the same magic.
	Version int
	// SystemID is the expected database system identifier; 0 takes it from
	// the first segment's long page header. Every segment must agree.
	SystemID uint64
	// PrevLSN, when not 0, is the LSN the first record's xl_prev must name.
	// Otherwise the first record's xl_prev need only be less than its LSN
	// (PostgreSQL's check when it starts reading at a checkpoint).
	PrevLSN LSN
	// Limit, when not 0, is an LSN the reader never reads at or past (the
	// server's flush LSN while it runs): a record that reaches it makes
	// [Reader.Next] return [ErrLimit] without consuming anything.
	Limit LSN
	// BlockSize is the relation block size (BLCKSZ, pg_controldata's
	// "Database block size"); 0 means 8192.
	BlockSize uint32
	// MainDataLimit is the longest main data a Record keeps in MainData;
	// longer main data is skipped (MainData nil). 0 means 64 MiB.
	MainDataLimit int
}

// Reader reads WAL records in order from a start LSN, checking page headers,
// CRCs and xl_prev links, and decodes their block references. It keeps one
// segment open at a time, reads it in chunks of up to 256 KiB, and holds at
// most one record's headers and main data in memory (never its full-page
// images), whatever the record's length.
type Reader struct {
	// config
	src       SegmentSource
	tli       uint32
	segSize   uint32
	blockSize uint32
	mdLimit   int
	firstPrev LSN

	// state
	version int
	magic   uint16
	sysID   uint64
	limit   LSN
	next    LSN   // where the next record starts, or the start of the page it starts on
	prev    LSN   // LSN of the record returned last
	started bool  // a record was returned
	aborted LSN   // a record abandoned at an overwrite-contrecord page; the next record must say so
	err     error // sticky: once a read fails for good, Next keeps returning the error

	seg       segment
	chunk     []byte // bytes of seg from offset chunkOff, chunkN valid
	chunkOff  uint32
	chunkN    uint32
	chunkNext uint32 // size of the next read
	pageAt    LSN    // the page whose header was checked last, valid while pageOK
	pageOK    bool
	pageHdr   pageHeader

	rec Record
	asm assembler
}

type segment struct {
	open bool
	no   uint64
	name string
	ra   io.ReaderAt
}

// Reads of a segment start at minChunk bytes and double, as long as they
// follow each other, up to maxChunk: a reader that reads a few records reads
// little, one that reads a long range reads in large chunks.
const (
	minChunk = 32 << 10
	maxChunk = 256 << 10
)

// NewReader returns a Reader positioned at opts.Start. It reads nothing yet:
// the first call of Next opens the first segment.
func NewReader(opts ReaderOptions) (*Reader, error) {
	switch {
	case opts.Source == nil:
		return nil, errors.New("wal: NewReader: no segment source")
	case opts.TLI == 0:
		return nil, errors.New("wal: NewReader: timeline 0")
	case !ValidSegmentSize(opts.SegmentSize):
		return nil, fmt.Errorf("wal: NewReader: segment size %d is not a power of two from 1 MiB to 1 GiB", opts.SegmentSize)
	case opts.Start < PageSize:
		return nil, fmt.Errorf("wal: NewReader: start LSN %s is in the first page of the WAL", opts.Start)
	case opts.Start%8 != 0:
		return nil, fmt.Errorf("wal: NewReader: start LSN %s is not 8-byte aligned, so no record starts there", opts.Start)
	case opts.BlockSize != 0 && (opts.BlockSize < 1024 || opts.BlockSize > 32768 || opts.BlockSize&(opts.BlockSize-1) != 0):
		return nil, fmt.Errorf("wal: NewReader: block size %d", opts.BlockSize)
	}
	r := &Reader{
		src:       opts.Source,
		tli:       opts.TLI,
		segSize:   opts.SegmentSize,
		blockSize: opts.BlockSize,
		mdLimit:   opts.MainDataLimit,
		firstPrev: opts.PrevLSN,
		sysID:     opts.SystemID,
		limit:     opts.Limit,
		next:      opts.Start,
	}
	if r.blockSize == 0 {
		r.blockSize = 8192
	}
	if r.mdLimit <= 0 {
		r.mdLimit = 64 << 20
	}
	if opts.Version != 0 {
		m, ok := PageMagic(opts.Version)
		if !ok {
			return nil, fmt.Errorf("wal: NewReader: PostgreSQL %d is not supported (13 to 18 are)", opts.Version)
		}
		r.version, r.magic = opts.Version, m
	}
	return r, nil
}

// Version returns the major version of the WAL read so far (0 before the
// first page).
func (r *Reader) Version() int { return r.version }

// SystemID returns the database system identifier of the WAL read so far (0
// before the first segment).
func (r *Reader) SystemID() uint64 { return r.sysID }

// TLI returns the timeline the reader reads.
func (r *Reader) TLI() uint32 { return r.tli }

// NextLSN returns the LSN where the next record starts (or the page it starts
// on): after a record, that record's End.
func (r *Reader) NextLSN() LSN { return r.next }

// SetLimit changes the LSN the reader never reads at or past (0: none) and
// drops what it has cached, so that bytes read under the old limit are read
// again.
func (r *Reader) SetLimit(l LSN) {
	r.limit = l
	r.dropCache()
}

// Close closes the open segment if the source gave one that can be closed.
func (r *Reader) Close() error {
	return r.closeSegment()
}

// Next reads and decodes the next record. The Record is valid until the next
// call. Errors are [*Error]s of one of the Err* kinds. [ErrEndOfWAL] and
// [ErrLimit] consume nothing, so Next may be called again (after more WAL was
// written, or the limit raised); after any other error Next returns that
// error again.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	for {
		rec, restart, err := r.read()
		if restart {
			continue
		}
		if err != nil {
			if errors.Is(err, ErrLimit) || errors.Is(err, ErrEndOfWAL) {
				r.dropCache()
			} else {
				r.err = err
			}
			return nil, err
		}
		return rec, nil
	}
}

// read reads the record at r.next. restart means a page flagged
// XLP_FIRST_IS_OVERWRITE_CONTRECORD ended the record being read: reading
// starts again at that page.
func (r *Reader) read() (rec *Record, restart bool, err error) {
	pos := r.next
	if pos%PageSize == 0 {
		h, err := r.page(pos, true)
		if err != nil {
			return nil, false, err
		}
		if h.info&xlpFirstIsContRecord != 0 {
			return nil, false, r.errf(ErrInvalid, pos, "the page starts with the rest of a record (xlp_rem_len %d) where a record should begin", h.remLen)
		}
		pos += LSN(h.size())
	} else {
		h, err := r.page(pageStart(pos), true)
		if err != nil {
			return nil, false, err
		}
		if uint32(pos%PageSize) < h.size() {
			return nil, false, r.errf(ErrInvalid, pos, "record position inside the page header")
		}
	}
	recLSN := pos
	page, err := r.pageBytes(pageStart(pos))
	if err != nil {
		return nil, false, err
	}
	off := uint32(pos % PageSize)
	if err := r.within(recLSN, pos+4); err != nil {
		return nil, false, err
	}
	tot := binary.LittleEndian.Uint32(page[off:])
	switch {
	case tot == 0:
		return nil, false, r.errf(ErrEndOfWAL, recLSN, "record length 0: the rest of the page is empty")
	case tot < recordHeaderSize:
		return nil, false, r.errf(ErrInvalid, recLSN, "record length %d is less than a record header", tot)
	case tot > maxRecordLen:
		return nil, false, r.errf(ErrInvalid, recLSN, "record length %d is more than 1 GiB", tot)
	}
	r.asm.begin(tot)
	n := min(PageSize-off, tot)
	if err := r.within(recLSN, pos+LSN(n)); err != nil {
		return nil, false, err
	}
	if err := r.feed(recLSN, page[off:off+n]); err != nil {
		return nil, false, err
	}
	got := n
	end := recLSN + LSN(maxAlign(tot))
	for pg := pageStart(pos) + PageSize; got < tot; pg += PageSize {
		h, err := r.page(pg, false)
		if err != nil {
			return nil, false, r.inRecord(err, recLSN)
		}
		if h.info&xlpFirstIsOverwriteContRecord != 0 {
			// The rest of this record was never written: after a crash,
			// new WAL overwrote it from this page on (xlogreader.c).
			if r.aborted != 0 {
				return nil, false, r.errf(ErrInvalid, pg, "a second overwritten record (%s) before the overwrite record of %s", recLSN, r.aborted)
			}
			r.aborted, r.next = recLSN, pg
			return nil, true, nil
		}
		if h.info&xlpFirstIsContRecord == 0 {
			return nil, false, r.errf(ErrInvalid, pg, "the record at %s continues on this page, which has no continuation flag", recLSN)
		}
		if h.remLen != tot-got {
			return nil, false, r.errf(ErrInvalid, pg, "xlp_rem_len %d, but %d bytes of the record at %s remain", h.remLen, tot-got, recLSN)
		}
		n := min(h.remLen, PageSize-h.size())
		if err := r.within(recLSN, pg+LSN(h.size()+n)); err != nil {
			return nil, false, err
		}
		p, err := r.pageBytes(pg)
		if err != nil {
			return nil, false, r.inRecord(err, recLSN)
		}
		if err := r.feed(recLSN, p[h.size():h.size()+n]); err != nil {
			return nil, false, err
		}
		got += n
		if got == tot {
			end = pg + LSN(h.size()+maxAlign(h.remLen))
		}
	}
	return r.finish(recLSN, end)
}

// finish checks the CRC of the record just assembled, completes its
// decoding and moves the reader past it.
func (r *Reader) finish(recLSN, end LSN) (*Record, bool, error) {
	a := &r.asm
	crc := crc32c.Update(a.crc, a.head[:20])
	rec := &r.rec
	if want := binary.LittleEndian.Uint32(a.head[20:]); crc != want {
		return nil, false, r.errf(ErrBadCRC, recLSN, "xl_crc %08X, computed %08X over %d bytes", want, crc, a.tot)
	}
	if a.parseErr != nil {
		return nil, false, r.errf(ErrInvalid, recLSN, "%v", a.parseErr)
	}
	if a.keepMD && uint32(len(a.md)) != rec.MainDataLen {
		return nil, false, r.errf(ErrInvalid, recLSN, "assembled %d bytes of main data, expected %d", len(a.md), rec.MainDataLen)
	}
	rec.LSN = recLSN
	if a.keepMD {
		rec.MainData = a.md
	}
	if rec.Rmgr == RmgrXLOG && rec.RmgrInfo() == xlogSwitch {
		// The rest of the segment is unused: the next record starts in the
		// next segment.
		end = LSN((uint64(end) + uint64(r.segSize) - 1) / uint64(r.segSize) * uint64(r.segSize))
	}
	isOverwrite := rec.Rmgr == RmgrXLOG && rec.RmgrInfo() == xlogOverwriteContrecord
	switch {
	case r.aborted != 0 && !isOverwrite:
		return nil, false, r.errf(ErrInvalid, recLSN, "the record at %s was overwritten, but the next record is not XLOG_OVERWRITE_CONTRECORD", r.aborted)
	case r.aborted != 0:
		if len(rec.MainData) != 16 {
			return nil, false, r.errf(ErrInvalid, recLSN, "XLOG_OVERWRITE_CONTRECORD with %d bytes of main data", rec.MainDataLen)
		}
		if lsn := LSN(binary.LittleEndian.Uint64(rec.MainData)); lsn != r.aborted {
			return nil, false, r.errf(ErrInvalid, recLSN, "XLOG_OVERWRITE_CONTRECORD names %s, but the record abandoned was at %s", lsn, r.aborted)
		}
		r.aborted = 0
	case isOverwrite && r.started:
		return nil, false, r.errf(ErrInvalid, recLSN, "XLOG_OVERWRITE_CONTRECORD, but no record was abandoned before it")
	}
	rec.End = end
	r.next, r.prev, r.started = end, recLSN, true
	return rec, false, nil
}

// feed adds the next bytes of the record at recLSN to the assembler: its
// header is checked as soon as it is complete, its block headers decoded as
// soon as they are, and of the rest only the CRC and the main data are kept.
func (r *Reader) feed(recLSN LSN, b []byte) error {
	a := &r.asm
	for len(b) > 0 {
		if a.nHead < a.headWant {
			n := copy(a.head[a.nHead:a.headWant], b)
			a.account(b[:n])
			a.nHead += uint32(n)
			b = b[n:]
			if !a.hdrChecked && a.nHead >= recordHeaderSize {
				a.hdrChecked = true
				if err := r.checkHeader(recLSN); err != nil {
					return err
				}
			}
			if a.nHead == a.headWant {
				r.decode()
			}
			continue
		}
		a.account(b)
		b = nil
	}
	return nil
}

// checkHeader checks the fixed record header before more of the record is
// read: a valid resource manager for the version, no unknown xl_info bits,
// and the xl_prev link (xlogreader.c's ValidXLogRecordHeader).
func (r *Reader) checkHeader(recLSN LSN) error {
	h := r.asm.head[:recordHeaderSize]
	info, rmid := h[16], h[17]
	prev := LSN(binary.LittleEndian.Uint64(h[8:]))
	if !rmgrValid(r.version, rmid) {
		return r.errf(ErrUnknownRmgr, recLSN, "resource manager ID %d does not exist in PostgreSQL %d", rmid, r.version)
	}
	if info&xlrInfoMask&^(xlrSpecialRelUpdate|xlrCheckConsistency) != 0 {
		return r.errf(ErrInvalid, recLSN, "unknown xl_info bits 0x%02X", info&xlrInfoMask)
	}
	switch {
	case r.started && prev != r.prev:
		return r.errf(ErrBrokenChain, recLSN, "xl_prev is %s, but the record before is at %s", prev, r.prev)
	case !r.started && r.firstPrev != 0 && prev != r.firstPrev:
		return r.errf(ErrBrokenChain, recLSN, "xl_prev of the first record is %s, expected %s", prev, r.firstPrev)
	case !r.started && prev >= recLSN:
		return r.errf(ErrBrokenChain, recLSN, "xl_prev %s is not before the record", prev)
	}
	return nil
}

// decode decodes the record's headers once they are all assembled, and
// arranges for the main data to be kept.
func (r *Reader) decode() {
	a := &r.asm
	mdLen, err := decodeRecord(&r.rec, a.head[:a.headWant], a.tot, r.version, r.blockSize)
	a.parsed = true
	if err != nil {
		a.parseErr = err
		return
	}
	a.mdStart = a.tot - mdLen
	a.keepMD = int(mdLen) <= r.mdLimit
	if a.keepMD && a.mdStart < a.got {
		a.md = append(a.md, a.head[a.mdStart:a.got]...)
	}
}

// assembler accumulates one record as its pieces arrive from pages.
type assembler struct {
	tot        uint32 // xl_tot_len
	got        uint32 // bytes fed so far
	crc        uint32 // CRC-32C of the bytes after the fixed header fed so far
	head       [headKeep]byte
	headWant   uint32 // min(tot, headKeep)
	nHead      uint32
	hdrChecked bool
	parsed     bool
	parseErr   error
	mdStart    uint32
	keepMD     bool
	md         []byte
}

func (a *assembler) begin(tot uint32) {
	md := a.md[:0]
	if cap(md) > 4<<20 {
		md = nil // do not keep a huge buffer for small records
	}
	// Field by field: head is overwritten as bytes arrive, not cleared.
	a.tot, a.got, a.crc = tot, 0, 0
	a.headWant, a.nHead = min(tot, headKeep), 0
	a.hdrChecked, a.parsed, a.parseErr = false, false, nil
	a.mdStart, a.keepMD, a.md = 0, false, md
}

// account adds b, the next bytes of the record, to the CRC and, once the
// headers are decoded, to the main data.
func (a *assembler) account(b []byte) {
	start := a.got
	a.got += uint32(len(b))
	if a.got > recordHeaderSize {
		skip := uint32(0)
		if start < recordHeaderSize {
			skip = recordHeaderSize - start
		}
		a.crc = crc32c.Update(a.crc, b[skip:])
	}
	if a.parsed && a.keepMD && a.got > a.mdStart {
		skip := uint32(0)
		if start < a.mdStart {
			skip = a.mdStart - start
		}
		a.md = append(a.md, b[skip:]...)
	}
}

// within returns ErrLimit when reading up to (not including) upto would
// reach the limit.
func (r *Reader) within(recLSN, upto LSN) error {
	if r.limit != 0 && upto > r.limit {
		return r.errf(ErrLimit, recLSN, "the record needs WAL up to %s, the limit is %s", upto, r.limit)
	}
	return nil
}

// inRecord explains an error met while reading the pages that continue the
// record at recLSN: an end of the WAL there is a record cut short.
func (r *Reader) inRecord(err error, recLSN LSN) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	e2 := *e
	switch e2.Kind {
	case ErrEndOfWAL:
		e2.Kind = ErrInvalid
	case ErrLimit:
		e2.LSN = recLSN
	}
	e2.Detail = fmt.Sprintf("the record at %s is cut short: %s", recLSN, e.Detail)
	return &e2
}

// page returns the checked header of the page at addr, opening its segment
// (and checking the segment's first page) when needed. boundary says that a
// record would start on this page, where a page that was never written, or
// is left from a recycled segment, means the end of the WAL.
func (r *Reader) page(addr LSN, boundary bool) (pageHeader, error) {
	if r.pageOK && r.pageAt == addr {
		return r.pageHdr, nil
	}
	hsize := LSN(shortHeaderSize)
	if uint64(addr)%uint64(r.segSize) == 0 {
		hsize = longHeaderSize
	}
	if err := r.within(addr, addr+hsize); err != nil {
		return pageHeader{}, err
	}
	segNo := uint64(addr) / uint64(r.segSize)
	if !r.seg.open || r.seg.no != segNo {
		if err := r.openSegment(segNo, boundary); err != nil {
			return pageHeader{}, err
		}
	}
	p, err := r.pageBytes(addr)
	if err != nil {
		return pageHeader{}, err
	}
	h, err := r.checkPage(addr, p, boundary)
	if err != nil {
		return pageHeader{}, err
	}
	r.pageAt, r.pageHdr, r.pageOK = addr, h, true
	return h, nil
}

// openSegment opens segment segNo and checks its first page's long header,
// as PostgreSQL does whenever it enters a segment.
func (r *Reader) openSegment(segNo uint64, boundary bool) error {
	if err := r.closeSegment(); err != nil {
		return err
	}
	name := SegmentFileName(r.tli, segNo, r.segSize)
	first := LSN(segNo * uint64(r.segSize))
	ra, err := r.src.OpenSegment(r.tli, segNo, r.segSize)
	if err != nil {
		kind := ErrRead
		if errors.Is(err, fs.ErrNotExist) {
			kind = ErrMissingSegment
		}
		return &Error{Kind: kind, LSN: first, Segment: name, Detail: "opening the segment", Err: err}
	}
	r.seg = segment{open: true, no: segNo, name: name, ra: ra}
	p, err := r.pageBytes(first)
	if err == nil {
		_, err = r.checkPage(first, p, boundary)
	}
	if err != nil {
		r.closeSegment()
		return err
	}
	return nil
}

func (r *Reader) closeSegment() error {
	r.dropCache()
	if !r.seg.open {
		return nil
	}
	var err error
	if c, ok := r.seg.ra.(io.Closer); ok {
		err = c.Close()
	}
	r.seg = segment{}
	return err
}

// dropCache forgets cached bytes and checked page headers, so that they are
// read again.
func (r *Reader) dropCache() {
	r.chunkN, r.chunkOff = 0, 0
	r.pageOK = false
}

// pageBytes returns the page at addr of the open segment, reading a chunk
// when it is not cached.
func (r *Reader) pageBytes(addr LSN) ([]byte, error) {
	off := uint32(uint64(addr) % uint64(r.segSize))
	if r.chunkN != 0 && off >= r.chunkOff && off+PageSize <= r.chunkOff+r.chunkN {
		return r.chunk[off-r.chunkOff : off-r.chunkOff+PageSize], nil
	}
	switch {
	case r.chunkN != 0 && off == r.chunkOff+r.chunkN:
		r.chunkNext = min(2*r.chunkNext, maxChunk) // sequential: read more at once
	case r.chunkNext == 0:
		r.chunkNext = minChunk
	}
	want := min(r.chunkNext, r.segSize-off)
	if uint32(len(r.chunk)) < want {
		r.chunk = make([]byte, r.chunkNext)
	}
	n, err := r.seg.ra.ReadAt(r.chunk[:want], int64(off))
	if n < PageSize {
		r.chunkN = 0
		if err == nil || errors.Is(err, io.EOF) {
			return nil, &Error{Kind: ErrTruncatedSegment, LSN: addr, Segment: r.seg.name,
				Detail: fmt.Sprintf("the segment file ends at byte %d, before the page at byte %d", int64(off)+int64(n), off)}
		}
		return nil, &Error{Kind: ErrRead, LSN: addr, Segment: r.seg.name, Detail: "reading a page", Err: err}
	}
	r.chunkOff, r.chunkN = off, uint32(n)&^(PageSize-1)
	return r.chunk[:PageSize], nil
}

// checkPage checks the header of the page at addr (xlogreader.c's
// XLogReaderValidatePageHeader, stricter).
func (r *Reader) checkPage(addr LSN, p []byte, boundary bool) (pageHeader, error) {
	h := parsePageHeader(p)
	fail := func(kind error, format string, args ...any) (pageHeader, error) {
		return pageHeader{}, &Error{Kind: kind, LSN: addr, Segment: r.seg.name, Detail: fmt.Sprintf(format, args...)}
	}
	stale := ErrInvalid
	if boundary {
		stale = ErrEndOfWAL
	}
	if h.magic == 0 && h.pageAddr == 0 {
		return fail(stale, "the page was never written (zero header)")
	}
	if h.magic != r.magic {
		v, ok := VersionOfMagic(h.magic)
		switch {
		case !ok:
			return fail(ErrUnsupportedMagic, "page magic 0x%04X is not that of PostgreSQL 13 to 18", h.magic)
		case r.magic != 0:
			return fail(ErrUnsupportedMagic, "page magic 0x%04X is PostgreSQL %d's; the WAL read is PostgreSQL %d's", h.magic, v, r.version)
		}
		r.version, r.magic = v, h.magic
	}
	if h.pageAddr != addr {
		return fail(stale, "the page says it is at %s: left from an older use of the file (recycled)", h.pageAddr)
	}
	if h.info&^xlpAllFlags != 0 {
		return fail(ErrInvalid, "unknown page flags 0x%04X", h.info)
	}
	if h.info&xlpFirstIsContRecord != 0 && h.info&xlpFirstIsOverwriteContRecord != 0 {
		return fail(ErrInvalid, "page flags 0x%04X say both continuation and overwritten continuation", h.info)
	}
	if uint64(addr)%uint64(r.segSize) == 0 {
		switch {
		case h.info&xlpLongHeader == 0:
			return fail(ErrInvalid, "the first page of the segment has no long header (flags 0x%04X)", h.info)
		case h.segSize != r.segSize:
			return fail(ErrInvalid, "the long page header says segments are %d bytes, not %d", h.segSize, r.segSize)
		case h.blcksz != PageSize:
			return fail(ErrInvalid, "the long page header says pages are %d bytes; only %d is read", h.blcksz, PageSize)
		case r.sysID != 0 && h.sysID != r.sysID:
			return fail(ErrInvalid, "database system identifier %d, expected %d: WAL of another cluster", h.sysID, r.sysID)
		}
		r.sysID = h.sysID
	} else if h.info&xlpLongHeader != 0 {
		return fail(ErrInvalid, "a long page header inside a segment")
	}
	if h.tli != r.tli {
		return fail(ErrTimeline, "the page is of timeline %d, not %d", h.tli, r.tli)
	}
	if h.info&xlpFirstIsContRecord == 0 && h.remLen != 0 {
		return fail(ErrInvalid, "xlp_rem_len %d without the continuation flag", h.remLen)
	}
	if h.info&xlpFirstIsContRecord != 0 && h.remLen == 0 {
		return fail(ErrInvalid, "continuation flag with xlp_rem_len 0")
	}
	return h, nil
}

// errf returns an Error in the open segment.
func (r *Reader) errf(kind error, lsn LSN, format string, args ...any) error {
	e := errorf(kind, lsn, format, args...)
	if r.seg.open && uint64(lsn)/uint64(r.segSize) == r.seg.no {
		e.Segment = r.seg.name
	} else {
		e.Segment = SegmentFileName(r.tli, uint64(lsn)/uint64(r.segSize), r.segSize)
	}
	return e
}
