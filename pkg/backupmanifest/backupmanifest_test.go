package backupmanifest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestManifestIsWhatPgVerifybackupReads: the JSON parses, each file is
// listed with its fields (a path that is not UTF-8 as Encoded-Path, the
// CRC's bytes in memory order), and Manifest-Checksum is the SHA-256 of
// everything before it, as pg_verifybackup checks.
func TestManifestIsWhatPgVerifybackupReads(t *testing.T) {
	w := New()
	w.Add("base/1/1259", 8192, time.Date(2026, 11, 27, 14, 20, 6, 0, time.UTC), 0x01020304)
	w.Add("odd\xff", 3, time.Unix(0, 0), 0)
	b, err := w.Bytes("1", "0/15D7A28", "0/15D7A28")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Version int `json:"PostgreSQL-Backup-Manifest-Version"`
		Files   []struct {
			Path, EncodedPath, LastModified, Checksum string
			Size                                      int64
		}
		WAL []struct {
			Timeline int
			Start    string `json:"Start-LSN"`
		} `json:"WAL-Ranges"`
		Sum string `json:"Manifest-Checksum"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("the manifest is JSON: %v\n%s", err, b)
	}
	if m.Version != 1 || len(m.Files) != 2 || len(m.WAL) != 1 || m.WAL[0].Timeline != 1 || m.WAL[0].Start != "0/15D7A28" {
		t.Fatalf("version, files and WAL range as written: %+v", m)
	}
	if !strings.Contains(string(b), `"Encoded-Path": "6f6464ff"`) || !strings.Contains(string(b), `"Checksum": "04030201"`) ||
		!strings.Contains(string(b), `"Last-Modified": "2026-11-27 14:20:06 GMT"`) {
		t.Errorf("Encoded-Path for a path that is not UTF-8, the CRC in memory order, the time as PostgreSQL writes it:\n%s", b)
	}
	i := strings.Index(string(b), `"Manifest-Checksum"`)
	if want := fmt.Sprintf("%x", sha256.Sum256(b[:i])); m.Sum != want {
		t.Errorf("Manifest-Checksum %s, want the SHA-256 of what precedes it, %s", m.Sum, want)
	}
	if _, err := New().Bytes("0", "x", "y"); err == nil {
		t.Errorf("a WAL range that is not a timeline and LSNs is refused")
	}
}
