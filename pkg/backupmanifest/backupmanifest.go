// Package backupmanifest writes PostgreSQL's backup_manifest (version 1),
// the file that pg_verifybackup checks a base backup against: every file
// with its size, modification time and CRC-32C, the WAL range the backup
// needs, and a SHA-256 of the whole. pgtwopass writes one into a sealed
// copy (finish --backup-manifest), so that PostgreSQL's own tool can check
// the copy independently of pgtwopass.
//
// [New] starts one, [Writer.Add] lists a file, [Writer.Bytes] ends it;
// [OfCopy] makes the one of a pgtwopass copy.
package backupmanifest

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
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
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

// OfCopy returns the backup_manifest of a pgtwopass copy in dir, from the
// records of its manifest r: every file but pg_wal's (left out, as
// pg_basebackup does), with its record's size, mtime and CRC-32C; crcOf
// gives the CRC-32C of a file whose record has none (manifest.FlagNoCRC32C).
// own lists the files pgtwopass keeps in the copy (relative to dir), read as
// they are now: pg_verifybackup reports files it does not know. The WAL
// range is the checkpoint lsn on timeline tli.
func OfCopy(r *manifest.Reader, dir string, own []string, crcOf func(rel string) (uint32, error), tli, lsn string) ([]byte, error) {
	bm := New()
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if f.Path == "pg_wal" || strings.HasPrefix(f.Path, "pg_wal/") {
			continue
		}
		crc := f.CRC32C
		if f.Flags&manifest.FlagNoCRC32C != 0 {
			if crc, err = crcOf(f.Path); err != nil {
				return nil, err
			}
		}
		bm.Add(f.Path, f.Dest.Size, time.Unix(0, f.Dest.Mtime), crc)
	}
	for _, rel := range own {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		bm.Add(rel, int64(len(data)), fi.ModTime(), crc32c.Checksum(data))
	}
	return bm.Bytes(tli, lsn, lsn)
}
