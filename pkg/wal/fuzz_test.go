package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"testing"
)

// sparseSource serves data as the start of segment 1 of a 1 MiB segment
// size (zeros after it); other segments do not exist.
type sparseSource []byte

func (s sparseSource) OpenSegment(tli uint32, segNo uint64, segSize uint32) (io.ReaderAt, error) {
	if segNo != 1 || tli != 1 {
		return nil, fs.ErrNotExist
	}
	return s, nil
}

func (s sparseSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= synthSegSize {
		return 0, io.EOF
	}
	n := len(p)
	if off+int64(n) > synthSegSize {
		n = int(synthSegSize - off)
	}
	clear(p[:n])
	if off < int64(len(s)) {
		copy(p[:n], s[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fuzzSeeds returns segment 1 of synthetic WAL of several versions and
// shapes, trimmed to what was written.
func fuzzSeeds() [][]byte {
	var out [][]byte
	for _, v := range Versions {
		start := LSN(synthSegSize + longHeaderSize)
		s := newSynth(v, start)
		s.prev = 0
		s.record(RmgrXLOG, xlogCheckpointOnline, 0, checkpointBody(start, 1, 1, 1))
		s.record(RmgrHeap, 0, 1, heapRecord(relA, 1, 2))
		s.record(RmgrHeap, 0, 2, body([]blk{imageBlock(0, relB, 3, 100, 3000, v)}, nil, 0, []byte("main")))
		s.record(RmgrSmgr, smgrCreate, 3, body(nil, nil, 0, append(relBytes(relB), u32s(0)...)))
		s.record(RmgrXact, xactCommit|xactHasInfo, 3, xactBody([]RelFileLocator{relA}, []uint32{9}))
		s.record(RmgrLogicalMessage, 0, 4, body(nil, nil, 0, bytes.Repeat([]byte{'m'}, 9000)))
		s.record(RmgrXLOG, xlogCheckpointShutdown, 0, checkpointBody(s.pos, 1, 1, 1))
		out = append(out, bytes.Clone(s.segs[1][:maxAlign(uint64(s.pos))%synthSegSize]))
	}
	return out
}

// FuzzReader feeds arbitrary bytes as a WAL segment to the reader and the
// summarizer: they must never panic, never loop, and only ever return
// records that advance.
func FuzzReader(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > synthSegSize {
			return
		}
		src := sparseSource(data)
		start := LSN(synthSegSize + longHeaderSize)
		r, err := NewReader(ReaderOptions{Source: src, Start: start, TLI: 1, SegmentSize: synthSegSize})
		if err != nil {
			t.Fatal(err)
		}
		last := LSN(0)
		for n := 0; ; n++ {
			rec, err := r.Next()
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v is not a *wal.Error", err)
				}
				break
			}
			if rec.LSN <= last || rec.End <= rec.LSN || rec.End-rec.LSN < LSN(rec.TotalLen) {
				t.Fatalf("record at %s..%s after %s", rec.LSN, rec.End, last)
			}
			if n > len(data)/recordHeaderSize {
				t.Fatalf("%d records from %d bytes", n, len(data))
			}
			last = rec.LSN
		}
		r, _ = NewReader(ReaderOptions{Source: src, Start: start, TLI: 1, SegmentSize: synthSegSize})
		sum, err := Summarize(context.Background(), r, SummaryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Fallback == nil && (sum.Checkpoint == nil || !sum.Checkpoint.Shutdown) {
			t.Fatalf("a usable summary without a shutdown checkpoint: %+v", sum)
		}
	})
}

// FuzzRecords writes arbitrary record contents as well-formed WAL (correct
// page headers, CRCs and xl_prev links), so that the fuzzer reaches the
// record decoder and the summary's parsers: the reader must return exactly
// the records written, or an error at one of them, and the summarizer must
// not panic.
func FuzzRecords(f *testing.F) {
	f.Add(byte(15), []byte{RmgrHeap, 0, 0, 0})
	for _, v := range Versions {
		var in []byte
		add := func(rmid, info uint8, b []byte) {
			in = append(in, rmid, info)
			in = binary.LittleEndian.AppendUint16(in, uint16(len(b)))
			in = append(in, b...)
		}
		add(RmgrHeap, 0, heapRecord(relA, 1, 2))
		add(RmgrHeap, 0, body([]blk{imageBlock(0, relB, 3, 100, 3000, v)}, nil, 0, []byte("main")))
		add(RmgrXact, xactCommit|xactHasInfo, xactBody([]RelFileLocator{relA}, []uint32{9}))
		add(RmgrSmgr, smgrTruncate, body(nil, nil, 0, append(append(u32s(17), relBytes(relA)...), u32s(1)...)))
		add(RmgrDatabase, dbaseDrop15, body(nil, nil, 0, u32s(50002, 2, 1663, 60000)))
		add(RmgrXLOG, xlogCheckpointShutdown, checkpointBody(synthSegSize+longHeaderSize, 1, 1, 1))
		f.Add(byte(v), in)
	}
	f.Fuzz(func(t *testing.T, vb byte, in []byte) {
		version := Versions[int(vb)%len(Versions)]
		start := LSN(synthSegSize + longHeaderSize)
		s := newSynth(version, start)
		var lsns []LSN
		for len(in) >= 4 && len(lsns) < 64 {
			rmid, info, n := in[0], in[1], int(binary.LittleEndian.Uint16(in[2:]))
			in = in[4:]
			n = min(n, len(in))
			if rmid == RmgrXLOG && info&0xF0 == xlogSwitch {
				info = xlogNoop | info&0x0F // a switch moves the reader to a segment this harness does not write
			}
			lsns = append(lsns, s.record(rmid, info, 1, in[:n]))
			in = in[n:]
		}
		r := openSynth(t, s, start)
		for i := 0; ; i++ {
			rec, err := r.Next()
			if err != nil {
				if i < len(lsns) && !errors.Is(err, ErrEndOfWAL) {
					var e *Error
					if !errors.As(err, &e) || e.LSN != lsns[i] {
						t.Fatalf("error %v, not at record %d (%s)", err, i, lsns[i])
					}
				}
				break
			}
			if i >= len(lsns) || rec.LSN != lsns[i] {
				t.Fatalf("record %d at %s, written at %v", i, rec.LSN, lsns)
			}
		}
		sum, err := Summarize(context.Background(), openSynth(t, s, start), SummaryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = sum
	})
}
