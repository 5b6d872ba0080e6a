package sync

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/destination"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/sync/remote"
	"github.com/pgtwopass/pgtwopass/pkg/sync/sender"
)

const testSysID = 7311111111111111111

// fakeCluster writes a tree shaped like a data directory: PG_VERSION,
// global/pg_control (whose first 8 bytes are the system identifier), a
// relation segment spanning several chunks, small files and a symlink.
func fakeCluster(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	control := rnd(8192)
	binary.NativeEndian.PutUint64(control, testSysID)
	files := map[string][]byte{
		"PG_VERSION":        []byte("15\n"),
		"global/pg_control": control,
		"global/1262":       rnd(8192 * 3),
		"base/1/16384":      rnd(pass.ChunkSize*2 + 8192*5 + 100), // three chunks, a partial last block
		"base/1/16384_fsm":  rnd(24576),
		"base/1/PG_VERSION": []byte("15\n"),
		"pg_xact/0000":      rnd(8192),
		"postgresql.conf":   []byte("# settings\n"),
		"postmaster.pid":    []byte("12345\n"),
		"pg_stat_tmp/x":     []byte("tmp"),
	}
	for rel, data := range files {
		p := filepath.Join(dir, rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o700))
		must(t, os.WriteFile(p, data, 0o600))
	}
	must(t, os.MkdirAll(filepath.Join(dir, "pg_wal"), 0o700))
	must(t, os.MkdirAll(filepath.Join(dir, "empty"), 0o750))
	must(t, os.Symlink("/etc/hostname", filepath.Join(dir, "link")))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testSource(dir string) *source {
	return &source{dir: dir, pgVersion: "15", control: &pgctl.ControlFile{SystemIdentifier: testSysID, State: pgctl.StateShutDown,
		TimeLineID: 1, CheckPoint: 0x15D7A28}}
}

// destKind says which destination a pass test runs against: the copy on
// this host, or a receiver driven over the wire protocol (through pipes,
// in this process). Every pass test runs against both (TestPasses).
type destKind string

const (
	localDest    destKind = "local"
	receiverDest destKind = "receiver"
)

// newTestDest returns the destination of kind dk for the copy in dst.
func newTestDest(t *testing.T, dk destKind, dst string, obs Observer) (pass.Destination, error) {
	return newTestDestIn(t, dk, dst, destination.Layout{}, obs)
}

// newTestDestIn is newTestDest with the parts of the copy outside dst
// where l says.
func newTestDestIn(t *testing.T, dk destKind, dst string, l destination.Layout, obs Observer) (pass.Destination, error) {
	t.Helper()
	if dk == receiverDest {
		return remote.Loopback(context.Background(), dst, l, remote.Options{Program: "pgtwopass test"}, obs)
	}
	return destination.New(dst, l, obs)
}

// openDest checks and opens the copy in dst as a job on s would.
func openDest(t *testing.T, dk destKind, s *source, dst string, o *Options) (pass.Destination, *pass.OpenReply, error) {
	t.Helper()
	d, err := newTestDestIn(t, dk, dst, o.layout(s), o.Observer)
	if err != nil {
		return nil, nil, err
	}
	reads, err := s.readPlaces()
	must(t, err)
	rep, err := d.Open(context.Background(), &pass.OpenRequest{SystemIdentifier: s.control.SystemIdentifier, PGVersion: s.pgVersion,
		BlockSize: o.BlockSize, DryRun: o.DryRun, Quick: o.ColdPass == ColdQuick, BootID: pass.BootID(), Reads: reads, MkPath: o.MkPath})
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return d, rep, nil
}

