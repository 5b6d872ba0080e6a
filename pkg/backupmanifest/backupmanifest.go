// Package backupmanifest writes PostgreSQL's backup_manifest (version 1),
// the file that pg_verifybackup checks a base backup against: every file
// with its size, modification time and CRC-32C, the WAL range the backup
// needs, and a SHA-256 of the whole. pgtwopass writes one into a sealed
// copy (finish --backup-manifest), so that PostgreSQL's own tool can check
// the copy independently of pgtwopass.
//
// [New] starts one, [Writer.Add] lists a file, [Writer.Bytes] ends it.
package backupmanifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"
	"regexp"
	"time"
	"unicode/utf8"
)

// Writer builds a backup_manifest in memory.
type Writer struct {
	b bytes.Buffer
	n int
}

// New starts a backup_manifest.
func New() *Writer {
	w := &Writer{}
	w.b.WriteString("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n")
	return w
}

// Add lists the file path (relative to the data directory, slash
// separated) with its size, modification time and CRC-32C.
func (w *Writer) Add(path string, size int64, mtime time.Time, crc uint32) {
	if w.n > 0 {
		w.b.WriteString(",\n")
	}
	w.n++
	if utf8.ValidString(path) {
		js, _ := json.Marshal(path)
		fmt.Fprintf(&w.b, `{ "Path": %s, `, js)
	} else {
		fmt.Fprintf(&w.b, `{ "Encoded-Path": "%s", `, hex.EncodeToString([]byte(path)))
	}
	// PostgreSQL prints the CRC's bytes in memory order (little-endian).
	fmt.Fprintf(&w.b, `"Size": %d, "Last-Modified": "%s", "Checksum-Algorithm": "CRC32C", "Checksum": "%08x" }`,
		size, mtime.UTC().Format("2006-01-02 15:04:05 GMT"), bits.ReverseBytes32(crc))
}

var (
	timelineRE = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
	lsnRE      = regexp.MustCompile(`^[0-9A-F]{1,8}/[0-9A-F]{1,8}$`)
)

// Bytes ends the manifest with its WAL range, one timeline from the LSN
// start to end (as PostgreSQL prints them, "16/B374D848"), and its checksum,
// and returns it.
func (w *Writer) Bytes(timeline, start, end string) ([]byte, error) {
	if !timelineRE.MatchString(timeline) || !lsnRE.MatchString(start) || !lsnRE.MatchString(end) {
		return nil, fmt.Errorf("no WAL range for the backup_manifest (timeline %q, LSNs %q and %q)", timeline, start, end)
	}
	fmt.Fprintf(&w.b, "\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": %s, \"Start-LSN\": \"%s\", \"End-LSN\": \"%s\" }\n],\n", timeline, start, end)
	sum := sha256.Sum256(w.b.Bytes())
	fmt.Fprintf(&w.b, "\"Manifest-Checksum\": \"%x\"}\n", sum)
	return w.b.Bytes(), nil
}
