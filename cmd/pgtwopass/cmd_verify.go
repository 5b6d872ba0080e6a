package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func verifyCommand() *command {
	c := define(&cli.Command{
		Name:      "verify",
		Usage:     "compare a stopped source with its copy, byte for byte",
		ArgsUsage: "SRC DEST | --against-seal SRC DEST | --manifest-only DEST",
		Description: `verify reads SRC and DEST in full, independently of the manifest, and prints
every difference, one per line: entries missing or extra, types, modes, owners (as
root), symlink targets, sizes, and blocks whose bytes differ. The server on SRC must
be stopped. It changes nothing. Exit status 4 means the trees differ.

With --manifest-only it needs no source: it reads every file of the copy and
compares it with the manifest (block hashes, CRC-32C, sizes), which finds a copy
damaged since pgtwopass wrote it.

With --against-seal it reads the stopped source in full and compares it with the
copy's manifest as the seal left it, reading nothing of the copy: after a cutover
made with --cold-pass=wal or quick, with the old source still stopped and the copy
already running, it gives the checksum cold pass's proof off the downtime.`,
		Flags: flags([]cli.Flag{
			&cli.BoolFlag{Name: "manifest-only", Usage: "compare the copy with its manifest only; takes DEST alone"},
			&cli.BoolFlag{Name: "against-seal", Usage: "compare the stopped source with the copy's manifest as the seal left it; reads nothing of the copy"},
		}, copyFlags(), connectFlags(), logFlags()),
	}, parseVerify, runVerify)
	c.examples = []example{
		{"Compare a copy with its source, whose server is stopped.",
			"pgtwopass verify /tmp/ex/main /tmp/ex/copy"},
		{"Re-read a copy and compare it with its manifest; no source needed.",
			"pgtwopass verify --manifest-only /tmp/ex/copy"},
		{"After a cutover made with --cold-pass=wal: the old source against the seal.",
			"pgtwopass verify --against-seal /tmp/ex/main /tmp/ex/copy"},
	}
	c.exits = []int{exitOK, exitFailure, exitBadInput, exitDifferences}
	return c
}

// verifyOptions are what verify reads from its command line.
type verifyOptions struct {
	Pass         pgsync.Options
	ManifestOnly bool
	AgainstSeal  bool
	Output       outputOptions
}

func parseVerify(c *cli.Context) (verifyOptions, error) {
	var o verifyOptions
	var err error
	if o.Output, err = outputOptionsOf(c); err != nil {
		return o, err
	}
	o.AgainstSeal = c.Bool("against-seal")
	if o.ManifestOnly = c.Bool("manifest-only"); !o.ManifestOnly {
		o.Pass, err = passOptions(c)
		return o, err
	}
	if o.AgainstSeal {
		return o, &usageError{err: fmt.Errorf("verify takes --manifest-only or --against-seal, not both"),
			hint: "--manifest-only reads the copy, --against-seal the source"}
	}
	for _, name := range []string{"tablespace-map", "block-size"} {
		if c.IsSet(name) {
			return o, &usageError{err: fmt.Errorf("verify --manifest-only takes no --%s", name),
				hint: "it reads no source, and compares the copy block by block as its manifest says"}
		}
	}
	if err := argsNeeded(c, "DEST"); err != nil {
		return o, err
	}
	o.Pass = pgsync.Options{Dest: c.Args().First(), Jobs: c.Int("jobs"), Excludes: c.StringSlice("exclude"),
		NoDefaultExcludes: c.Bool("no-default-excludes"), Remote: connectOptions(c)}
	return o, nil
}

type verifyJSON struct {
	Command     string       `json:"command"`
	Identical   bool         `json:"identical"`
	Differences []difference `json:"differences"`
}

type difference struct {
	Path string `json:"path"`
	What string `json:"what"`
}

func runVerify(c *cli.Context, o verifyOptions) error {
	out, err := newOutput(c, o.Output)
	if err != nil {
		return err
	}
	o.Pass.Observer = out.obs
	var diffs []pgsync.Difference
	switch {
	case o.ManifestOnly:
		diffs, err = pgsync.VerifyManifest(c.Context, o.Pass)
	case o.AgainstSeal:
		diffs, err = pgsync.VerifyAgainstSeal(c.Context, o.Pass)
	default:
		diffs, err = pgsync.Verify(c.Context, o.Pass)
	}
	// The display ends before the results go to stdout.
	out.obs.stopTicker()
	out.ui.close()
	if err != nil {
		return err
	}
	if out.json {
		v := verifyJSON{Command: "verify", Identical: len(diffs) == 0, Differences: []difference{}}
		for _, d := range diffs {
			v.Differences = append(v.Differences, difference{d.Path, d.What})
		}
		if err := writeJSON(out.stdout, v); err != nil {
			return err
		}
	} else {
		for _, d := range diffs {
			fmt.Fprintln(out.stdout, d)
		}
		if len(diffs) == 0 && o.ManifestOnly {
			fmt.Fprintln(out.stdout, "the copy matches its manifest")
		} else if len(diffs) == 0 && o.AgainstSeal {
			fmt.Fprintln(out.stdout, "the source is what the copy was when it was sealed")
		} else if len(diffs) == 0 {
			fmt.Fprintln(out.stdout, "the copy is identical to the source")
		}
	}
	if len(diffs) > 0 {
		out.log.Error("the copy differs from the source", fieldCount(len(diffs)))
		return pgsync.ErrDifferences
	}
	return nil
}

func fieldCount(n int) zap.Field { return zap.Int("differences", n) }