// inspectDest reports whether a job on s would refuse dst, touching nothing.
func inspectDest(t *testing.T, dk destKind, s *source, dst string) error {
	d, err := newTestDest(t, dk, dst, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	reads, err := s.readPlaces()
	must(t, err)
	_, err = d.Open(context.Background(), &pass.OpenRequest{SystemIdentifier: s.control.SystemIdentifier, PGVersion: s.pgVersion, DryRun: true,
		BootID: pass.BootID(), Reads: reads})
	return err
}

// runPass runs one pass as Prepare or Finish would, minus PostgreSQL.
func runPass(t *testing.T, dk destKind, ctx context.Context, kind manifest.PassKind, src, dst string, o Options) (PassStats, error) {
	t.Helper()
	o.Source, o.Dest = src, dst
	must(t, o.validate())
	s := testSource(src)
	d, rep, err := openDest(t, dk, s, dst, &o)
	if err != nil {
		return PassStats{}, err
	}
	defer d.Close()
	j := &job{opts: &o, src: s, dst: d}
	st, _, err := sender.Run(ctx, j.senderConfig(kind), d, rep.Header)
	return st, err
}

func mustPass(t *testing.T, dk destKind, kind manifest.PassKind, src, dst string) PassStats {
	t.Helper()
	st, err := runPass(t, dk, context.Background(), kind, src, dst, Options{Jobs: 2})
	if err != nil {
		t.Fatalf("%s pass: %v", kind, err)
	}
	return st
}

// sameTree fails unless dst holds exactly src's entries (less the default
// excludes), with equal types, modes, contents, symlink targets and mtimes.
func sameTree(t *testing.T, src, dst string) {
	t.Helper()
	ex := pass.NewExcluder(false, nil)
	se, err := pass.Walk(src, ex)
	must(t, err)
	de, err := pass.Walk(dst, ex)
	must(t, err)
	if !sealed(dst) {
		// An unsealed copy holds pg_control aside: compare it there.
		a, _ := os.ReadFile(filepath.Join(src, pass.ControlFile))
		b, err := os.ReadFile(filepath.Join(dst, pass.HeldControl))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("the held pg_control of an unsealed copy must equal the source's (%v)", err)
		}
		for i := range se {
			if se[i].Rel == pass.ControlFile {
				se = append(se[:i], se[i+1:]...)
				break
			}
		}
	}
	if len(se) != len(de) {
		t.Fatalf("copy has %d entries, source %d", len(de), len(se))
	}
	for i := range se {
		s, d := se[i], de[i]
		// A followed link (pg_wal with --waldir) leads elsewhere in the copy.
		if s.Rel != d.Rel || s.Mode != d.Mode || s.IsSymlink() && s.Target != d.Target {
			t.Fatalf("entry %d: source %q %v %q, copy %q %v %q", i, s.Rel, s.Mode, s.Target, d.Rel, d.Mode, d.Target)
		}
		if s.IsRegular() {
			a, _ := os.ReadFile(filepath.Join(src, s.Rel))
			b, _ := os.ReadFile(filepath.Join(dst, d.Rel))
			if !bytes.Equal(a, b) {
				t.Fatalf("%s: contents differ", s.Rel)
			}
		}
		if !s.IsDir() && s.Stat.Mtime != d.Stat.Mtime {
			t.Fatalf("%s: mtime %d in the source, %d in the copy", s.Rel, s.Stat.Mtime, d.Stat.Mtime)
		}
	}
}

// rewriteBlock changes one byte of block blk of rel and restores its mtime,
// so that size and mtime say nothing changed.
func rewriteBlock(t *testing.T, root, rel string, blk int64) {
	t.Helper()
	p := filepath.Join(root, rel)
	fi, err := os.Stat(p)
	must(t, err)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, blk*8192+17)
	must(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, blk*8192+17)
	must(t, err)
	must(t, f.Close())
	must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
}

func sealed(dst string) bool {
	_, installed := os.Stat(filepath.Join(dst, "global", "pg_control"))
	_, held := os.Stat(filepath.Join(dst, manifest.DirName, "pg_control"))
	return installed == nil && held != nil
}

