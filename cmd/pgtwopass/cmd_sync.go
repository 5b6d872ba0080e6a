package main

import (
	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func syncCommand() *command {
	c := define(&cli.Command{
		Name:      "sync",
		Usage:     "prepare, then finish",
		ArgsUsage: "SRC DEST",
		Description: `sync runs live passes while the server runs (as prepare: while each writes less
than the one before, at most --max-passes), then finish: CHECKPOINT, one more live
pass, the downtime prediction (and --max-downtime), stop, cold pass, seal (and with
--restart, start the server again). The live passes leave little for the cold pass,
so the downtime is short. It takes the flags of prepare and finish.`,
		Flags: flags(copyFlags(), writeFlags(), liveFlags(), serverFlags(), coldFlags(), connectFlags(), sendFlags(), logFlags(), reportFlags()),
	}, runParser(readWrite, readLive, readSend, readServer, readCold), runSync)
	c.examples = []example{
		{"Copy a cluster to another host over ssh, with a few seconds of downtime.",
			"pgtwopass sync --restart --compress -e 'ssh -p 2222 -i ~/.ssh/id' /tmp/ex/main root@127.0.0.1:/tmp/ex/remote"},
		{"Move a cluster to a new disk on this host.",
			"pgtwopass sync --restart /var/lib/postgresql/15/main /mnt/new/main"},
	}
	c.exits = []int{exitOK, exitFailure, exitBadInput, exitBudget}
	return c
}

func runSync(c *cli.Context, o runOptions) error {
	out, err := newOutput(c, o.Output)
	if err != nil {
		return err
	}
	out.quick(o.Pass)
	out.holdServer(o.Server.Restart)
	o.Pass.Observer = out.obs
	res, err := pgsync.Sync(c.Context, o.Pass, o.Server)
	return out.done(res, err)
}
