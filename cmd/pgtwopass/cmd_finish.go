package main

import (
	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func finishCommand() *cli.Command {
	return &cli.Command{
		Name:      "finish",
		Usage:     "CHECKPOINT, stop the server, cold pass, seal the copy",
		ArgsUsage: "SRC DEST",
		Description: `finish issues a CHECKPOINT, stops the server (pg_ctl stop -m fast, as the data
directory's owner; or --systemd-unit, --stop-command), checks that pg_controldata says
"shut down", then runs the cold pass: every source block is read and hashed and
compared with the manifest, and only changed blocks are written. Everything is
fsynced, then global/pg_control is installed last: the copy is sealed and can be
started. The downtime is one read of the source plus the changed blocks.
DEST may be missing or empty (a full cold copy), here or on another host
([user@]host:PATH, see --rsh). With --restart the server is
started again afterwards, also when the cold pass failed.

Before the stop it runs one more live pass and predicts the downtime from the
rates the passes measured; with --max-downtime it refuses to stop the server when
the prediction exceeds the budget (exit status 3; the copy stays unsealed). On a
terminal it draws a bar per pass and, while the server is down, a line that counts
the downtime (--progress, --no-progress); --metrics-file records the run for
Prometheus, also when it failed.`,
		Flags:  append(passFlags(), serverFlags()...),
		Action: runFinish,
	}
}

func runFinish(c *cli.Context) error {
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
	res, err := pgsync.Finish(c.Context, o, so)
	return out.done(res, err)
}
