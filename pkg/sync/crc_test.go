package sync

import (
	"context"
	"encoding/json"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// backupManifestCRCs reads DEST/backup_manifest: path -> CRC-32C.
func backupManifestCRCs(t *testing.T, dst string) map[string]uint32 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dst, pass.BackupManifestName))
	if err != nil {
		t.Fatalf("the cold pass with BackupManifest must write a backup_manifest: %v", err)
	}
	var m struct {
		Files []struct {
			Path     string `json:"Path"`
			Checksum string `json:"Checksum"`
		} `json:"Files"`
	}
	must(t, json.Unmarshal(data, &m))
	out := map[string]uint32{}
	for _, f := range m.Files {
		v, err := strconv.ParseUint(f.Checksum, 16, 32)
		must(t, err)
		out[f.Path] = bits.ReverseBytes32(uint32(v)) // printed in memory order
	}
	return out
}

// wantBackupManifestCRCs fails unless the backup_manifest lists the CRC-32C
// of every regular file of the copy (pg_wal and .pgtwopass aside).
func wantBackupManifestCRCs(t *testing.T, src, dst string) {
	t.Helper()
	got := backupManifestCRCs(t, dst)
	for _, rel := range regularFiles(t, src) {
		data, err := os.ReadFile(filepath.Join(dst, rel))
		must(t, err)
		c, ok := got[rel]
		switch {
		case !ok:
			t.Errorf("backup_manifest does not list %s", rel)
		case c != crc32c.Checksum(data):
			t.Errorf("backup_manifest gives %s the CRC-32C %08x, its bytes have %08x: pg_verifybackup would fail the copy", rel, c, crc32c.Checksum(data))
		}
	}
}

func testColdPassWithBackupManifestComputesEveryCRC(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	rewriteBlock(t, src, "base/1/16384", 600)
	if _, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2, BackupManifest: true}); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, dst, false)
	wantBackupManifestCRCs(t, src, dst)
}

// A quick cold pass with a backup_manifest may trust files whose records a
// cold pass without one left without a CRC-32C: their CRC-32C then comes
// from the copy's bytes.
func testQuickColdPassWithBackupManifestFillsInMissingCRCs(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	time.Sleep(60 * time.Millisecond) // past the horizon when the copy reads them
	mustPass(t, dk, manifest.Cold, src, dst)
	noCRC := 0
	for _, f := range checkRecords(t, dst, true) {
		if f.Flags&manifest.FlagNoCRC32C != 0 {
			noCRC++
		}
	}
	if noCRC == 0 {
		t.Fatal("the premise: a cold pass without BackupManifest leaves records without CRC-32C")
	}
	st, err := runPass(t, dk, context.Background(), manifest.Cold, src, dst, Options{Jobs: 2, ColdPass: ColdQuick,
		QuickMargin: 50 * time.Millisecond, BackupManifest: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.FilesSkipped == 0 {
		t.Fatal("the premise: the quick cold pass trusts files by their stat")
	}
	wantBackupManifestCRCs(t, src, dst)
}
