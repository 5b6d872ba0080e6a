package main

import (
	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func prepareCommand() *cli.Command {
	return &cli.Command{
		Name:      "prepare",
		Usage:     "live pass: copy what changed while the server keeps running",
		ArgsUsage: "SRC DEST",
		Description: `prepare copies the data directory SRC into DEST while the server runs. A file
whose size, mtime, ctime and inode equal the manifest's record is trusted; every other
file is read in large chunks, hashed block by block (xxh3-128) and only the blocks
whose hashes differ are written. DEST may be missing, empty or an earlier copy of the
same cluster, here or on another host ([user@]host:PATH, see --rsh). The copy is left unsealed: it cannot be started until finish completes.
prepare is safe to repeat, and a timer may run it nightly to keep a copy warm
(contrib/systemd, docs/runbook.md). It repeats live passes while each writes less
than the one before, at most --max-passes. On a terminal it draws a bar per pass
(--progress, --no-progress); --metrics-file records the run for Prometheus.`,
		Flags:  append(passFlags(), liveFlags()...),
		Action: runPrepare,
	}
}

func runPrepare(c *cli.Context) error {
	out, err := newOutput(c)
	if err != nil {
		return err
	}
	o, err := passOptions(c, out.obs)
	if err != nil {
		return out.done(nil, err)
	}
	res, err := pgsync.Prepare(c.Context, o)
	return out.done(res, err)
}
