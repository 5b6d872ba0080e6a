package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// Main data builders for the records the summary treats specially.

func u32s(vs ...uint32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

func relBytes(r RelFileLocator) []byte { return u32s(r.Tablespace, r.Database, r.RelNumber) }

// xactBody is xl_xact_commit/abort: xact_time, xinfo, dbinfo, subxacts,
// relations, then (unparsed) invalidation messages.
func xactBody(rels []RelFileLocator, subxacts []uint32) []byte {
	md := make([]byte, 8)
	xinfo := uint32(xinfoHasDBInfo | 1<<3) // and XACT_XINFO_HAS_INVALS, after the relations
	if len(subxacts) > 0 {
		xinfo |= xinfoHasSubxacts
	}
	if len(rels) > 0 {
		xinfo |= xinfoHasRels
	}
	md = append(md, u32s(xinfo, 5, 1663)...)
	if len(subxacts) > 0 {
		md = append(md, u32s(uint32(len(subxacts)))...)
		md = append(md, u32s(subxacts...)...)
	}
	if len(rels) > 0 {
		md = append(md, u32s(uint32(len(rels)))...)
		for _, r := range rels {
			md = append(md, relBytes(r)...)
		}
	}
	md = append(md, u32s(1)...) // one invalidation message
	md = append(md, make([]byte, 16)...)
	return body(nil, nil, 0, md)
}

func parameterChangeBody(walLevel uint32, hints bool) []byte {
	md := u32s(100, 8, 10, 0, 64, walLevel, 0)
	if hints {
		md[24] = 1
	}
	return body(nil, nil, 0, md)
}

// summaryWAL writes what every summary test starts with: an online
// checkpoint whose redo LSN is the start, and some changes.
func summaryWAL(version int) (*synth, LSN) {
	start := LSN(2*synthSegSize + 0x28)
	s := newSynth(version, start)
	s.record(RmgrStandby, 0x20, 0, body(nil, nil, 0, u32s(1, 2, 3)))
	s.record(RmgrXLOG, xlogCheckpointOnline, 0, checkpointBody(start, 1, 1, 1))
	s.record(RmgrHeap, 0, 10, heapRecord(relA, 1, 2, 3))
	return s, start
}

func shutdown(s *synth, version int) LSN {
	return s.record(RmgrXLOG, xlogCheckpointShutdown, 0, checkpointBody(s.pos, 1, 1, 1))
}

func summarize(t *testing.T, s *synth, start LSN, opts SummaryOptions) *Summary {
	t.Helper()
	sum, err := Summarize(context.Background(), openSynth(t, s, start), opts)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestSummaryCollectsWhatWALChanged: block references per relation fork,
// and everything block references do not cover, each in its own list, in
// the record layouts of the version.
func TestSummaryCollectsWhatWALChanged(t *testing.T) {
	for _, version := range Versions {
		t.Run(fmt.Sprint(version), func(t *testing.T) {
			s, start := summaryWAL(version)
			s.record(RmgrHeap2, 0x10, 11, body([]blk{{id: 0, rel: relB, fork: VMFork, block: 0}, {id: 1, rel: relB, block: 700000, sameRel: true}}, nil, 0, nil))
			created := RelFileLocator{1663, 5, 30000}
			s.record(RmgrSmgr, smgrCreate|xlrSpecialRelUpdate, 12, body(nil, nil, 0, append(relBytes(created), u32s(0)...)))
			s.record(RmgrSmgr, smgrCreate|xlrSpecialRelUpdate, 12, body(nil, nil, 0, append(relBytes(created), u32s(3)...)))
			s.record(RmgrSmgr, smgrTruncate|xlrSpecialRelUpdate, 0, body(nil, nil, 0, append(append(u32s(17), relBytes(relA)...), u32s(smgrTruncateHeap|smgrTruncateFSM)...)))
			d1, d2, d3 := RelFileLocator{1663, 5, 40001}, RelFileLocator{1663, 5, 40002}, RelFileLocator{1663, 5, 40003}
			s.record(RmgrXact, xactCommit|xactHasInfo|xlrSpecialRelUpdate, 13, xactBody([]RelFileLocator{d1, d2}, []uint32{14, 15}))
			s.record(RmgrXact, xactAbort|xactHasInfo|xlrSpecialRelUpdate, 16, xactBody([]RelFileLocator{d3}, nil))
			s.record(RmgrXact, xactCommit, 17, body(nil, nil, 0, make([]byte, 8))) // no xinfo: nothing dropped
			s.record(RmgrXact, xactCommitPrepared|xactHasInfo, 18, xactBody(nil, nil))
			createInfo, dropInfo := uint8(dbaseCreate14), uint8(dbaseDrop14)
			if version >= 15 {
				createInfo, dropInfo = dbaseCreateFileCopy15, dbaseDrop15
				s.record(RmgrDatabase, dbaseCreateWALLog15, 19, body(nil, nil, 0, u32s(50001, 1663)))
			}
			s.record(RmgrDatabase, createInfo|xlrSpecialRelUpdate, 19, body(nil, nil, 0, u32s(50000, 1663, 1, 1663)))
			s.record(RmgrDatabase, dropInfo|xlrSpecialRelUpdate, 20, body(nil, nil, 0, u32s(50002, 2, 1663, 60000)))
			s.record(RmgrTablespace, tblspcCreate, 21, body(nil, nil, 0, append(u32s(60000), []byte("/srv/ts\x00")...)))
			s.record(RmgrTablespace, tblspcDrop, 22, body(nil, nil, 0, u32s(60000)))
			s.record(RmgrXLOG, xlogParameterChange, 0, parameterChangeBody(walLevelLogical, true))
			s.record(RmgrHeap, 0, 23, heapRecord(relA, 2, 900))
			end := shutdown(s, version)

			sum := summarize(t, s, start, SummaryOptions{End: end, DataChecksums: true})
			if sum.Fallback != nil {
				t.Fatalf("fallback: %v", sum.Fallback)
			}
			if sum.Checkpoint == nil || sum.Checkpoint.LSN != end || !sum.Checkpoint.Shutdown || !sum.StartIsRedo || sum.FirstLSN != start || len(sum.Checkpoints) != 2 {
				t.Errorf("checkpoints: %+v, %+v, start is redo %v, first %s", sum.Checkpoint, sum.Checkpoints, sum.StartIsRedo, sum.FirstLSN)
			}
			if version >= 17 && sum.Checkpoint.WALLevel != walLevelReplica || version < 17 && sum.Checkpoint.WALLevel != -1 {
				t.Errorf("wal_level of the checkpoint: %d", sum.Checkpoint.WALLevel)
			}
			wantBlocks := map[RelFork][]uint32{
				{relA, MainFork}: {1, 2, 3, 900},
				{relB, VMFork}:   {0},
				{relB, MainFork}: {700000},
			}
			got := map[RelFork][]uint32{}
			for rf, set := range sum.Blocks {
				got[rf] = set.Blocks()
			}
			if !reflect.DeepEqual(got, wantBlocks) {
				t.Errorf("blocks %v, want %v", got, wantBlocks)
			}
			if len(sum.Created) != 2 || sum.Created[0].RelFork != (RelFork{created, MainFork}) || sum.Created[1].Fork != InitFork {
				t.Errorf("created %+v", sum.Created)
			}
			if len(sum.Truncated) != 1 || sum.Truncated[0].Rel != relA || sum.Truncated[0].Blocks != 17 || !slices.Equal(sum.Truncated[0].Forks, []ForkNumber{MainFork, FSMFork}) {
				t.Errorf("truncated %+v", sum.Truncated)
			}
			var dropped []RelFileLocator
			for _, d := range sum.Dropped {
				dropped = append(dropped, d.Rel)
			}
			if !slices.Equal(dropped, []RelFileLocator{d1, d2, d3}) {
				t.Errorf("dropped %v", dropped)
			}
			var dbs []string
			for _, d := range sum.Databases {
				dbs = append(dbs, fmt.Sprintf("%s %d/%d", d.Kind, d.Tablespace, d.Database))
			}
			wantDBs := []string{"create_file_copy 1663/50000", "drop 1663/50002", "drop 60000/50002"}
			if version >= 15 {
				wantDBs = append([]string{"create_wal_log 1663/50001"}, wantDBs...)
			}
			if !slices.Equal(dbs, wantDBs) || sum.Databases[len(sum.Databases)-3].SrcDatabase != 1 {
				t.Errorf("databases %v, want %v", dbs, wantDBs)
			}
			if len(sum.Tablespaces) != 2 || sum.Tablespaces[0].Path != "/srv/ts" || sum.Tablespaces[1].Kind != "drop" {
				t.Errorf("tablespaces %+v", sum.Tablespaces)
			}
		})
	}
}

// TestSummaryFallbacks: each premise that fails makes a fallback with its
// own reason, never a summary that looks usable.
func TestSummaryFallbacks(t *testing.T) {
	m12 := uint16(0xD101) // PostgreSQL 12's magic
	for _, tc := range []struct {
		name    string
		version int
		opts    SummaryOptions
		write   func(s *synth) // after summaryWAL; a shutdown checkpoint follows unless noEnd
		noEnd   bool
		corrupt func(s *synth, end LSN)
		want    Reason
	}{
		{name: "parameter change to wal_level=minimal", version: 16, write: func(s *synth) {
			s.record(RmgrXLOG, xlogParameterChange, 0, parameterChangeBody(walLevelMinimal, true))
		}, want: ReasonWALLevelMinimal},
		{name: "wal_log_hints off without checksums", version: 16, write: func(s *synth) {
			s.record(RmgrXLOG, xlogParameterChange, 0, parameterChangeBody(walLevelReplica, false))
		}, want: ReasonHintBits},
		{name: "checkpoint with wal_level=minimal (17)", version: 17, write: func(s *synth) {
			s.record(RmgrXLOG, xlogCheckpointOnline, 0, checkpointBody(s.pos, 1, 1, walLevelMinimal))
		}, want: ReasonWALLevelMinimal},
		{name: "redo record with wal_level=minimal (18)", version: 18, write: func(s *synth) {
			s.record(RmgrXLOG, xlogCheckpointRedo, 0, body(nil, nil, 0, u32s(walLevelMinimal)))
		}, want: ReasonWALLevelMinimal},
		{name: "redo record before 17", version: 16, write: func(s *synth) {
			s.record(RmgrXLOG, xlogCheckpointRedo, 0, body(nil, nil, 0, u32s(walLevelReplica)))
		}, want: ReasonUnknownRecord},
		{name: "checkpoint of another timeline", version: 15, write: func(s *synth) {
			s.record(RmgrXLOG, xlogCheckpointOnline, 0, checkpointBody(s.pos, 2, 1, 1))
		}, want: ReasonTimeline},
		{name: "end of recovery", version: 15, write: func(s *synth) {
			s.record(RmgrXLOG, xlogEndOfRecovery, 0, body(nil, nil, 0, make([]byte, 24)))
		}, want: ReasonTimeline},
		{name: "page of another timeline", version: 15, corrupt: func(s *synth, end LSN) {
			s.bytesAt(2*synthSegSize + PageSize)[4] = 2
		}, write: func(s *synth) {
			s.record(RmgrHeap, 0, 1, body(nil, nil, 0, make([]byte, PageSize)))
		}, want: ReasonTimeline},
		{name: "custom resource manager", version: 15, write: func(s *synth) {
			s.record(130, 0, 1, heapRecord(relA, 5))
		}, want: ReasonUnknownRmgr},
		{name: "resource manager unknown to 14", version: 14, write: func(s *synth) {
			s.record(130, 0, 1, heapRecord(relA, 5))
		}, want: ReasonUnknownRmgr},
		{name: "special update on a heap record", version: 16, write: func(s *synth) {
			s.record(RmgrHeap, 0x30|xlrSpecialRelUpdate, 1, heapRecord(relA, 5))
		}, want: ReasonSpecialRelUpdate},
		{name: "special update on a prepare record", version: 16, write: func(s *synth) {
			s.record(RmgrXact, xactPrepare|xlrSpecialRelUpdate, 1, body(nil, nil, 0, make([]byte, 40)))
		}, want: ReasonSpecialRelUpdate},
		{name: "unknown storage record", version: 16, write: func(s *synth) {
			s.record(RmgrSmgr, 0x30, 1, body(nil, nil, 0, make([]byte, 16)))
		}, want: ReasonUnknownRecord},
		{name: "unknown XLOG record", version: 16, write: func(s *synth) {
			s.record(RmgrXLOG, 0xF0, 1, nil)
		}, want: ReasonUnknownRecord},
		{name: "transaction invalidations before 14", version: 13, write: func(s *synth) {
			s.record(RmgrXact, xactInvalidations, 1, body(nil, nil, 0, make([]byte, 20)))
		}, want: ReasonUnknownRecord},
		{name: "WAL_LOG database creation before 15", version: 14, write: func(s *synth) {
			s.record(RmgrDatabase, 0x20, 1, body(nil, nil, 0, u32s(5, 1663)))
		}, want: ReasonUnknownRecord},
		{name: "checkpoint of an unexpected length", version: 18, write: func(s *synth) {
			s.record(RmgrXLOG, xlogCheckpointOnline, 0, body(nil, nil, 0, make([]byte, 96)))
		}, want: ReasonUnknownRecord},
		{name: "commit whose relation count runs past its data", version: 15, write: func(s *synth) {
			md := append(make([]byte, 8), u32s(xinfoHasRels, 1000)...)
			s.record(RmgrXact, xactCommit|xactHasInfo, 1, body(nil, nil, 0, md))
		}, want: ReasonUnknownRecord},
		{name: "drop database without tablespaces", version: 15, write: func(s *synth) {
			s.record(RmgrDatabase, dbaseDrop15, 1, body(nil, nil, 0, u32s(5, 0)))
		}, want: ReasonUnknownRecord},
		{name: "bad CRC", version: 15, corrupt: func(s *synth, end LSN) {
			s.bytesAt(end - 40)[0] ^= 1
		}, want: ReasonBadCRC},
		{name: "broken xl_prev", version: 15, write: func(s *synth) {
			s.put(makeRecord(RmgrHeap, 0, 1, s.prev-8, heapRecord(relA, 7)))
		}, want: ReasonBrokenChain},
		{name: "missing segment", version: 15, write: func(s *synth) {
			s.record(RmgrHeap, 0, 1, body(nil, nil, 0, make([]byte, synthSegSize)))
		}, corrupt: func(s *synth, end LSN) { delete(s.segs, 3) }, want: ReasonMissingSegment},
		{name: "unsupported page magic", version: 15, write: func(s *synth) {
			s.record(RmgrHeap, 0, 1, body(nil, nil, 0, make([]byte, PageSize)))
		}, corrupt: func(s *synth, end LSN) {
			binary.LittleEndian.PutUint16(s.bytesAt(2*synthSegSize+PageSize), m12)
		}, want: ReasonUnsupportedMagic},
		{name: "WAL ends before a shutdown checkpoint", version: 15, noEnd: true, want: ReasonIncomplete},
		{name: "WAL after the shutdown checkpoint", version: 15, corrupt: func(s *synth, end LSN) {
			s.record(RmgrHeap, 0, 1, heapRecord(relA, 8))
		}, want: ReasonWALAfterEnd},
		{name: "end LSN inside a record", version: 15, opts: SummaryOptions{End: 2*synthSegSize + 0x30}, want: ReasonEndNotFound},
		{name: "end LSN at an online checkpoint", version: 15, opts: SummaryOptions{End: 2*synthSegSize + 0x50}, want: ReasonEndNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, start := summaryWAL(tc.version)
			if tc.write != nil {
				tc.write(s)
			}
			var end LSN
			if !tc.noEnd {
				end = shutdown(s, tc.version)
			}
			if tc.corrupt != nil {
				tc.corrupt(s, end)
			}
			sum := summarize(t, s, start, tc.opts)
			if sum.Fallback == nil || sum.Fallback.Reason != tc.want {
				t.Fatalf("fallback %v, want %s", sum.Fallback, tc.want)
			}
			t.Logf("%v", sum.Fallback)
		})
	}
	// wal_log_hints off is fine with data checksums.
	s, start := summaryWAL(16)
	s.record(RmgrXLOG, xlogParameterChange, 0, parameterChangeBody(walLevelReplica, false))
	shutdown(s, 16)
	if sum := summarize(t, s, start, SummaryOptions{DataChecksums: true}); sum.Fallback != nil {
		t.Errorf("wal_log_hints off with checksums: %v", sum.Fallback)
	}
}

// TestSummaryRecordTooLarge: a commit record whose main data the reader did
// not keep cannot be inspected: fallback.
func TestSummaryRecordTooLarge(t *testing.T) {
	s, start := summaryWAL(15)
	many := make([]RelFileLocator, 200)
	for i := range many {
		many[i] = RelFileLocator{1663, 5, uint32(40000 + i)}
	}
	s.record(RmgrXact, xactCommit|xactHasInfo, 1, xactBody(many, nil))
	shutdown(s, 15)
	r, _ := NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize, MainDataLimit: 1000})
	sum, err := Summarize(context.Background(), r, SummaryOptions{})
	if err != nil || sum.Fallback == nil || sum.Fallback.Reason != ReasonRecordTooLarge {
		t.Fatalf("%v, %v", sum.Fallback, err)
	}
}