func testColdPassIntoEmptyDestCopiesEverythingAndSeals(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	st := mustPass(t, dk, manifest.Cold, src, dst)
	sameTree(t, src, dst)
	if !sealed(dst) {
		t.Fatal("a completed cold pass must install global/pg_control (seal)")
	}
	if _, err := os.Stat(filepath.Join(dst, "postmaster.pid")); err == nil {
		t.Error("postmaster.pid is a default exclude and must not be copied")
	}
	if _, err := os.Stat(filepath.Join(dst, "pg_stat_tmp")); err != nil {
		t.Error("pg_stat_tmp/* excludes the contents, the directory must be kept")
	}
	if st.BytesWritten == 0 || st.FilesChanged == 0 {
		t.Errorf("a copy into an empty DEST must write: %+v", st)
	}
	h, err := manifest.ReadHeader(filepath.Join(dst, manifest.DirName, manifest.FileName))
	must(t, err)
	if !h.ColdComplete() || h.SystemIdentifier != testSysID || len(h.Passes) != 1 {
		t.Errorf("manifest header after a cold pass: %+v", h)
	}
}

func testColdPassWritesOnlyTheChangedBlock(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	// A block in the second chunk of the segment, size and mtime unchanged.
	rewriteBlock(t, src, "base/1/16384", pass.ChunkSize/8192+3)
	st := mustPass(t, dk, manifest.Cold, src, dst)
	sameTree(t, src, dst)
	if st.BlocksWritten != 1 || st.BytesWritten != 8192 {
		t.Errorf("one changed block must cost one block write, wrote %d blocks, %d bytes", st.BlocksWritten, st.BytesWritten)
	}
	var total int64
	for _, e := range mustWalk(t, src) {
		if e.IsRegular() {
			total += e.Stat.Size
		}
	}
	// The cold pass reads every source byte; the copy is read only for the
	// never-trusted pg_control (one block).
	if st.BytesRead != total+8192 {
		t.Errorf("cold pass read %d bytes, want the source's %d plus pg_control's 8192: the copy must not be read when the manifest answers", st.BytesRead, total)
	}
	// A second cold pass on an unchanged source writes nothing.
	if st := mustPass(t, dk, manifest.Cold, src, dst); st.BytesWritten != 0 {
		t.Errorf("a cold pass over an unchanged source wrote %d bytes", st.BytesWritten)
	}
}

func mustWalk(t *testing.T, dir string) []pass.Entry {
	es, err := pass.Walk(dir, pass.NewExcluder(false, nil))
	must(t, err)
	return es
}

func testLivePassCatchesSameSizeSameMtimeRewriteByCtime(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	st := mustPass(t, dk, manifest.Live, src, dst)
	if st.FilesExamined != 1 { // pg_control, never trusted
		t.Errorf("an unchanged source: the live pass must trust every file but pg_control by its stat, examined %d", st.FilesExamined)
	}
	time.Sleep(10 * time.Millisecond) // past a coarse timestamp tick
	rewriteBlock(t, src, "pg_xact/0000", 0)
	st = mustPass(t, dk, manifest.Live, src, dst)
	sameTree(t, src, dst)
	if st.BlocksWritten != 1 {
		t.Errorf("the rewritten pg_xact block must be copied (its ctime moved), wrote %d blocks", st.BlocksWritten)
	}
}

func testDestDriftIsRepaired(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Cold, src, dst)
	time.Sleep(10 * time.Millisecond)
	// Someone zeroes a block of the copy, keeping size and mtime.
	p := filepath.Join(dst, "base/1/16384")
	fi, _ := os.Stat(p)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt(make([]byte, 8192), 8192*7)
	must(t, err)
	f.Close()
	must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))

	st := mustPass(t, dk, manifest.Cold, src, dst)
	sameTree(t, src, dst)
	if st.BlocksWritten != 1 {
		t.Errorf("a drifted copy must be compared with its own contents and only the zeroed block rewritten, wrote %d", st.BlocksWritten)
	}
}

