package sync

import (
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/faults"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/destination"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// DefaultMaxPasses bounds the live passes of one prepare or sync.
const DefaultMaxPasses = 5

// Options configures a pass. Source and Dest are required.
type Options struct {
	Source string
	Dest   string
	// BlockSize is the unit of comparison and of writes. 0 takes the
	// manifest's, or DefaultBlockSize for a new copy.
	BlockSize int
	// Jobs is how many workers read, hash and write; 0 means one per CPU.
	Jobs int
	// Excludes are extra patterns (see DefaultExcludes for their syntax).
	Excludes []string
	// NoDefaultExcludes copies what DefaultExcludes leaves out.
	NoDefaultExcludes bool
	// TablespaceMap maps the directory of each tablespace (the target of
	// its link in pg_tblspc) to the directory of its copy, as
	// pg_basebackup's --tablespace-mapping.
	TablespaceMap map[string]string
	// WALDir puts the copy's WAL in this directory, with DEST/pg_wal a link
	// to it (as pg_basebackup --waldir). A later pass keeps the WAL where an
	// earlier one put it.
	WALDir string
	// AllowStarted refreshes a copy that has run since its seal (a test
	// start, an abandoned cutover), discarding what it changed; without it
	// such a copy is refused, since it may be a new primary.
	AllowStarted bool
	// MkPath creates the missing parents of DEST, of each tablespace's copy
	// and of WALDir (as rsync --mkpath); without it they must exist.
	MkPath bool
	// DryRun compares stats with the manifest and reports what a pass
	// would read and delete, without reading contents or writing anything.
	DryRun bool
	// MaxPasses bounds the live passes of Prepare and Sync, which repeat
	// while each pass writes fewer bytes than the one before; 0 means
	// DefaultMaxPasses.
	MaxPasses int
	// ColdPass is ColdChecksum (""), ColdQuick or ColdWAL.
	ColdPass string
	// QuickMargin is the safe horizon of the quick cold pass; 0 means
	// DefaultQuickMargin.
	QuickMargin time.Duration
	// BackupManifest makes the cold pass write PostgreSQL's backup_manifest
	// into the copy, for pg_verifybackup.
	BackupManifest bool
	// AllowCrashed lets the cold pass copy a source that was not shut down
	// cleanly (pg_controldata state "in production" with no server running).
	AllowCrashed bool
	// Remote says how to reach a Dest on another host ([user@]host:PATH).
	Remote RemoteOptions
	// Observer receives events and progress; nil discards them.
	Observer Observer
}

func (o *Options) validate() error {
	if o.Source == "" || o.Dest == "" {
		return inputErr("give both SRC and DEST", "missing SRC or DEST")
	}
	if o.BlockSize != 0 && !manifest.ValidBlockSize(o.BlockSize) {
		return inputErr("use a power of two from 4096 to 16777216, e.g. --block-size 8192",
			"invalid block size %d", o.BlockSize)
	}
	if o.Jobs < 0 {
		return inputErr("use --jobs 1 or more", "invalid --jobs %d", o.Jobs)
	}
	switch o.ColdPass {
	case "":
		o.ColdPass = ColdChecksum
	case ColdChecksum, ColdQuick, ColdWAL:
	default:
		return inputErr("use --cold-pass=checksum (read every block), quick or wal", "invalid --cold-pass %q", o.ColdPass)
	}
	if o.WALDir != "" && !filepath.IsAbs(o.WALDir) {
		return inputErr("give an absolute path, e.g. --waldir /srv/wal/main", "invalid --waldir %q: the directory of the copy's WAL must be an absolute path", o.WALDir)
	}
	if o.MaxPasses < 0 {
		return inputErr("use --max-passes 1 or more", "invalid --max-passes %d", o.MaxPasses)
	}
	if o.MaxPasses == 0 {
		o.MaxPasses = DefaultMaxPasses
	}
	if o.QuickMargin <= 0 {
		o.QuickMargin = DefaultQuickMargin
	}
	if m := faults.Hooks.QuickMargin; m > 0 {
		o.QuickMargin = m // a test's
	}
	if o.Jobs == 0 {
		o.Jobs = runtime.NumCPU()
	}
	for _, p := range o.Excludes {
		if _, err := path.Match(p, ""); err != nil || p == "" || strings.HasPrefix(p, "/") {
			return inputErr("patterns are shell globs relative to the data directory, e.g. --exclude 'log/*'",
				"invalid --exclude pattern %q", p)
		}
	}
	if o.Observer == nil {
		o.Observer = pass.NopObserver{}
	}
	return nil
}

// layout says where the parts of the copy outside DEST go.
func (o *Options) layout(src *source) destination.Layout {
	return destination.Layout{Tablespaces: src.tablespaceDirs(), WALDir: o.WALDir}
}

func (o *Options) excluder() pass.Excluder { return pass.NewExcluder(o.NoDefaultExcludes, o.Excludes) }