// TestSummarizerFeedsInSteps: with the reader's limit raised step by step
// (a server's flush LSN while it runs), Feed stops at each limit, and the
// final summary equals a summary made in one go; until then the summary
// says it is incomplete.
func TestSummarizerFeedsInSteps(t *testing.T) {
	s, start := summaryWAL(17)
	for i := 0; i < 200; i++ {
		s.record(RmgrHeap, 0, uint32(i), heapRecord(RelFileLocator{1663, 5, uint32(20000 + i%7)}, uint32(i), uint32(i*3)))
		if i%50 == 0 {
			s.record(RmgrSmgr, smgrCreate, 1, body(nil, nil, 0, append(relBytes(RelFileLocator{1663, 5, uint32(30000 + i)}), u32s(0)...)))
		}
	}
	end := shutdown(s, 17)
	whole := summarize(t, s, start, SummaryOptions{End: end})
	if whole.Fallback != nil {
		t.Fatal(whole.Fallback)
	}

	r, _ := NewReader(ReaderOptions{Source: s, Start: start, TLI: 1, SegmentSize: synthSegSize, Limit: start + 100})
	sm := NewSummarizer(SummaryOptions{End: end})
	steps := 0
	for limit := start + 100; ; limit += 777 {
		err := sm.Feed(context.Background(), r)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLimit) {
			t.Fatal(err)
		}
		if sm.Done() || sm.Summary().Fallback == nil || sm.Summary().Fallback.Reason != ReasonIncomplete {
			t.Fatalf("a partial summary does not say it is incomplete: %v", sm.Summary().Fallback)
		}
		steps++
		if limit > end+PageSize {
			r.SetLimit(0) // the server stopped: read to the end
		} else {
			r.SetLimit(limit)
		}
	}
	got := sm.Summary()
	if steps < 10 || !sm.Done() || got.Fallback != nil {
		t.Fatalf("%d steps, done %v, fallback %v", steps, sm.Done(), got.Fallback)
	}
	if !reflect.DeepEqual(got, whole) {
		t.Errorf("the summary fed in %d steps differs from the one made in one go", steps)
	}
}