func testLivePassUnsealsAndColdPassSeals(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	if sealed(dst) {
		t.Fatal("after a live pass the copy must not be startable: global/pg_control must be held aside")
	}
	mustPass(t, dk, manifest.Cold, src, dst)
	if !sealed(dst) {
		t.Fatal("a cold pass must seal the copy")
	}
	mustPass(t, dk, manifest.Live, src, dst)
	if sealed(dst) {
		t.Fatal("a live pass on a sealed copy must unseal it first")
	}
	if _, err := os.Stat(filepath.Join(dst, "global", "pg_control")); err == nil {
		t.Fatal("global/pg_control must be absent from an unsealed copy")
	}
}

func testExtraEntriesAndTypeChangesAreDeleted(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Cold, src, dst)
	must(t, os.RemoveAll(filepath.Join(src, "base/1/16384_fsm")))
	must(t, os.Remove(filepath.Join(src, "link")))
	must(t, os.Mkdir(filepath.Join(src, "link"), 0o700)) // symlink became a directory
	must(t, os.WriteFile(filepath.Join(dst, "stray"), []byte("x"), 0o600))
	// The source file shrinks and another grows.
	must(t, os.Truncate(filepath.Join(src, "global/1262"), 8192))
	f, _ := os.OpenFile(filepath.Join(src, "pg_xact/0000"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write(make([]byte, 9000))
	f.Close()

	st := mustPass(t, dk, manifest.Cold, src, dst)
	sameTree(t, src, dst)
	if st.FilesDeleted != 3 {
		t.Errorf("deleted %d entries, want 3 (16384_fsm, stray, the symlink replaced by a directory)", st.FilesDeleted)
	}
}

func testInterruptedPassKeepsOldManifestAndRerunConverges(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	mpath := filepath.Join(dst, manifest.DirName, manifest.FileName)
	before, _ := os.ReadFile(mpath)
	for b := int64(0); b < 5; b++ {
		rewriteBlock(t, src, "base/1/16384", b*100)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{Jobs: 1, Observer: cancelAfterBytes{cancel: cancel}}
	_, err := runPass(t, dk, ctx, manifest.Cold, src, dst, o)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("a cancelled pass must report ErrInterrupted, got %v", err)
	}
	after, _ := os.ReadFile(mpath)
	if !bytes.Equal(before, after) {
		t.Fatal("an interrupted pass must leave the previous manifest in place")
	}
	if sealed(dst) {
		t.Fatal("an interrupted cold pass must leave the copy unsealed")
	}
	mustPass(t, dk, manifest.Cold, src, dst)
	sameTree(t, src, dst)
}

// cancelAfterBytes cancels the pass at its first progress report.
type cancelAfterBytes struct{ cancel func() }

func (c cancelAfterBytes) Event(Event)           {}
func (c cancelAfterBytes) Progress(int64, int64) { c.cancel() }

func testDamagedManifestIsNotTrusted(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Cold, src, dst)
	mpath := filepath.Join(dst, manifest.DirName, manifest.FileName)
	data, _ := os.ReadFile(mpath)
	// Change the source in a way only content comparison catches, then
	// damage the record of that file in the manifest.
	rewriteBlock(t, src, "global/1262", 1)
	i := bytes.Index(data, []byte("global/1262"))
	data[i+len("global/1262")+80] ^= 1
	must(t, os.WriteFile(mpath, data, 0o600))

	var warnings []string
	obs := warnRecorder{&warnings}
	_, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2, Observer: obs})
	must(t, err)
	sameTree(t, src, dst)
	if len(warnings) == 0 || !strings.Contains(strings.Join(warnings, "\n"), "damaged") {
		t.Errorf("a damaged manifest must be reported, got warnings %q", warnings)
	}
}

type warnRecorder struct{ w *[]string }

func (r warnRecorder) Event(e Event) {
	if e.Kind == Warning {
		*r.w = append(*r.w, e.Msg)
	}
}
func (r warnRecorder) Progress(int64, int64) {}

