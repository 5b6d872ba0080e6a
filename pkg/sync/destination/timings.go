package destination

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// timingsName is the file in DEST/.pgtwopass that keeps how long the
// source's last stop and start took.
const timingsName = "server.json"

func readTimings(dest string) pass.ServerTimings {
	b, err := os.ReadFile(filepath.Join(dest, manifest.DirName, timingsName))
	if err != nil {
		return pass.ServerTimings{}
	}
	return pass.ParseTimings(b)
}

// writeTimings records the server timings atomically.
func writeTimings(dest string, t pass.ServerTimings) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(dest, manifest.DirName)
	if err := renameio.WriteFile(filepath.Join(dir, timingsName), append(b, '\n'), 0o600, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	return manifest.SyncDir(dir)
}

// Timings returns the server timings the copy keeps.
func (d *Local) Timings(context.Context) pass.ServerTimings { return readTimings(d.dir) }

// SaveTimings records the server's stop and start times in the copy. The
// file is one of pgtwopass's own: it goes to the data directory's owner, and
// a backup_manifest that this session's cold pass wrote is rewritten to list
// it as it now is.
func (d *Local) SaveTimings(_ context.Context, t pass.ServerTimings) error {
	if err := writeTimings(d.dir, t); err != nil {
		return fmt.Errorf("could not record the server's stop and start times: %w", err)
	}
	d.giveState()
	return d.refreshBackupManifest()
}
