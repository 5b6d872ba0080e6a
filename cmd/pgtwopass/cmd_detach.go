package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func detachCommand() *command {
	c := define(&cli.Command{
		Name:      "detach",
		Usage:     "remove pgtwopass's state from a copy that is now a cluster in use",
		ArgsUsage: "DEST",
		Description: `detach removes DEST/.pgtwopass and the markers in the tablespaces' copies, so that
DEST is an ordinary data directory: after a cutover, the copy is the new primary,
and no prepare, finish or sync may write into it again (they refuse it from then
on, as any directory pgtwopass did not make). The data files are not touched; a
server may run on DEST meanwhile. An unsealed copy is refused: its pg_control is
held in DEST/.pgtwopass until a cold pass completes.

prepare, finish and sync already refuse a copy that has run since its seal (its
pg_control changed); detach is the step of the runbook after the cutover, with
disabling any timer that refreshes the copy.`,
		Flags: connectFlags(),
	}, parseDetach, runDetach)
	c.examples = []example{
		{"After the cutover to the copy: it is the new primary now.",
			"pgtwopass detach /tmp/ex/copy"},
	}
	c.exits = []int{exitOK, exitFailure, exitBadInput}
	return c
}

// detachOptions are what detach reads from its command line.
type detachOptions struct {
	Copy pgsync.Options // Dest and Remote
}

func parseDetach(c *cli.Context) (detachOptions, error) {
	if err := argsNeeded(c, "DEST"); err != nil {
		return detachOptions{}, err
	}
	return detachOptions{Copy: pgsync.Options{Dest: c.Args().First(), Remote: connectOptions(c)}}, nil
}

func runDetach(c *cli.Context, o detachOptions) error {
	if err := pgsync.Detach(c.Context, o.Copy); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "detached %s: it is an ordinary data directory now; pgtwopass will not write into it again\n", o.Copy.Dest)
	return nil
}