func testDestChecksRefuseAndTouchNothing(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	s := testSource(src)
	other := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, other)
	foreign := t.TempDir()
	must(t, os.WriteFile(filepath.Join(foreign, "mine"), []byte("x"), 0o600))
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o600))
	link := filepath.Join(t.TempDir(), "link")
	must(t, os.Symlink(src, link))

	cases := []struct{ name, dest, want string }{
		{"DEST is SRC", src, "is SRC itself"},
		{"DEST is SRC through a symlink", link, "is SRC itself"},
		{"DEST inside SRC", filepath.Join(src, "base", "copy"), "inside SRC"},
		{"SRC inside DEST", filepath.Dir(src), "inside DEST"},
		{"DEST a regular file", file, "not a directory"},
		{"DEST non-empty and foreign", foreign, "not a pgtwopass copy"},
	}
	for _, c := range cases {
		err := inspectDest(t, dk, s, c.dest)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) || ie.Hint == "" {
			t.Errorf("%s: got %v, want an InputError with a hint saying %q", c.name, err, c.want)
		}
	}
	// A copy of another cluster.
	s.control.SystemIdentifier++
	if err := inspectDest(t, dk, s, other); err == nil || !strings.Contains(err.Error(), "another cluster") {
		t.Errorf("a copy of another cluster must be refused, got %v", err)
	}
}

func testBlockSizeOfCopyIsKept(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	if _, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{BlockSize: 16384}); err != nil {
		t.Fatal(err)
	}
	_, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{BlockSize: 8192})
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("a pass with another block size than the copy's must be refused, got %v", err)
	}
	if _, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{}); err != nil {
		t.Fatalf("without --block-size the copy's own must be used: %v", err)
	}
}

func testSymlinkedPgWalBecomesADirectory(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	wal := filepath.Join(t.TempDir(), "wal")
	must(t, os.MkdirAll(wal, 0o700))
	must(t, os.WriteFile(filepath.Join(wal, "000000010000000000000001"), bytes.Repeat([]byte{7}, 16384), 0o600))
	must(t, os.RemoveAll(filepath.Join(src, "pg_wal")))
	must(t, os.Symlink(wal, filepath.Join(src, "pg_wal")))
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Cold, src, dst)
	fi, err := os.Lstat(filepath.Join(dst, "pg_wal"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("pg_wal must be a real directory in the copy, so the copy never shares WAL with its source: %v %v", fi, err)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "pg_wal", "000000010000000000000001"))
	if len(got) != 16384 || got[0] != 7 {
		t.Fatal("the WAL segment behind the pg_wal symlink must be copied")
	}
}

func checkRecords(t *testing.T, dst string, noCRC bool) []*manifest.File {
	t.Helper()
	r, err := manifest.Open(filepath.Join(dst, manifest.DirName, manifest.FileName))
	must(t, err)
	defer r.Close()
	var recs []*manifest.File
	for {
		f, err := r.Next()
		if err != nil {
			break
		}
		recs = append(recs, f)
		p := filepath.Join(dst, f.Path)
		if f.Path == pass.ControlFile && !sealed(dst) {
			p = filepath.Join(dst, pass.HeldControl)
		}
		data, err := os.ReadFile(p)
		must(t, err)
		switch {
		case f.Flags&manifest.FlagNoCRC32C != 0 && !noCRC:
			t.Errorf("%s: the record has no CRC-32C, but this pass must compute it", f.Path)
		case f.Flags&manifest.FlagNoCRC32C != 0 && f.CRC32C != 0:
			t.Errorf("%s: a record flagged without CRC-32C holds %08x", f.Path, f.CRC32C)
		case f.Flags&manifest.FlagNoCRC32C == 0:
			if got := crc32c.Checksum(data); got != f.CRC32C {
				t.Errorf("%s: record CRC-32C %08x, the copy's %08x: chunk CRCs must combine to the file's", f.Path, f.CRC32C, got)
			}
		}
		for i, h := range f.Hashes {
			if manifest.HashBlock(data[i*8192:min((i+1)*8192, len(data))]) != h {
				t.Errorf("%s: block %d hash does not describe the copy", f.Path, i)
			}
		}
	}
	if len(recs) == 0 {
		t.Fatal("the manifest has no records")
	}
	return recs
}

