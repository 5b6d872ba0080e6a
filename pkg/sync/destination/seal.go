package destination

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/renameio/v2"
	"github.com/zeebo/xxh3"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// A copy that has run since its seal is not a copy any more: after a
// cutover it is the new primary, and a pass (a nightly prepare left
// enabled, say) would roll it back to the old source, deleting its new
// files and unsealing it. PostgreSQL rewrites pg_control whenever it starts,
// checkpoints or stops, so the copy's pg_control tells: the seal records the
// xxh3-128 of the pg_control it installs in DEST/.pgtwopass/sealed, and a
// copy whose installed pg_control has other bytes has run since.

// sealName is the file in DEST/.pgtwopass that records what the seal
// installed: the hex xxh3-128 of global/pg_control.
const sealName = "sealed"

// sealState says what the copy's pg_control says of it.
type sealState int

const (
	// unsealed: no pg_control is installed; the copy cannot start.
	unsealed sealState = iota
	// asSealed: the installed pg_control is the one the seal installed.
	asSealed
	// ranSinceSeal: the installed pg_control changed since the seal: the
	// copy has run as a cluster.
	ranSinceSeal
	// sealUnknown: a pg_control is installed and nothing records what the
	// seal installed (a damaged manifest, or a copy sealed by hand).
	sealUnknown
)

func controlSum(b []byte) string {
	s := xxh3.Hash128(b).Bytes()
	return hex.EncodeToString(s[:])
}

// sealState reads the copy's installed pg_control and compares it with what
// the seal recorded. An error means it cannot tell.
func (d *Local) sealState() (sealState, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(pass.ControlFile)))
	if errors.Is(err, fs.ErrNotExist) {
		return unsealed, nil
	}
	if err != nil {
		return sealUnknown, err
	}
	rec, err := os.ReadFile(filepath.Join(d.dir, manifest.DirName, sealName))
	switch {
	case err == nil:
		if strings.TrimSpace(string(rec)) == controlSum(b) {
			return asSealed, nil
		}
		return ranSinceSeal, nil
	case !errors.Is(err, fs.ErrNotExist):
		return sealUnknown, err
	}
	// Sealed before the seal recorded itself: the manifest's record of
	// pg_control holds the block hashes of the file it sealed.
	h, err := manifest.ReadHeader(d.manifestPath())
	if err != nil || !h.ColdComplete() {
		return sealUnknown, nil
	}
	r, err := manifest.Open(d.manifestPath())
	if err != nil {
		return sealUnknown, nil
	}
	defer r.Close()
	for {
		f, err := r.Next()
		if err == io.EOF || err != nil {
			return sealUnknown, nil
		}
		if f.Path != pass.ControlFile {
			continue
		}
		hs, _, err := pass.HashFile(context.Background(), bytes.NewReader(b), int(h.BlockSize), nil)
		if err == nil && slices.Equal(hs, f.Hashes) {
			return asSealed, nil
		}
		return ranSinceSeal, nil
	}
}

// errRanSinceSeal refuses a pass into a copy that has run since its seal.
func (d *Local) errRanSinceSeal() error {
	return pass.InputErr(fmt.Sprintf("if the copy is now the cluster in use (a cutover), run 'pgtwopass detach %s' and disable any timer that refreshes it; if it only ran for a test, or the cutover was abandoned, --allow-started-copy refreshes it from the source, discarding what it changed", d.given),
		"DEST %s has run as a PostgreSQL cluster since pgtwopass sealed it (its pg_control changed): it may be a new primary, and a pass would roll it back to the source", d.given)
}

