package sync

import (
	"context"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// CopyStatus is what the manifest of a copy says.
type CopyStatus struct {
	Dest   string
	Header manifest.Header
	// Sealed: a cold pass completed and global/pg_control is installed,
	// so the copy can be started.
	Sealed bool
}

// Status reads the manifest of the copy in o.Dest, on this host or on
// another. It writes nothing.
func Status(ctx context.Context, o Options) (*CopyStatus, error) {
	d, err := copyOnly(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer d.close()
	return d.status(ctx)
}

// copyOnly returns the destination of a command that needs no source.
func copyOnly(ctx context.Context, o *Options) (dest, error) {
	if o.Dest == "" {
		return nil, inputErr("give the copy's directory", "missing DEST")
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if r, ok := ParseRemote(o.Dest); ok {
		return dialRemote(ctx, r, o, nil)
	}
	return newLocalDest(o.Dest, nil, o.Observer)
}
