package destination

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// markerFor is what the marker in the copy of tablespace oid of the cluster
// sysID says.
func markerFor(oid string, sysID uint64) []byte {
	return fmt.Appendf(nil, "pgtwopass copy of tablespace %s of the cluster with database system identifier %d\n", oid, sysID)
}

// markTablespaces writes the marker into each tablespace's copy.
func (d *Local) markTablespaces() error {
	for _, oid := range sortedKeys(d.tsNew) {
		new := d.tsNew[oid]
		if err := os.MkdirAll(new, 0o700); err != nil {
			return fmt.Errorf("failed to create %s: %w", new, err)
		}
		p := filepath.Join(new, pass.TablespaceMarker)
		if err := renameio.WriteFile(p, markerFor(oid, d.sysID), 0o600, renameio.WithTempDir(new)); err != nil {
			return fmt.Errorf("failed to write %s: %w", p, err)
		}
		if d.asRoot {
			os.Lchown(p, int(d.owner.UID), int(d.owner.GID))
		}
		if err := manifest.SyncDir(new); err != nil {
			return err
		}
		if err := manifest.SyncDir(filepath.Dir(new)); err != nil {
			return err
		}
	}
	return nil
}
