package pass

import (
	"os"
	"strings"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// Files of a data directory, and of a copy, that both sides know by name.
const (
	// ControlFile is the cluster's pg_control, installed last: the seal.
	ControlFile = "global/pg_control"
	// HeldControl is where the copy keeps its pg_control while it is not
	// sealed, so that a half-finished copy cannot be started.
	HeldControl = manifest.DirName + "/pg_control"
	// BackupManifestName is PostgreSQL's manifest of a base backup, which
	// pg_verifybackup checks.
	BackupManifestName = "backup_manifest"
)

// DefaultBlockSize is PostgreSQL's page size: a changed page costs one
// block write, and the manifest holds 16 bytes per 8 KiB (0.2% of the data).
// docs/design.md explains the choice.
const DefaultBlockSize = 8192

// ChunkSize is how much of a file is read at a time: large sequential
// reads, and the unit by which big files are split across workers.
const ChunkSize = 4 << 20

// bootIDPath is where Linux gives the ID of the current boot.
var bootIDPath = "/proc/sys/kernel/random/boot_id"

// BootID returns the ID of the running kernel's boot ("" if unknown): it
// tells a receiver whether it runs on the sender's host, and a pass mark
// whether the copy's host went down since the mark was left.
func BootID() string {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
