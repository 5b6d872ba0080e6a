package wal

import (
	"context"
	"testing"
)

// BenchmarkSummarize summarizes 64 MiB of synthetic WAL shaped like a
// pgbench load: small heap and index records with one or two block
// references, a full-page image every 20 records, a commit every 5.
func BenchmarkSummarize(b *testing.B) {
	start := LSN(synthSegSize + 0x28)
	s := newSynth(16, start)
	s.record(RmgrXLOG, xlogCheckpointOnline, 0, checkpointBody(start, 1, 1, 1))
	for i := 0; s.pos < start+64<<20; i++ {
		rel := RelFileLocator{1663, 5, uint32(16384 + i%4)}
		switch {
		case i%20 == 0:
			s.record(RmgrHeap, 0, uint32(i), body([]blk{imageBlock(0, rel, uint32(i*7919%100000), 200, 3000, 16)}, nil, 0, make([]byte, 20)))
		case i%5 == 0:
			s.record(RmgrXact, xactCommit, uint32(i), body(nil, nil, 0, make([]byte, 8)))
		default:
			s.record(RmgrHeap, 0x20, uint32(i), body([]blk{{id: 0, rel: rel, block: uint32(i * 7919 % 100000), data: make([]byte, 60)},
				{id: 1, rel: rel, block: uint32(i * 104729 % 100000), sameRel: true, data: make([]byte, 40)}}, nil, 0, make([]byte, 14)))
		}
	}
	s.record(RmgrXLOG, xlogCheckpointShutdown, 0, checkpointBody(s.pos, 1, 1, 1))
	size := int64(s.pos - start)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		r, _ := NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize})
		sum, err := Summarize(context.Background(), r, SummaryOptions{})
		if err != nil || sum.Fallback != nil {
			b.Fatal(err, sum.Fallback)
		}
	}
}