func testManifestRecordsMatchTheCopy(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	checkRecords(t, dst, false) // a live pass computes every CRC-32C
	rewriteBlock(t, src, "base/1/16384", 600)
	mustPass(t, dk, manifest.Cold, src, dst)
	for _, f := range checkRecords(t, dst, true) {
		if f.Flags&manifest.FlagNoCRC32C == 0 {
			t.Errorf("%s: a cold pass without --backup-manifest must leave the CRC-32C out (flagged), to spare the downtime its CPU", f.Path)
		}
	}
	diffs, err := VerifyManifest(context.Background(), Options{Dest: dst})
	must(t, err)
	if len(diffs) != 0 {
		t.Fatalf("verify --manifest-only on a fresh copy: %v", diffs)
	}
	// One byte of the copy changes: verify --manifest-only names the block.
	p := filepath.Join(dst, "base/1/16384")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt([]byte{0x55}, 8192*42+1)
	must(t, err)
	f.Close()
	diffs, err = VerifyManifest(context.Background(), Options{Dest: dst})
	must(t, err)
	if len(diffs) != 1 || diffs[0].Path != "base/1/16384" || !strings.Contains(diffs[0].What, "at byte 344064") {
		t.Fatalf("a changed byte of the copy must be reported at its block, got %v", diffs)
	}
}

func testLeftoverTemporaryFilesAreRemoved(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	// What a pgtwopass killed while writing its manifest leaves behind.
	stale := filepath.Join(dst, manifest.DirName, ".manifest123456")
	must(t, os.WriteFile(stale, []byte("half a manifest"), 0o600))
	mustPass(t, dk, manifest.Cold, src, dst)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the next run must remove a killed run's temporary manifest (%v)", err)
	}
}

// TestBlockLargerThanAChunk: with blocks larger than the 4 MiB read chunk,
// every block's hash covers the whole block, so the manifest describes the
// copy and a change in the second half of a block is still written.
func testBlockLargerThanAChunk(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	big := filepath.Join(src, "base", "1", "big")
	data := make([]byte, 3*pass.ChunkSize+100) // two 8 MiB blocks, the second partial
	for i := range data {
		data[i] = byte(i * 7)
	}
	must(t, os.WriteFile(big, data, 0o600))
	dst := filepath.Join(t.TempDir(), "copy")
	o := Options{Jobs: 2, BlockSize: 2 * pass.ChunkSize}
	if _, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, o); err != nil {
		t.Fatal(err)
	}
	d, _, err := openDest(t, dk, testSource(src), dst, &Options{DryRun: true})
	must(t, err)
	diffs, err := d.VerifyManifest(context.Background(), 2, pass.NewExcluder(false, nil))
	d.Close()
	must(t, err)
	if len(diffs) != 0 {
		t.Fatalf("with 8 MiB blocks the manifest must hash whole blocks and match the copy: %v", diffs)
	}
	// A change in the second 4 MiB of the first block.
	data[pass.ChunkSize+17] ^= 0xff
	must(t, os.WriteFile(big, data, 0o600))
	st, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, o)
	must(t, err)
	if st.BlocksWritten != 1 {
		t.Errorf("one changed byte in an 8 MiB block writes that block, wrote %d blocks", st.BlocksWritten)
	}
	sameTree(t, src, dst)
}

