package ledger

import (
	"context"
	"io/fs"
	"sync"
	"syscall"
	"time"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// A record vouches for the copy's file by the file's stat (size, mtime,
// ctime, inode), as the copy was after pgtwopass wrote it. That holds only
// if every later write moves the stat; but a file system keeps timestamps
// at some granularity (a second on ext4 made with 128-byte inodes, on ext3
// and on some network file systems), and the kernel stamps ctime from a
// coarse clock: a write in the same granule as the one the record saw
// leaves every field as it was. A pass killed right after it rewrote a
// file, in the same second as the pass that recorded it, would leave the
// copy's new bytes under the old record, and a cold pass that trusted it
// would seal a wrong copy.
//
// The safe horizon closes that gap, as git's racy-entry rule does with the
// index's mtime. The mtime M of the manifest's last commit (of the journal,
// when one applies: manifest.Index.Mtime) is stamped by the same kernel
// clock when it is committed, and every later write of the copy (a later
// pass, or anyone else) happens after that commit, so its ctime is at least
// M floored to its file system's granularity G. A record is trusted by its
// stat only when its ctime is earlier than that floor: then no later write
// can share its granule. The records of files written in the granule of the
// commit are racy: the next pass reads those files of the copy instead of
// trusting them (on a file system with nanosecond timestamps, the files of
// the commit's last clock tick; with one-second timestamps, those of its
// last second). An M earlier than the last commit is safe (it trusts less);
// a later one would not be, which is why a stale journal's mtime never
// counts.

// Trusts reports whether rec still describes the copy's file fi: the copy's
// stat is what pgtwopass left, and no write since can hide behind it (see
// above). pg_control is never trusted: it moves at every seal, and is one
// block.
func (l *Ledger) Trusts(rec *manifest.Head, fi fs.FileInfo) bool {
	if rec == nil || fi == nil || !fi.Mode().IsRegular() || rec.Path == pass.ControlFile || pass.StatOf(fi) != rec.Dest {
		return false
	}
	g := l.o.Clock.Granularity(uint64(fi.Sys().(*syscall.Stat_t).Dev))
	return rec.Dest.Ctime < pass.Floor(l.horizon, g)
}

// Saw notes the stat of a file the pass wrote or changed (see Commit).
func (l *Ledger) Saw(fi fs.FileInfo) { l.newest.saw(fi) }

// newest keeps the newest ctime of the files a pass wrote, by file system.
type newest struct {
	mu    sync.Mutex
	ctime map[uint64]int64
}

func (n *newest) saw(fi fs.FileInfo) {
	st := fi.Sys().(*syscall.Stat_t)
	dev, c := uint64(st.Dev), st.Ctim.Nano()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctime == nil {
		n.ctime = map[uint64]int64{}
	}
	n.ctime[dev] = max(n.ctime[dev], c)
}

// clockTick bounds how far the kernel's coarse clock, which stamps files,
// lags the fine one (a jiffy: 1 to 10 ms).
const clockTick = 10 * time.Millisecond

// waitPast waits until the granule of the newest ctime is over on every file
// system, so that the manifest committed next is stamped after it and its
// records are trusted by the next pass (see above): at most a clock tick
// on a file system with fine timestamps, up to a second or two on coarse
// ones, spent at the end of a live pass rather than as reads of the copy in
// the cold pass.
func (n *newest) waitPast(ctx context.Context, c *pass.FSClock) {
	n.mu.Lock()
	var until int64
	for dev, t := range n.ctime {
		g := c.Granularity(dev)
		until = max(until, pass.Floor(t, g)+g)
	}
	n.mu.Unlock()
	if until == 0 {
		return
	}
	d := time.Until(time.Unix(0, until).Add(clockTick))
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
