package destination

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// probeClocks measures the timestamps of the file systems the copy is
// written on: DEST's (in DEST/.pgtwopass) and those of the tablespaces'
// copies. The safe horizon (package ledger) needs their granularity.
func (d *Local) probeClocks() error {
	if d.probed {
		return nil // once a session
	}
	d.probed = true
	if err := d.clock.Probe(filepath.Join(d.dir, manifest.DirName)); err != nil {
		return err
	}
	for _, p := range d.parts {
		if err := d.clock.Probe(p.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