// TestHostCrashDuringAPassDistrustsTheManifest: a pass mark left by a pass
// under another boot (the copy's host went down mid-pass) makes the next
// pass trust no record: it reads the copy's contents, and only a committed
// pass clears the mark. A mark of this boot (a killed pgtwopass) keeps the
// records trusted.
func testHostCrashDuringAPassDistrustsTheManifest(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst) // it waits out the granule of its last writes: every record is trusted
	mustPass(t, dk, manifest.Cold, src, dst)
	mark := filepath.Join(dst, manifest.DirName, "pass")
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a committed pass removes its pass mark (%v)", err)
	}
	copyBytes := func(st PassStats) int64 {
		var n int64
		for _, e := range []string{"PG_VERSION", "global/1262", "base/1/16384", "base/1/16384_fsm", "base/1/PG_VERSION", "pg_xact/0000", "postgresql.conf"} {
			fi, err := os.Stat(filepath.Join(src, e))
			must(t, err)
			n += fi.Size()
		}
		return n
	}
	// A killed pgtwopass: the mark holds this boot's ID.
	must(t, os.WriteFile(mark, []byte(testBootID(t)+"\n"), 0o600))
	st := mustPass(t, dk, manifest.Cold, src, dst)
	srcBytes := copyBytes(st)
	if st.BytesRead > srcBytes+3*8192 {
		t.Errorf("after a killed pass (same boot) the records stay trusted: read %d bytes, the source holds %d", st.BytesRead, srcBytes)
	}
	// The host crashed: the mark holds another boot's ID. A pass that then
	// ends without a commit (killed, or failed) leaves the distrust in place.
	must(t, os.WriteFile(mark, []byte("00000000-0000-0000-0000-000000000000\n"), 0o600))
	o := Options{Jobs: 2}
	d, _, err := openDest(t, dk, testSource(src), dst, &o)
	must(t, err)
	es, err := pass.Walk(src, pass.NewExcluder(false, nil))
	must(t, err)
	dp, err := d.BeginPass(context.Background(), &pass.PassRequest{Kind: manifest.Live, BlockSize: pass.DefaultBlockSize, InFlight: 4}, es)
	must(t, err)
	dp.Abort()
	d.Close()
	if b, _ := os.ReadFile(mark); strings.TrimSpace(string(b)) != "distrust" {
		t.Fatalf("a pass that ends without a commit after a crash leaves the mark \"distrust\": the records stay untrusted until a pass commits; got %q", b)
	}
	var warns []string
	st, err = runPass(t, dk, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2, Observer: warnRecorder{&warns}})
	must(t, err)
	if st.BytesRead < 2*srcBytes-3*8192 {
		t.Errorf("after a crash of the host mid-pass the copy's own contents are read (no record trusted): read %d bytes, want about %d", st.BytesRead, 2*srcBytes)
	}
	if !strings.Contains(strings.Join(warns, "\n"), "host went down") {
		t.Errorf("a crash of the host mid-pass is reported as a warning, got %q", warns)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pass that rebuilt the manifest clears the mark (%v)", err)
	}
	sameTree(t, src, dst)
	if st := mustPass(t, dk, manifest.Cold, src, dst); st.BytesRead > srcBytes+3*8192 {
		t.Errorf("once a pass committed, the records are trusted again: read %d bytes", st.BytesRead)
	}
}

