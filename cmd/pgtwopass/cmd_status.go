package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgtwopass/pgtwopass/internal/human"
	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func statusCommand() *command {
	c := define(&cli.Command{
		Name:      "status",
		Usage:     "show what the manifest of a copy says",
		ArgsUsage: "DEST",
		Description: `status reads DEST's manifest and prints the source's database system identifier,
the PostgreSQL version, the block size, the files and bytes recorded, the passes
with their times, and whether the copy is sealed (finished by a cold pass, with
global/pg_control installed) and so can be started. It reads only DEST/.pgtwopass.`,
		Flags: flags([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the status as one JSON object"},
		}, connectFlags()),
	}, parseStatus, runStatus)
	c.examples = []example{
		{"Whether a copy is sealed, and its passes.",
			"pgtwopass status /tmp/ex/copy"},
		{"The same for a copy on another host, as JSON.",
			"pgtwopass status --json root@127.0.0.1:/tmp/ex/remote"},
	}
	c.exits = []int{exitOK, exitFailure, exitBadInput}
	return c
}

// statusOptions are what status reads from its command line.
type statusOptions struct {
	Copy pgsync.Options // Dest and Remote
	JSON bool
}

func parseStatus(c *cli.Context) (statusOptions, error) {
	if err := argsNeeded(c, "DEST"); err != nil {
		return statusOptions{}, err
	}
	return statusOptions{Copy: pgsync.Options{Dest: c.Args().First(), Remote: connectOptions(c)}, JSON: c.Bool("json")}, nil
}

type statusPassJSON struct {
	Kind         string    `json:"kind"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
	BytesRead    int64     `json:"bytes_read"`
	BytesWritten int64     `json:"bytes_written"`
	FilesChanged int64     `json:"files_changed"`
	FilesDeleted int64     `json:"files_deleted"`
}

type statusJSON struct {
	Dest             string           `json:"dest"`
	SystemIdentifier string           `json:"system_identifier"`
	PGVersion        string           `json:"pg_version"`
	BlockSize        uint32           `json:"block_size"`
	Sealed           bool             `json:"sealed"`
	RanSinceSeal     bool             `json:"ran_since_seal"`
	Running          bool             `json:"server_running"`
	Files            uint64           `json:"files"`
	Bytes            uint64           `json:"bytes"`
	Created          time.Time        `json:"created"`
	Passes           []statusPassJSON `json:"passes"`
}

func runStatus(c *cli.Context, o statusOptions) error {
	st, err := pgsync.Status(c.Context, o.Copy)
	if err != nil {
		return err
	}
	h := st.Header
	v := statusJSON{
		Dest: st.Dest, SystemIdentifier: strconv.FormatUint(h.SystemIdentifier, 10), PGVersion: h.PGVersion,
		BlockSize: h.BlockSize, Sealed: st.Sealed, RanSinceSeal: st.RanSinceSeal, Running: st.Running, Files: h.Files, Bytes: h.Bytes, Created: time.Unix(0, h.Created).UTC(),
		Passes: []statusPassJSON{},
	}
	for _, p := range h.Passes {
		v.Passes = append(v.Passes, statusPassJSON{
			Kind: p.Kind.String(), Started: time.Unix(0, p.Started).UTC(), Finished: time.Unix(0, p.Finished).UTC(),
			BytesRead: p.BytesRead, BytesWritten: p.BytesWritten, FilesChanged: p.FilesChanged, FilesDeleted: p.FilesDeleted,
		})
	}
	if o.JSON {
		return writeJSON(c.App.Writer, v)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "copy:                      %s\n", v.Dest)
	fmt.Fprintf(w, "database system identifier: %s\n", v.SystemIdentifier)
	fmt.Fprintf(w, "PostgreSQL version:        %s\n", v.PGVersion)
	fmt.Fprintf(w, "block size:                %d\n", v.BlockSize)
	fmt.Fprintf(w, "files:                     %d (%s)\n", v.Files, human.Bytes(int64(v.Bytes)))
	fmt.Fprintf(w, "first pass:                %s\n", v.Created.Local().Format(time.RFC3339))
	switch {
	case v.RanSinceSeal:
		fmt.Fprintln(w, "sealed:                    no longer: the copy has run as a cluster since its seal; it is not a copy any more (pgtwopass detach)")
	case v.Sealed:
		fmt.Fprintln(w, "sealed:                    yes: finished by a cold pass, the copy can be started")
	default:
		fmt.Fprintln(w, "sealed:                    no: run finish before starting the copy")
	}
	if v.Running {
		fmt.Fprintln(w, "server:                    running on the copy (or its postmaster.pid cannot be read)")
	}
	fmt.Fprintln(w, "passes:")
	for _, p := range v.Passes {
		fmt.Fprintf(w, "  %-4s  %s  %7.1fs  read %s, wrote %s, %d changed, %d deleted\n",
			p.Kind, p.Started.Local().Format(time.RFC3339), p.Finished.Sub(p.Started).Seconds(),
			human.Bytes(p.BytesRead), human.Bytes(p.BytesWritten), p.FilesChanged, p.FilesDeleted)
	}
	return nil
}
