package destination

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// Local is a copy on this host. Every path that comes from the sender
// (a remote one may be hostile or broken) is checked by pass.ValidRel and opened
// through an os.Root on DEST, or on the directory of a tablespace's copy, so
// that nothing is ever written outside them: os.Root refuses "..", absolute
// paths and symlinks that lead out.
type Local struct {
	// config
	dir    string // absolute, symlinks resolved
	given  string // as the user wrote it, for messages
	layout Layout // as given
	obs    pass.Observer

	// state
	root *os.Root // DEST; nil until it exists
	// parts are the pieces of the copy outside DEST, by their link's path:
	// the tablespaces' copies, the WAL directory (tablespace.go).
	parts []*part
	// adopt: the copy's pg_wal leads to a directory pgtwopass did not
	// make, named by --waldir: it becomes the copy's WAL directory.
	adopt  bool
	header *manifest.Header
	// manifestErr says why header is nil for an existing copy.
	manifestErr error
	exists      bool
	owner       pass.OwnerIDs // the copy's owner (giveState, tablespace markers)
	sysID       uint64
	pgVersion   string
	// backupTLI and backupLSN are the WAL range of the backup_manifest
	// this session wrote, if any.
	backupTLI, backupLSN string
	// crashed: a pass was writing the copy when its host went down; the
	// manifest's records cannot vouch for the copy's files (see passMark).
	crashed bool
	asRoot  bool
	unlock  func()
	clock   pass.FSClock
	probed  bool // clock probed // the timestamps of the file systems under the copy
}

// New returns the copy in dir, with its parts outside DEST where l says.
// Nothing is read or written before Open.
func New(dir string, l Layout, obs pass.Observer) (*Local, error) {
	real, err := pass.Resolve(dir)
	if err != nil {
		return nil, err
	}
	if obs == nil {
		obs = pass.NopObserver{}
	}
	d := &Local{dir: real, given: dir, layout: l, obs: obs, asRoot: os.Geteuid() == 0, unlock: func() {}}
	for oid, new := range l.Tablespaces {
		p, err := newPart("pg_tblspc/"+oid, "the copy of tablespace "+oid, new)
		if err != nil {
			return nil, err
		}
		d.addPart(p)
	}
	return d, nil
}

func (d *Local) String() string { return d.dir }

// Dir is the copy's directory: absolute, symlinks resolved.
func (d *Local) Dir() string { return d.dir }