// passTests run against both destinations (see destKind).
var passTests = []struct {
	name string
	fn   func(*testing.T, destKind)
}{
	{"ColdPassIntoEmptyDestCopiesEverythingAndSeals", testColdPassIntoEmptyDestCopiesEverythingAndSeals},
	{"ColdPassWritesOnlyTheChangedBlock", testColdPassWritesOnlyTheChangedBlock},
	{"LivePassCatchesSameSizeSameMtimeRewriteByCtime", testLivePassCatchesSameSizeSameMtimeRewriteByCtime},
	{"DestDriftIsRepaired", testDestDriftIsRepaired},
	{"LivePassUnsealsAndColdPassSeals", testLivePassUnsealsAndColdPassSeals},
	{"ExtraEntriesAndTypeChangesAreDeleted", testExtraEntriesAndTypeChangesAreDeleted},
	{"InterruptedPassKeepsOldManifestAndRerunConverges", testInterruptedPassKeepsOldManifestAndRerunConverges},
	{"DamagedManifestIsNotTrusted", testDamagedManifestIsNotTrusted},
	{"DestChecksRefuseAndTouchNothing", testDestChecksRefuseAndTouchNothing},
	{"BlockSizeOfCopyIsKept", testBlockSizeOfCopyIsKept},
	{"SymlinkedPgWalBecomesADirectory", testSymlinkedPgWalBecomesADirectory},
	{"ManifestRecordsMatchTheCopy", testManifestRecordsMatchTheCopy},
	{"LeftoverTemporaryFilesAreRemoved", testLeftoverTemporaryFilesAreRemoved},
	{"BlockLargerThanAChunk", testBlockLargerThanAChunk},
	{"HostCrashDuringAPassDistrustsTheManifest", testHostCrashDuringAPassDistrustsTheManifest},
	{"QuickColdPassSkipsFilesPastTheHorizon", testQuickColdPassSkipsFilesPastTheHorizon},
	{"QuickColdPassCatchesTheMtimeTrap", testQuickColdPassCatchesTheMtimeTrap},
	{"QuickColdPassCatchesTheMtimeTrapSetWithTouchR", testQuickColdPassCatchesTheMtimeTrapSetWithTouchR},
	{"QuickColdPassRereadsAFileWrittenWithinTheMargin", testQuickColdPassRereadsAFileWrittenWithinTheMargin},
	{"QuickColdPassRereadsFilesChangedWithinTheMargin", testQuickColdPassRereadsFilesChangedWithinTheMargin},
	{"QuickColdPassRefusesNetworkFileSystems", testQuickColdPassRefusesNetworkFileSystems},
	{"LivePassToleratesAFileShrinkingUnderIt", testLivePassToleratesAFileShrinkingUnderIt},
	{"LivePassMarksAFileChangedWhileRead", testLivePassMarksAFileChangedWhileRead},
	{"ColdPassFailsWhenTheSourceChanges", testColdPassFailsWhenTheSourceChanges},
	{"ColdPassWithBackupManifestComputesEveryCRC", testColdPassWithBackupManifestComputesEveryCRC},
	{"QuickColdPassWithBackupManifestFillsInMissingCRCs", testQuickColdPassWithBackupManifestFillsInMissingCRCs},
	{"CopyThatRanIsRefused", testCopyThatRanIsRefused},
	{"DetachRefusesAnUnsealedCopy", testDetachRefusesAnUnsealedCopy},
	{"UnknownSealIsRefused", testUnknownSealIsRefused},
	{"WALDirHoldsTheCopysWAL", testWALDirHoldsTheCopysWAL},
	{"RelinkedWALIsKept", testRelinkedWALIsKept},
	{"MissingParentsNeedMkpath", testMissingParentsNeedMkpath},
	{"WALDirInsideSourceIsRefused", testWALDirInsideSourceIsRefused},
	{"NothingIsDroppedSilently", testNothingIsDroppedSilently},
	{"WALColdPassWritesAJournal", testWALColdPassWritesAJournal},
	{"WALColdPassOverADamagedManifest", testWALColdPassOverADamagedManifest},
	{"FailedFsyncFailsThePass", testFailedFsyncFailsThePass},
	{"ManyFilesUnchangedCostNothingOnTheCopy", testManyFilesUnchangedCostNothingOnTheCopy},
}

// TestPasses runs every pass test against the copy on this host and
// against a receiver over the wire protocol: the two must behave alike.
func TestPasses(t *testing.T) {
	for _, dk := range []destKind{localDest, receiverDest} {
		t.Run(string(dk), func(t *testing.T) {
			for _, tc := range passTests {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, dk) })
			}
		})
	}
}

// testBootID is the kernel's ID of this boot, which the pass mark holds.
func testBootID(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	must(t, err)
	return strings.TrimSpace(string(b))
}
