package sync

import (
	"context"

	"github.com/pgtwopass/pgtwopass/pkg/sync/destination"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
	"github.com/pgtwopass/pgtwopass/pkg/sync/remote"
)

// Status reads the manifest of the copy in o.Dest, on this host or on
// another. It writes nothing.
func Status(ctx context.Context, o Options) (*CopyStatus, error) {
	d, err := copyOnly(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Status(ctx)
}

// VerifyManifest reads every file of the copy in o.Dest, on this host or on
// another, and compares it with the manifest: block hashes, CRC-32C and
// size; files the manifest does not know and records whose file is gone
// are differences too. It needs no source and writes nothing.
func VerifyManifest(ctx context.Context, o Options) ([]Difference, error) {
	o.Source = "-"
	if err := o.validate(); err != nil {
		return nil, err
	}
	d, err := copyOnly(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.VerifyManifest(ctx, o.Jobs, o.excluder())
}

// copyOnly returns the destination of a command that needs no source.
func copyOnly(ctx context.Context, o *Options) (pass.Destination, error) {
	if o.Dest == "" {
		return nil, inputErr("give the copy's directory", "missing DEST")
	}
	if o.Observer == nil {
		o.Observer = pass.NopObserver{}
	}
	if _, ok := ParseRemote(o.Dest); ok {
		return remote.Dial(ctx, o.Dest, o.Remote, destination.Layout{}, o.Observer)
	}
	return destination.New(o.Dest, destination.Layout{}, o.Observer)
}

// Detach removes pgtwopass's state from the copy in o.Dest, on this host or
// on another: for a sealed copy that has become a cluster in use (after a
// cutover), so that no later pass can mistake it for a copy.
func Detach(ctx context.Context, o Options) error {
	d, err := copyOnly(ctx, &o)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Detach(ctx)
}
