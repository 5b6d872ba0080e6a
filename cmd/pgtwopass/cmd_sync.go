package main

import (
	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:      "sync",
		Usage:     "prepare, then finish",
		ArgsUsage: "SRC DEST",
		Description: `sync runs live passes while the server runs (as prepare: while each writes less
than the one before, at most --max-passes), then finish: CHECKPOINT, one more live
pass, the downtime prediction (and --max-downtime), stop, cold pass, seal (and with
--restart, start the server again). The live passes leave little for the cold pass,
so the downtime is short. It takes the flags of prepare and finish.`,
		Flags:  append(append(passFlags(), liveFlags()...), serverFlags()...),
		Action: runSync,
	}
}

func runSync(c *cli.Context) error {
	out, err := newOutput(c)
	if err != nil {
		return err
	}
	o, err := passOptions(c, out.obs)
	if err != nil {
		return out.done(nil, err)
	}
	so, err := serverOptions(c)
	if err != nil {
		return out.done(nil, err)
	}
	res, err := pgsync.Sync(c.Context, o, so)
	return out.done(res, err)
}
