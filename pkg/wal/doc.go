// Package wal reads the write-ahead log (WAL) of PostgreSQL 13 to 18 from its
// segment files, and summarizes which relation blocks a range of WAL changed:
// the map a WAL-guided cold pass reads instead of the whole cluster.
//
// Most callers need two functions:
//
//   - [NewReader] opens the WAL at a record, such as a checkpoint's redo LSN,
//     from a [SegmentSource]: a pg_wal directory ([Dir]), or a [Keeper] that
//     holds every segment open from that LSN on so that the shutdown
//     checkpoint cannot take one away by removing or recycling it.
//     [Reader.Next] returns one decoded record at a time.
//   - [Summarize] reads from there to the shutdown checkpoint and returns a
//     [Summary]: per relation fork, the blocks that records referenced; the
//     relations, databases and tablespaces that block references do not cover
//     (created, truncated, dropped, copied); and a [Fallback] whenever the map
//     cannot be trusted, in which case the caller must read everything.
//     [NewSummarizer] and [Summarizer.Feed] do the same in steps, while the
//     server runs (with the reader's limit at its flush LSN) and after it
//     stopped.
//
// The reader checks every page header (magic, flags, timeline, address),
// every record's CRC-32C and every xl_prev link, and decodes every block
// reference with the checks of PostgreSQL's own DecodeXLogRecord and more.
// Anything inconsistent is an error, never a guess: a wrong parse that raises
// no error is the one unacceptable outcome, while an error only makes the
// caller read more. docs/wal.md specifies the format byte by byte, the
// differences between major versions, and which records the summary treats
// specially and why.
package wal
