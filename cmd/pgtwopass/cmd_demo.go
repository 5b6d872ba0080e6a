package main

import (
	"github.com/urfave/cli/v2"

	"github.com/pgtwopass/pgtwopass/internal/demo"
)

func demoCommand() *command {
	c := define(&cli.Command{
		Name:  "demo",
		Usage: "run the main job on scratch clusters it creates",
		Description: `demo creates a scratch cluster with data checksums, loads pgbench data, runs a
pgbench write load, runs sync while the load runs (live pass, CHECKPOINT, stop, cold
pass, seal, restart), starts the copy on another port, and shows that source and
copy hold the same data. It prints the size of the cluster, the downtime and what
each pass read and wrote, and where the clusters are (--cleanup removes them). As
root it runs PostgreSQL as the postgres OS user (--run-as).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", DefaultText: "a new temporary directory", Usage: "create the clusters in `DIR`"},
			&cli.IntFlag{Name: "scale", Value: demo.DefaultScale, Usage: "pgbench scale `N` of the source; the data directory takes about " + demo.SizePerScale + " per unit of scale (tables, indexes and WAL)"},
			&cli.IntFlag{Name: "clients", Value: demo.DefaultClients, Usage: "`N` pgbench clients of the write load"},
			&cli.StringFlag{Name: "run-as", Value: demo.DefaultRunAs, Usage: "OS `USER` that runs PostgreSQL when pgtwopass runs as root"},
			&cli.BoolFlag{Name: "cleanup", Usage: "remove the clusters at the end"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, DefaultText: "one per CPU", Usage: "`N` workers of the passes"},
		},
	}, parseDemo, runDemo)
	c.examples = []example{
		{"The main job on a scratch cluster of pgbench scale 20, removed at the end.",
			"pgtwopass demo --cleanup"},
		{"A larger cluster, kept in /tmp/demo to look at.",
			"pgtwopass demo --scale 100 --dir /tmp/demo"},
	}
	c.exits = []int{exitOK, exitFailure, exitBadInput}
	return c
}

func parseDemo(c *cli.Context) (demo.Options, error) {
	if err := argsNeeded(c); err != nil {
		return demo.Options{}, err
	}
	if c.Int("scale") < 1 || c.Int("clients") < 1 || c.IsSet("jobs") && c.Int("jobs") < 1 {
		return demo.Options{}, usagef("--scale, --clients and --jobs take a number of 1 or more")
	}
	return demo.Options{
		Dir: c.String("dir"), Scale: c.Int("scale"), Clients: c.Int("clients"), RunAs: c.String("run-as"),
		Cleanup: c.Bool("cleanup"), Jobs: c.Int("jobs"),
	}, nil
}

func runDemo(c *cli.Context, o demo.Options) error {
	// The demo prints its own steps, the engine's included, as plain text.
	_, err := demo.Run(c.Context, o, c.App.Writer)
	return err
}