// writePlaces are the directories the copy's passes write: DEST and the
// copy of every tablespace, for pass.CheckPlaces.
func (d *Local) writePlaces() ([]pass.Place, error) {
	p, err := pass.NewPlace("DEST", d.dir, d.given)
	if err != nil {
		return nil, err
	}
	out := []pass.Place{p}
	for _, pt := range d.parts {
		p, err := pass.NewPlace(pt.what, pt.dir, pt.given)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// checkPlaces applies pass.CheckPlaces to what the copy's passes write and,
// when the sender runs on this host, to what they read.
func (d *Local) checkPlaces(req *pass.OpenRequest) error {
	writes, err := d.writePlaces()
	if err != nil {
		return err
	}
	var reads []pass.Place
	if id := pass.BootID(); id != "" && id == req.BootID {
		reads = req.Reads
	}
	return pass.CheckPlaces(reads, writes)
}

// InFlight bounds the files in flight of a pass with jobs workers: enough
// to keep them busy across small files.
func (d *Local) InFlight(jobs int) int { return 2*jobs + 2 }

// Traffic is 0: nothing crosses a network.
func (d *Local) Traffic() (sent, received int64) { return 0, 0 }

func (d *Local) manifestPath() string {
	return filepath.Join(d.dir, manifest.DirName, manifest.FileName)
}

// Open accepts DEST when it is missing, empty, or a pgtwopass copy of the
// same cluster, and refuses anything else before anything is written.
func (d *Local) Open(ctx context.Context, req *pass.OpenRequest) (*pass.OpenReply, error) {
	if req.ReadOnly {
		// verify: any directory, compared as it is.
		if fi, err := os.Stat(d.dir); err != nil || !fi.IsDir() {
			return nil, pass.InputErr("give the copy's directory", "DEST %s is not a directory", d.given)
		}
		if !isCopy(d.dir) {
			return nil, pass.InputErr("give the directory of a copy of SRC: one made by pgtwopass, or any copy of a data directory (it holds PG_VERSION)",
				"DEST %s is neither a pgtwopass copy nor a data directory (no %s, no PG_VERSION)", d.given, manifest.DirName)
		}
		d.exists = true
		d.owner = req.Owner.OnThisHost()
		if err := d.openRoots(); err != nil {
			return nil, err
		}
		return &pass.OpenReply{Exists: true, Owner: d.owner, AsRoot: d.asRoot, Tablespaces: d.tablespaceDirs()}, nil
	}
	d.sysID, d.pgVersion = req.SystemIdentifier, req.PGVersion
	if err := d.adoptWAL(d.layout.WALDir); err != nil {
		return nil, err
	}
	if err := d.checkPlaces(req); err != nil {
		return nil, err
	}
	if err := d.inspect(req.SystemIdentifier, req.AllowStarted); err != nil {
		return nil, err
	}
	for _, oid := range req.Tablespaces {
		if d.part("pg_tblspc/"+oid) == nil {
			return nil, pass.InputErr("map each tablespace to a directory for its copy: --tablespace-map OLD=NEW (repeatable)",
				"the destination has no directory for tablespace %s", oid)
		}
	}
	if err := checkParents("DEST", d.dir, d.given, req.MkPath); err != nil {
		return nil, err
	}
	for _, p := range d.parts {
		if err := checkParents(p.what, p.dir, p.given, req.MkPath); err != nil {
			return nil, err
		}
	}
	if err := d.checkParts(); err != nil {
		return nil, err
	}
	if req.Quick {
		if err := pass.CheckQuickFS(pass.ExistingAncestor(d.dir)); err != nil {
			return nil, err
		}
	}
	d.owner = req.Owner.OnThisHost()
	if !req.DryRun {
		if err := d.makeDir(d.dir); err != nil {
			return nil, err
		}
		unlock, err := lockDest(d.dir)
		if err != nil {
			return nil, err
		}
		d.unlock = unlock
		d.exists = true
		if err := d.markParts(); err != nil {
			return nil, err
		}
		if d.header == nil && d.manifestErr == nil {
			// A new copy: record whose copy it is before any data is
			// written, so that a pass killed before its end leaves an
			// identifiable copy.
			if err := d.initManifest(req); err != nil {
				return nil, err
			}
		}
	}
	if err := d.openRoots(); err != nil {
		return nil, err
	}
	rep := &pass.OpenReply{Header: d.header, Exists: d.exists, Owner: d.owner, AsRoot: d.asRoot, Tablespaces: d.tablespaceDirs()}
	return rep, nil
}

// inspect reads what DEST is, and refuses it unless it is missing, empty or a
// copy of the cluster with database system identifier want.
func (d *Local) inspect(want uint64, allowStarted bool) error {
	dest := d.given
	fi, err := os.Stat(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return pass.InputErr("check the path and its permissions", "cannot use DEST %s: %v", dest, err)
	}
	if !fi.IsDir() {
		return pass.InputErr("give a directory: an empty one, a missing one, or an earlier pgtwopass copy", "DEST %s is not a directory", dest)
	}
	d.exists = true
	names, err := pass.ReadDirNames(d.dir)
	if err != nil {
		return pass.InputErr("check the permissions of DEST", "cannot read DEST %s: %v", dest, err)
	}
	if len(names) == 0 {
		return nil
	}
	if fi, err := os.Stat(filepath.Join(d.dir, manifest.DirName)); err != nil || !fi.IsDir() {
		return pass.InputErr("give an empty or missing directory; pgtwopass replaces what DEST holds only in a copy it made itself",
			"DEST %s is not empty and is not a pgtwopass copy (it has no %s directory)", dest, manifest.DirName)
	}
	if err := d.checkNotRun(allowStarted); err != nil {
		return err
	}
	d.crashed = crashedDuringPass(d.dir)
	h, err := manifest.ReadHeader(d.manifestPath())
	if err == nil {
		if h.SystemIdentifier != want {
			return pass.InputErr("choose another DEST; a copy is only ever refreshed from the cluster it was made of",
				"DEST %s is a copy of another cluster (database system identifier %d; SRC has %d)", dest, h.SystemIdentifier, want)
		}
		d.header = &h
		return nil
	}
	// The manifest is missing or damaged: the copy's own pg_control still
	// says which cluster it came from. Its contents will be read in full.
	d.manifestErr = err
	id, cerr := copyIdentifier(d.dir)
	switch {
	case cerr != nil:
		return pass.InputErr("remove DEST and start a new copy",
			"DEST %s has a damaged manifest (%v) and no pg_control to tell which cluster it is a copy of", dest, err)
	case id != want:
		return pass.InputErr("choose another DEST; a copy is only ever refreshed from the cluster it was made of",
			"DEST %s is a copy of another cluster (database system identifier %d; SRC has %d)", dest, id, want)
	}
	return nil
}

// copyIdentifier reads the database system identifier from the copy's
// pg_control, held or installed: it is the first field of the file.
func copyIdentifier(dest string) (uint64, error) {
	for _, rel := range []string{pass.HeldControl, pass.ControlFile} {
		f, err := os.Open(filepath.Join(dest, filepath.FromSlash(rel)))
		if err != nil {
			continue
		}
		var b [8]byte
		_, err = io.ReadFull(f, b[:])
		f.Close()
		if err == nil {
			return binary.NativeEndian.Uint64(b[:]), nil
		}
	}
	return 0, errors.New("no pg_control in the copy")
}

// initManifest writes a manifest with no records: it vouches for no file
// of the copy, and says which cluster the copy belongs to.
func (d *Local) initManifest(req *pass.OpenRequest) error {
	h := manifest.Header{
		BlockSize:        uint32(cmp.Or(req.BlockSize, pass.DefaultBlockSize)),
		SystemIdentifier: req.SystemIdentifier,
		PGVersion:        req.PGVersion,
		Created:          time.Now().UnixNano(),
	}
	w, err := manifest.Create(d.manifestPath(), int(h.BlockSize))
	if err != nil {
		return err
	}
	if err := w.Commit(h); err != nil {
		return err
	}
	d.giveState()
	d.header = &h
	return nil
}

// openRoots opens DEST and the tablespaces' copies as os.Roots, once they
// exist (a dry run on a missing DEST has none).
func (d *Local) openRoots() error {
	if d.root == nil && d.exists {
		r, err := os.OpenRoot(d.dir)
		if err != nil {
			return fmt.Errorf("failed to open DEST %s: %w", d.dir, err)
		}
		d.root = r
	}
	for _, p := range d.parts {
		if p.root != nil {
			continue
		}
		r, err := os.OpenRoot(p.dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("failed to open %s: %w", p.dir, err)
		}
		p.root = r
	}
	return nil
}

// Close unlocks the copy.
func (d *Local) Close() error {
	d.unlock()
	d.unlock = func() {}
	if d.root != nil {
		d.root.Close()
		d.root = nil
	}
	for _, p := range d.parts {
		if p.root != nil {
			p.root.Close()
			p.root = nil
		}
	}
	return nil
}

// giveState gives DEST/.pgtwopass and its files to the data directory's
// owner when running as root, so that the server user can read the whole
// copy (pg_basebackup of the copy, for one). Failures are harmless.
func (d *Local) giveState() {
	if !d.asRoot {
		return
	}
	for _, name := range []string{"", manifest.FileName, manifest.FileName + manifest.JournalSuffix, "lock", pass.TimingsName, sealName} {
		os.Lchown(filepath.Join(d.dir, manifest.DirName, name), int(d.owner.UID), int(d.owner.GID))
	}
}

// at returns the root that holds rel in the copy and rel's name in it:
// below DEST, or below the directory of a tablespace's copy, and
// global/pg_control held aside until the seal when held is set. root is
// nil when the directory does not exist (a dry run on a new copy).
func (d *Local) at(rel string, held bool) (*os.Root, string) {
	if held && rel == pass.ControlFile {
		rel = pass.HeldControl
	}
	if p, rest := d.partOf(rel); p != nil {
		return p.root, rest
	}
	return d.root, cmp.Or(rel, ".")
}

// lstat is os.Root.Lstat that reports a missing root as a missing file.
func lstat(root *os.Root, name string) (fs.FileInfo, error) {
	if root == nil {
		return nil, fs.ErrNotExist
	}
	return root.Lstat(name)
}

// lutimesAt sets the times of a symlink of root, not of its target.
func lutimesAt(root *os.Root, name string, atime, mtime int64) error {
	dir, base := path.Split(name)
	f, err := root.Open(cmp.Or(strings.TrimSuffix(dir, "/"), "."))
	if err != nil {
		return err
	}
	defer f.Close()
	ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
	return unix.UtimesNanoAt(int(f.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// Status reads what the manifest says; it writes nothing.
func (d *Local) Status(context.Context) (*pass.CopyStatus, error) {
	h, err := manifest.ReadHeader(d.manifestPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, pass.InputErr("give the directory of a copy made by pgtwopass prepare, finish or sync",
			"DEST %s has no pgtwopass manifest", d.given)
	case err != nil:
		return nil, err
	}
	_, installed := os.Lstat(filepath.Join(d.dir, filepath.FromSlash(pass.ControlFile)))
	_, held := os.Lstat(filepath.Join(d.dir, filepath.FromSlash(pass.HeldControl)))
	st := &pass.CopyStatus{Dest: d.dir, Header: h, Sealed: h.ColdComplete() && installed == nil && held != nil}
	if installed == nil {
		ss, err := d.sealState()
		st.RanSinceSeal = err == nil && ss == ranSinceSeal
	}
	if running, pm, err := pgctl.ServerRunning(d.dir); err != nil || running {
		st.Running = true
		if pm != nil {
			st.PID = pm.PID
		}
	}
	return st, nil
}

// isCopy reports whether dir looks like a copy of a data directory: a copy
// made by pgtwopass (it has DEST/.pgtwopass), or one made otherwise (it has
// PG_VERSION). Comparing SRC with anything else prints every file of SRC as
// missing, which is a mistyped path rather than a finding.
func isCopy(dir string) bool {
	for _, name := range []string{manifest.DirName, "PG_VERSION"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// The pass mark guards against a power loss of the copy's host during a
// pass. A file system may write a file's overwritten blocks before the
// inode's new ctime and mtime (ext4 does not order them; lazytime delays
// timestamps), so after such a crash a file can hold new blocks under the
// stat that the old manifest recorded, and a record would vouch for
// contents the file no longer has. Before a pass writes anything it leaves
// DEST/.pgtwopass/pass holding the kernel's boot ID; the commit removes it.
// A mark with another boot ID means that the host went down in the middle of
// a pass: no record is trusted until a pass commits, and the mark says
// "distrust" until then. A mark with this boot's ID is a pgtwopass that was
// killed: the kernel's page cache and stat stayed coherent, and the records
// stay trusted.
const passMarkName = "pass"

const distrustMark = "distrust"

// crashedDuringPass reports whether the copy in dir holds the mark of a
// pass that its host's crash interrupted.
func crashedDuringPass(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, manifest.DirName, passMarkName))
	if err != nil {
		return false
	}
	id := pass.BootID()
	return id == "" || strings.TrimSpace(string(b)) != id
}

// markPass leaves the pass mark, durably, before a pass writes the copy.
func (d *Local) markPass() error {
	mark := pass.BootID()
	if d.crashed || mark == "" {
		mark = distrustMark
	}
	dir := filepath.Join(d.dir, manifest.DirName)
	if err := renameio.WriteFile(filepath.Join(dir, passMarkName), []byte(mark+"\n"), 0o600, renameio.WithTempDir(dir)); err != nil {
		return fmt.Errorf("failed to mark the pass in %s: %w", dir, err)
	}
	return manifest.SyncDir(dir)
}

// unmarkPass removes the pass mark once the pass's manifest is committed:
// its records were written after the files they describe were fsynced.
func (d *Local) unmarkPass() error {
	dir := filepath.Join(d.dir, manifest.DirName)
	if err := os.Remove(filepath.Join(dir, passMarkName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	d.crashed = false
	return manifest.SyncDir(dir)
}