func TestBlockSet(t *testing.T) {
	var s BlockSet
	in := []uint32{5, 0, 63, 64, 65, 131071, 131072, 0xFFFFFFFE, 5, 64}
	for _, b := range in {
		s.Add(b)
	}
	want := []uint32{0, 5, 63, 64, 65, 131071, 131072, 0xFFFFFFFE}
	if got := s.Blocks(); !slices.Equal(got, want) || s.Len() != len(want) {
		t.Errorf("Blocks = %v, Len = %d; want %v", got, s.Len(), want)
	}
	if !s.Has(131072) || s.Has(1) || s.Has(131073) {
		t.Error("Has")
	}
	_ = bytes.MinRead
}

// TestSummaryFlaggedCommitWithoutRelations: XLR_SPECIAL_REL_UPDATE on a
// commit that lists no relation is not what PostgreSQL writes: fallback.
func TestSummaryFlaggedCommitWithoutRelations(t *testing.T) {
	s, start := summaryWAL(16)
	s.record(RmgrXact, xactCommit|xactHasInfo|xlrSpecialRelUpdate, 1, xactBody(nil, nil))
	shutdown(s, 16)
	if sum := summarize(t, s, start, SummaryOptions{}); sum.Fallback == nil || sum.Fallback.Reason != ReasonUnknownRecord {
		t.Fatalf("fallback %v", sum.Fallback)
	}
}
