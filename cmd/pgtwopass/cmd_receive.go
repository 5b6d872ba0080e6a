package main

import (
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func receiveCommand() *command {
	c := define(&cli.Command{
		Name:      "receive",
		Usage:     "the receiving end of a copy to another host (started by pgtwopass over a remote shell)",
		ArgsUsage: "PATH",
		Description: `receive holds the copy in PATH for a pgtwopass on another host, which starts it
through a remote shell (ssh HOST pgtwopass receive PATH) when DEST is [user@]host:PATH,
and speaks the wire protocol (docs/protocol.md) with it on standard input and output.
It is not meant to be run by hand. It writes only below PATH, and below the
directories that --tablespace and --waldir name, whatever the sender sends; it keeps the copy's
lock for the session, and a session that ends before the sender's commit leaves the
copy unsealed.`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "tablespace", Usage: "write the copy of tablespace OID below DIR (`OID=DIR`)"},
			&cli.StringFlag{Name: "waldir", Usage: "write the copy's WAL below `DIR`, with PATH/pg_wal a link to it"},
		},
	}, parseReceive, runReceive)
	c.examples = []example{
		{"What pgtwopass sync SRC db2:/srv/postgresql/15/main runs on db2 through ssh.",
			"pgtwopass receive /srv/postgresql/15/main"},
	}
	c.exits = []int{exitOK, exitFailure, exitBadInput}
	return c
}

func parseReceive(c *cli.Context) (pgsync.ReceiveOptions, error) {
	if err := argsNeeded(c, "PATH"); err != nil {
		return pgsync.ReceiveOptions{}, err
	}
	ts := map[string]string{}
	for _, v := range c.StringSlice("tablespace") {
		oid, dir, ok := strings.Cut(v, "=")
		if !ok || oid == "" || !strings.HasPrefix(dir, "/") {
			return pgsync.ReceiveOptions{}, &pgsync.InputError{What: "invalid --tablespace " + v, Hint: "give OID=DIR with an absolute DIR"}
		}
		ts[oid] = dir
	}
	wal := c.String("waldir")
	if wal != "" && !strings.HasPrefix(wal, "/") {
		return pgsync.ReceiveOptions{}, &pgsync.InputError{What: "invalid --waldir " + wal, Hint: "give an absolute DIR"}
	}
	return pgsync.ReceiveOptions{Dir: c.Args().First(), Tablespaces: ts, WALDir: wal, Program: program()}, nil
}

func runReceive(c *cli.Context, o pgsync.ReceiveOptions) error {
	return pgsync.Receive(c.Context, os.Stdin, os.Stdout, o)
}