// checkNotRun refuses a copy on which a server runs, one that has run
// since its seal, and one of which pgtwopass cannot tell, touching nothing;
// allowStarted (--allow-started-copy) accepts the last two.
func (d *Local) checkNotRun(allowStarted bool) error {
	running, pm, err := pgctl.ServerRunning(d.dir)
	switch {
	case err != nil:
		return pass.InputErr("check DEST/postmaster.pid; remove it only if no server runs on the copy",
			"cannot tell whether a PostgreSQL server runs on DEST %s: %v", d.given, err)
	case running:
		return pass.InputErr("stop the server that runs on the copy, or choose another DEST",
			"a PostgreSQL server (pid %d) is running on DEST %s", pm.PID, d.given)
	}
	if allowStarted {
		return nil
	}
	switch st, err := d.sealState(); {
	case err != nil:
		return pass.InputErr("check the permissions of DEST",
			"cannot tell whether DEST %s has run since pgtwopass sealed it: %v", d.given, err)
	case st == ranSinceSeal:
		return d.errRanSinceSeal()
	case st == sealUnknown:
		return pass.InputErr(fmt.Sprintf("if the copy never ran, remove %s/global/pg_control and run the command again (the next cold pass seals it anew); if it is a cluster in use now, run 'pgtwopass detach %s'", d.given, d.given),
			"DEST %s has a pg_control installed, but nothing records what pgtwopass sealed: pgtwopass cannot tell whether it has run since", d.given)
	}
	return nil
}

// recordSeal records the pg_control the seal is about to install, held in
// DEST/.pgtwopass, durably, before it is installed.
func (d *Local) recordSeal() error {
	b, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(pass.HeldControl)))
	if err != nil {
		return fmt.Errorf("failed to read the copy's pg_control to seal it: %w", err)
	}
	dir := filepath.Join(d.dir, manifest.DirName)
	if err := renameio.WriteFile(filepath.Join(dir, sealName), []byte(controlSum(b)+"\n"), 0o600, renameio.WithTempDir(dir)); err != nil {
		return fmt.Errorf("failed to record the seal: %w", err)
	}
	d.giveState()
	return manifest.SyncDir(dir)
}

// Detach removes pgtwopass's state from the copy: DEST/.pgtwopass and the
// markers in the tablespaces' copies. It is for a copy that has become the
// cluster in use; afterwards pgtwopass refuses to write into it as into any
// directory it did not make. An unsealed copy is refused: its pg_control is
// held in DEST/.pgtwopass, and removing it would leave a cluster that can
// never start.
func (d *Local) Detach(context.Context) error {
	if fi, err := os.Stat(filepath.Join(d.dir, manifest.DirName)); err != nil || !fi.IsDir() {
		return pass.InputErr("give the directory of a copy made by pgtwopass",
			"DEST %s is not a pgtwopass copy (it has no %s directory)", d.given, manifest.DirName)
	}
	unlock, err := lockDest(d.dir)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := d.sealState()
	if err != nil {
		return pass.InputErr("check the permissions of DEST", "cannot read the pg_control of DEST %s: %v", d.given, err)
	}
	if st == unsealed {
		return pass.InputErr("finish the copy (pgtwopass finish) before it is used, or remove it",
			"DEST %s is not sealed: its pg_control is held in %s, and the copy cannot start without it", d.given, manifest.DirName)
	}
	// The tablespaces' copies: where the copy's pg_tblspc links lead.
	links, _ := pass.ReadDirNames(filepath.Join(d.dir, "pg_tblspc"))
	for _, oid := range links {
		target, err := os.Readlink(filepath.Join(d.dir, "pg_tblspc", oid))
		if err != nil {
			continue // an in-place tablespace: no marker
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(d.dir, "pg_tblspc", target)
		}
		marker := filepath.Join(target, pass.TablespaceMarker)
		if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed to remove %s: %w", marker, err)
		}
		manifest.SyncDir(target)
	}
	if err := os.RemoveAll(filepath.Join(d.dir, manifest.DirName)); err != nil {
		return fmt.Errorf("failed to remove %s: %w", filepath.Join(d.dir, manifest.DirName), err)
	}
	if err := manifest.SyncDir(d.dir); err != nil {
		return err
	}
	d.obs.Event(pass.Event{Kind: pass.Step, Msg: fmt.Sprintf("detached %s: pgtwopass's state removed; the directory is an ordinary data directory now", d.given)})
	return nil
}
