package destination

import (
	"context"
	"fmt"

	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// Timings returns the server timings the copy keeps.
func (d *Local) Timings(context.Context) pass.ServerTimings { return pass.ReadTimings(d.dir) }

// SaveTimings records the server's stop and start times in the copy. The
// file is one of pgtwopass's own: it goes to the data directory's owner, and
// a backup_manifest that this session's cold pass wrote is rewritten to list
// it as it now is.
func (d *Local) SaveTimings(_ context.Context, t pass.ServerTimings) error {
	if err := pass.WriteTimings(d.dir, t); err != nil {
		return fmt.Errorf("could not record the server's stop and start times: %w", err)
	}
	d.giveState()
	return d.refreshBackupManifest()
}
