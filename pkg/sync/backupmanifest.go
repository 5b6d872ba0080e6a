package sync

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/renameio/v2"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// backupManifestName is PostgreSQL's manifest of a base backup, which
// pg_verifybackup checks.
const backupManifestName = "backup_manifest"

// writeBackupManifest writes PostgreSQL's backup_manifest into the copy, so
// that `pg_verifybackup -n DEST` checks the copy independently of
// pgtwopass. The checksums come from the manifest just committed: CRC-32C
// of the bytes the pass read anyway. pg_wal is left out, as pg_basebackup
// does; pgtwopass's own files (DEST/.pgtwopass, the markers in the copies of
// tablespaces) are listed, since pg_verifybackup reports files it does not
// know.
func (p *pass) writeBackupManifest() error {
	if err := writeBackupManifest(p.dst.dir, p.src); err != nil {
		return err
	}
	p.obs.Event(Event{Kind: Step, Pass: p.kind, Msg: "wrote backup_manifest: check the copy with pg_verifybackup -n"})
	return nil
}

// writeBackupManifest writes DEST/backup_manifest from the copy's manifest
// and pgtwopass's own files as they are now. It keeps DEST's mtime (the
// source's), which renaming the new file into DEST moves.
func writeBackupManifest(dest string, src *source) error {
	r, err := manifest.Open(filepath.Join(dest, manifest.DirName, manifest.FileName))
	if err != nil {
		return fmt.Errorf("failed to read back the manifest: %w", err)
	}
	defer r.Close()
	var b bytes.Buffer
	b.WriteString("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n")
	n := 0
	add := func(path string, size int64, mtime time.Time, crc uint32) {
		if n > 0 {
			b.WriteString(",\n")
		}
		n++
		if utf8.ValidString(path) {
			js, _ := json.Marshal(path)
			fmt.Fprintf(&b, `{ "Path": %s, `, js)
		} else {
			fmt.Fprintf(&b, `{ "Encoded-Path": "%s", `, hex.EncodeToString([]byte(path)))
		}
		// PostgreSQL prints the CRC's bytes in memory order (little-endian).
		fmt.Fprintf(&b, `"Size": %d, "Last-Modified": "%s", "Checksum-Algorithm": "CRC32C", "Checksum": "%08x" }`,
			size, mtime.UTC().Format("2006-01-02 15:04:05 GMT"), bits.ReverseBytes32(crc))
	}
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if f.Path == "pg_wal" || strings.HasPrefix(f.Path, "pg_wal/") {
			continue
		}
		add(f.Path, f.Dest.Size, time.Unix(0, f.Dest.Mtime), f.CRC32C)
	}
	own, err := ownFiles(dest, src)
	if err != nil {
		return err
	}
	for _, rel := range own {
		data, err := os.ReadFile(filepath.Join(dest, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		fi, err := os.Stat(filepath.Join(dest, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		add(rel, int64(len(data)), fi.ModTime(), crc32c.Checksum(data))
	}
	cd := src.control.Fields
	tli := cd["Latest checkpoint's TimeLineID"]
	lsn := cd["Latest checkpoint location"]
	if tli == "" || lsn == "" {
		return fmt.Errorf("pg_controldata gave no checkpoint location and timeline for the backup_manifest's WAL-Ranges")
	}
	fmt.Fprintf(&b, "\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": %s, \"Start-LSN\": \"%s\", \"End-LSN\": \"%s\" }\n],\n", tli, lsn, lsn)
	sum := sha256.Sum256(b.Bytes())
	fmt.Fprintf(&b, "\"Manifest-Checksum\": \"%x\"}\n", sum)

	root, err := os.Stat(dest)
	if err != nil {
		return err
	}
	path := filepath.Join(dest, backupManifestName)
	if err := renameio.WriteFile(path, b.Bytes(), 0o600, renameio.WithTempDir(dest)); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if os.Geteuid() == 0 {
		os.Lchown(path, int(src.owner.UID), int(src.owner.GID))
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
func ownFiles(dest string, src *source) ([]string, error) {
	var out []string
	names, err := readDirNames(filepath.Join(dest, manifest.DirName))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		rel := manifest.DirName + "/" + name
		if rel == heldControl || strings.HasPrefix(name, ".") {
			continue
		}
		out = append(out, rel)
	}
	for _, ts := range src.tablespaces {
		if _, err := os.Stat(filepath.Join(ts.new, tablespaceMarker)); err == nil {
			out = append(out, "pg_tblspc/"+ts.oid+"/"+tablespaceMarker)
		}
	}
	return out, nil
}

// refreshBackupManifest rewrites the backup_manifest that the cold pass
// wrote, after pgtwopass changed its own files in the sealed copy (the
// server timings recorded after the restart).
func refreshBackupManifest(dest string, src *source) error {
	if _, err := os.Lstat(filepath.Join(dest, backupManifestName)); err != nil {
		return nil // not asked for, or a dry run
	}
	if err := writeBackupManifest(dest, src); err != nil {
		return fmt.Errorf("failed to rewrite backup_manifest (pg_verifybackup will report %s/%s): %w", manifest.DirName, timingsName, err)
	}
	return nil
}
