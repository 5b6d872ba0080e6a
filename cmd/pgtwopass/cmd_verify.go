package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "compare a stopped source with its copy, byte for byte",
		ArgsUsage: "SRC DEST | --manifest-only DEST",
		Description: `verify reads SRC and DEST in full, independently of the manifest, and prints
every difference, one per line: entries missing or extra, types, modes, owners (as
root), symlink targets, sizes, and blocks whose bytes differ. The server on SRC must
be stopped. It changes nothing. Exit status 4 means the trees differ.

With --manifest-only it needs no source: it reads every file of the copy and
compares it with the manifest (block hashes, CRC-32C, sizes), which finds a copy
damaged since pgtwopass wrote it.`,
		Flags: append(append(commonFlags(), treeFlags()...),
			&cli.BoolFlag{Name: "manifest-only", Usage: "compare the copy with its manifest only; takes DEST alone"}),
		Action: runVerify,
	}
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

func runVerify(c *cli.Context) error {
	out, err := newOutput(c)
	if err != nil {
		return err
	}
	var diffs []pgsync.Difference
	if c.Bool("manifest-only") {
		if c.NArg() != 1 {
			return usagef("verify --manifest-only needs one argument, DEST; got %d", c.NArg())
		}
		remote, rerr := remoteOptions(c)
		if rerr != nil {
			return rerr
		}
		diffs, err = pgsync.VerifyManifest(c.Context, pgsync.Options{Dest: c.Args().First(), Jobs: c.Int("jobs"), Excludes: c.StringSlice("exclude"),
			Remote: remote, Observer: out.obs})
	} else {
		var o pgsync.Options
		if o, err = passOptions(c, out.obs); err != nil {
			return err
		}
		diffs, err = pgsync.Verify(c.Context, o)
	}
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
		if len(diffs) == 0 && c.Bool("manifest-only") {
			fmt.Fprintln(out.stdout, "the copy matches its manifest")
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
