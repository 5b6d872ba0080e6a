package destination

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/pkg/backupmanifest"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// writeBackupManifest writes PostgreSQL's backup_manifest into the copy, so
// that `pg_verifybackup -n DEST` checks the copy independently of
// pgtwopass. The checksums come from the manifest just committed: CRC-32C
// of the bytes the pass read anyway. A record without one (a file that a
// quick cold pass trusted by its stat, last read by a cold pass that wrote
// no backup_manifest) gets the CRC-32C of the copy's bytes, which the
// record vouches for. pg_wal is left out, as pg_basebackup does;
// pgtwopass's own files (DEST/.pgtwopass, the markers in the copies of
// tablespaces) are listed, since pg_verifybackup reports files it does not
// know.
func (lp *Pass) writeBackupManifest(tli, lsn string) error {
	if err := lp.d.writeBackupManifest(tli, lsn); err != nil {
		return err
	}
	lp.obs.Event(pass.Event{Kind: pass.Step, Pass: lp.req.Kind, Msg: "wrote backup_manifest: check the copy with pg_verifybackup -n"})
	return nil
}

// writeBackupManifest writes DEST/backup_manifest from the copy's manifest
// and pgtwopass's own files as they are now; tli and lsn are the source's
// checkpoint, the WAL range of the copy. It keeps DEST's mtime (the
// source's), which renaming the new file into DEST moves.
func (d *Local) writeBackupManifest(tli, lsn string) error {
	dest := d.dir
	r, err := manifest.Open(d.manifestPath())
	if err != nil {
		return fmt.Errorf("failed to read back the manifest: %w", err)
	}
	defer r.Close()
	own, err := d.ownFiles()
	if err != nil {
		return err
	}
	var buf []byte // for the records without a CRC-32C
	b, err := backupmanifest.OfCopy(r, dest, own, func(rel string) (uint32, error) {
		if buf == nil {
			buf = make([]byte, pass.ChunkSize)
		}
		return d.copyCRC32C(rel, buf)
	}, tli, lsn)
	if err != nil {
		return err
	}

	root, err := os.Stat(dest)
	if err != nil {
		return err
	}
	path := filepath.Join(dest, pass.BackupManifestName)
	if err := renameio.WriteFile(path, b, 0o600, renameio.WithTempDir(dest)); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if d.asRoot {
		os.Lchown(path, int(d.owner.UID), int(d.owner.GID))
	}
	if err := os.Chtimes(dest, time.Time{}, root.ModTime()); err != nil {
		return fmt.Errorf("failed to set the times of %s: %w", dest, err)
	}
	return manifest.SyncDir(dest)
}

// ownFiles lists, relative to DEST, the files pgtwopass keeps in the copy
// for itself once it is sealed: those of DEST/.pgtwopass (but the held
// pg_control, which the seal moves to global/, and temporary files) and the
// marker in the copy of each tablespace.
func (d *Local) ownFiles() ([]string, error) {
	var out []string
	names, err := pass.ReadDirNames(filepath.Join(d.dir, manifest.DirName))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		rel := manifest.DirName + "/" + name
		if rel == pass.HeldControl || strings.HasPrefix(name, ".") {
			continue
		}
		out = append(out, rel)
	}
	for _, p := range d.parts {
		if _, err := os.Stat(filepath.Join(p.dir, p.markerName())); err == nil {
			out = append(out, p.rel+"/"+p.markerName())
		}
	}
	return out, nil
}

// refreshBackupManifest rewrites the backup_manifest that the cold pass of
// this session wrote, after pgtwopass changed its own files in the sealed
// copy (the server timings recorded after the restart).
func (d *Local) refreshBackupManifest() error {
	if d.backupTLI == "" {
		return nil // not asked for in this session
	}
	if err := d.writeBackupManifest(d.backupTLI, d.backupLSN); err != nil {
		return fmt.Errorf("failed to rewrite backup_manifest (pg_verifybackup will report %s/%s): %w", manifest.DirName, pass.TimingsName, err)
	}
	return nil
}

// copyCRC32C returns the CRC-32C of the copy of rel, read in chunks into buf.
func (d *Local) copyCRC32C(rel string, buf []byte) (uint32, error) {
	root, name := d.at(rel, true)
	f, err := root.Open(name)
	if errors.Is(err, fs.ErrNotExist) && rel == pass.ControlFile {
		// Sealed since (a rewrite after the seal): installed, not held.
		root, name = d.at(rel, false)
		f, err = root.Open(name)
	}
	if err != nil {
		return 0, fmt.Errorf("failed to read %s in the copy for the backup_manifest: %w", rel, err)
	}
	defer f.Close()
	crc, err := crc32c.Reader(f, buf)
	if err != nil {
		return 0, fmt.Errorf("failed to read %s in the copy for the backup_manifest: %w", rel, err)
	}
	return crc, nil
}
