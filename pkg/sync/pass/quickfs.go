package pass

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Cold pass modes.
const (
	// ColdChecksum reads every source block (the default).
	ColdChecksum = "checksum"
	// ColdQuick skips files whose stat proves them unchanged since a copy
	// that began safely after their last change (the safe horizon).
	ColdQuick = "quick"
	// ColdWAL reads, of the files whose records are good, only the blocks
	// the WAL since the CHECKPOINT names (the WAL-guided cold pass).
	ColdWAL = "wal"
)

// DefaultQuickMargin is the safe horizon: a file is trusted by its stat in
// the quick cold pass only if its ctime was older than the start of its last
// read by more than this. Timestamps come from a coarse clock (1-4 ms ticks
// before Linux 6.13; a second or more on some file systems), and a write in
// the same tick as a stat can leave every stat field unchanged: the margin
// keeps such files out of reach.
const DefaultQuickMargin = 2 * time.Second

// networkFS names the file systems whose stat cannot be trusted for the
// quick cold pass: clients cache attributes, and servers' clocks differ.
var networkFS = map[int64]string{
	0x6969:     "NFS",
	0x517b:     "SMB",
	0xff534d42: "CIFS",
	0xfe534d42: "SMB2",
	0x00c36400: "Ceph",
	0x01021997: "9p",
	0x65735546: "FUSE",
	0x5346414f: "AFS",
	0x0bd00bd0: "Lustre",
	0x01161970: "GFS2",
	0x7461636f: "OCFS2",
}

// FSType returns the statfs(2) type (the file system's magic number) of
// the file system that holds path. Tests replace it to stand in for a
// network file system.
var FSType = statfsType

func statfsType(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Type), nil
}

// CheckQuickFS refuses the quick cold pass on network file systems.
func CheckQuickFS(paths ...string) error {
	for _, path := range paths {
		typ, err := FSType(path)
		if err != nil {
			return fmt.Errorf("failed to statfs %s: %w", path, err)
		}
		if name, ok := networkFS[typ]; ok {
			return InputErr("use the default --cold-pass=checksum, which reads every block",
				"--cold-pass=quick trusts file stats, which a %s file system (%s) does not make reliable", name, path)
		}
	}
	return nil
}

// ExistingAncestor returns path or its nearest ancestor that exists: the
// file system a DEST that does not exist yet will be created on.
func ExistingAncestor(path string) string {
	for {
		if _, err := os.Stat(path); err == nil || filepath.Dir(path) == path {
			return path
		}
		path = filepath.Dir(path)
	}
}
