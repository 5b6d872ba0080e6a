package main

import (
	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func finishCommand() *command {
	c := define(&cli.Command{
		Name:      "finish",
		Usage:     "CHECKPOINT, stop the server, cold pass, seal the copy",
		ArgsUsage: "SRC DEST",
		Description: `finish issues a CHECKPOINT (as root, connected as the data directory's owner;
if it cannot run, finish stops there: exit status 2), stops the server (a Debian or
Ubuntu cluster with pg_ctlcluster or its systemd unit, another with pg_ctl stop -m
fast as the data directory's owner; or --systemd-unit, --stop-command), checks that
its pg_control says "shut down", then runs the cold pass: every source block is
read and hashed and compared with the manifest, and only changed blocks are
written. Everything is fsynced, then global/pg_control is installed last: the copy
is sealed and can be started. The downtime is one read of the source plus the
changed blocks. DEST may be missing or empty (a full cold copy), here or on another
host ([user@]host:PATH, see --rsh). With --restart the server is started again
afterwards, also when the cold pass failed or was interrupted.

Ctrl-C or SIGTERM stops it at a clean point: a stop or start of the server in
progress runs to its end, and a second signal is reported, not obeyed.

Before the stop it runs one more live pass and predicts the downtime from the
rates the passes measured; with --max-downtime it refuses to stop the server when
the prediction exceeds the budget (exit status 3; the copy stays unsealed). On a
terminal it shows the progress of each pass and, while the server is down, the
downtime so far (--progress, --no-progress); --metrics-file records the run for
Prometheus, also when it failed.`,
		Flags: flags(copyFlags(), writeFlags(), serverFlags(), coldFlags(), connectFlags(), sendFlags(), logFlags(), reportFlags()),
	}, runParser(readWrite, readSend, readServer, readCold), runFinish)
	c.examples = []example{
		{"Stop the server, finish the copy, and start the server again.",
			"pgtwopass finish --restart /tmp/ex/main /tmp/ex/copy"},
		{"Through systemd, and only if the predicted downtime is at most 30 seconds.",
			"pgtwopass finish --restart --systemd-unit postgresql@15-main --max-downtime 30s /var/lib/postgresql/15/main /mnt/new/main"},
	}
	c.exits = []int{exitOK, exitFailure, exitBadInput, exitBudget}
	return c
}

func runFinish(c *cli.Context, o runOptions) error {
	out, err := newOutput(c, o.Output)
	if err != nil {
		return err
	}
	out.quick(o.Pass)
	out.holdServer(o.Server.Restart)
	o.Pass.Observer = out.obs
	res, err := pgsync.Finish(c.Context, o.Pass, o.Server)
	return out.done(res, err)
}
