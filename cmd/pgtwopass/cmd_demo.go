package main

import (
	"github.com/urfave/cli/v2"

	"github.com/pgtwopass/pgtwopass/internal/demo"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run the main job on scratch clusters it creates",
		Description: `demo creates a scratch cluster with data checksums, loads pgbench data, runs a
pgbench write load, runs sync while the load runs (live pass, CHECKPOINT, stop, cold
pass, seal, restart), starts the copy on another port, and shows that source and
copy hold the same data. It prints the downtime and what each pass read and wrote,
and where the clusters are (--cleanup removes them). As root it runs PostgreSQL as
the postgres OS user (--run-as).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "create the clusters in `DIR` (default: a new temporary directory)"},
			&cli.IntFlag{Name: "scale", Value: 20, Usage: "pgbench scale of the source (20 is about 300 MB)"},
			&cli.IntFlag{Name: "clients", Value: 4, Usage: "pgbench clients of the write load"},
			&cli.StringFlag{Name: "run-as", Value: "postgres", Usage: "OS `USER` that runs PostgreSQL when pgtwopass runs as root"},
			&cli.BoolFlag{Name: "cleanup", Usage: "remove the clusters at the end"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "workers of the passes (default: one per CPU)"},
		},
		Action: runDemo,
	}
}

func runDemo(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("demo takes no arguments")
	}
	// The demo prints its own steps, the engine's included, as plain text.
	_, err := demo.Run(c.Context, demo.Options{
		Dir: c.String("dir"), Scale: c.Int("scale"), Clients: c.Int("clients"), RunAs: c.String("run-as"),
		Cleanup: c.Bool("cleanup"), Jobs: c.Int("jobs"),
	}, c.App.Writer)
	return err
}
