package main

import (
	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func prepareCommand() *command {
	c := define(&cli.Command{
		Name:      "prepare",
		Usage:     "live pass: copy what changed while the server keeps running",
		ArgsUsage: "SRC DEST",
		Description: `prepare copies the data directory SRC into DEST while the server runs. A file
whose size, mtime, ctime and inode equal the manifest's record is trusted; every other
file is read in large chunks, hashed block by block (xxh3-128) and only the blocks
whose hashes differ are written. DEST may be missing, empty or an earlier copy of the
same cluster, here or on another host ([user@]host:PATH, see --rsh). The copy is left
unsealed: it cannot be started until finish completes.

prepare is safe to repeat, and a timer may run it nightly to keep a copy warm
(contrib/systemd, docs/runbook.md). It repeats live passes while each writes less
than the one before, at most --max-passes. On a terminal it shows the progress of
each pass (--progress, --no-progress); --metrics-file records the run for Prometheus.`,
		Flags: flags(copyFlags(), writeFlags(), liveFlags(), connectFlags(), sendFlags(), logFlags(), reportFlags()),
	}, runParser(readWrite, readLive, readSend), runPrepare)
	c.examples = []example{
		{"Copy a cluster while its server runs; run it again to catch up.",
			"pgtwopass prepare /var/lib/postgresql/15/main /mnt/new/main"},
		{"The same, with the options after the arguments, as rsync takes them.",
			"pgtwopass prepare /tmp/ex/main /tmp/ex/copy --jobs 2 --max-passes 3"},
		{"Keep a copy on another host warm, from a nightly timer.",
			"pgtwopass prepare --no-progress --compress --metrics-file /var/lib/prometheus/node-exporter/pgtwopass-main.prom /var/lib/postgresql/15/main db2:/srv/postgresql/15/main"},
	}
	c.exits = []int{exitOK, exitFailure, exitBadInput}
	return c
}

func runPrepare(c *cli.Context, o runOptions) error {
	out, err := newOutput(c, o.Output)
	if err != nil {
		return err
	}
	o.Pass.Observer = out.obs
	res, err := pgsync.Prepare(c.Context, o.Pass)
	return out.done(res, err)
}
