package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

func commonFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "workers that read, hash and write (default: one per CPU)"},
		&cli.IntFlag{Name: "block-size", Usage: "bytes per block: a power of two from 4096 to 16777216 (default: the copy's, else 8192, PostgreSQL's page size)"},
		&cli.StringSliceFlag{Name: "exclude", Usage: "leave out entries matching `PATTERN` (shell glob; without a slash it matches names at any depth), on top of the default excludes"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object with the results on stdout at the end"},
		&cli.StringFlag{Name: "log-format", Usage: "`console` or json (default: console on a terminal, json otherwise)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log every file changed or deleted"},
	}, remoteFlags()...)
}

// remoteFlags say how to reach a DEST of the form [user@]host:PATH.
func remoteFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "rsh", Aliases: []string{"e"}, Value: pgsync.DefaultRsh, Usage: "remote shell `CMD` (with its options, as rsync -e) for a DEST of the form [user@]host:PATH"},
		&cli.StringFlag{Name: "remote-path", Value: pgsync.DefaultRemotePath, Usage: "pgtwopass on the other host (`PATH`, or a command such as 'sudo -u postgres pgtwopass')"},
		&cli.BoolFlag{Name: "compress", Aliases: []string{"z"}, Usage: "compress the blocks sent to another host (zstd)"},
		&cli.StringFlag{Name: "bwlimit", Usage: "send at most `RATE` bytes per second to another host: a number of KiB, or with a suffix K, M or G (e.g. 50M); 0 means no limit"},
	}
}

// remoteOptions returns the remote flags' values.
func remoteOptions(c *cli.Context) (pgsync.RemoteOptions, error) {
	bw, err := parseRate(c.String("bwlimit"))
	if err != nil {
		return pgsync.RemoteOptions{}, err
	}
	return pgsync.RemoteOptions{Rsh: c.String("rsh"), RemotePath: c.String("remote-path"), Compress: c.Bool("compress"),
		BWLimit: bw, Stderr: c.App.ErrWriter, Program: program()}, nil
}

// parseRate parses --bwlimit as rsync does: KiB per second, or a number
// with a suffix K, M or G (powers of 1024).
func parseRate(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	bad := &pgsync.InputError{What: fmt.Sprintf("invalid --bwlimit %q", s), Hint: "give bytes per second as a number of KiB, or with a suffix K, M or G, e.g. --bwlimit 50M"}
	num, unit := s, float64(1<<10)
	switch s[len(s)-1] {
	case 'k', 'K':
		num = s[:len(s)-1]
	case 'm', 'M':
		num, unit = s[:len(s)-1], 1<<20
	case 'g', 'G':
		num, unit = s[:len(s)-1], 1<<30
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*unit > 1<<50 {
		return 0, bad
	}
	if v > 0 && v*unit < 1024 {
		return 0, &pgsync.InputError{What: fmt.Sprintf("--bwlimit %q is below 1 KiB per second", s), Hint: bad.Hint}
	}
	return int64(v * unit), nil
}

// treeFlags say what the copy holds: every command that reads SRC.
func treeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "tablespace-map", Aliases: []string{"T"}, Usage: "copy the tablespace in directory OLD to NEW, and link the copy's pg_tblspc entry to NEW (`OLD=NEW`, repeatable, as pg_basebackup -T)"},
		&cli.BoolFlag{Name: "no-default-excludes", Usage: "copy also what is left out by default (postmaster.pid, postmaster.opts, pg_stat_tmp/*, pgsql_tmp*, *.tmp of the server)"},
	}
}

// tablespaceMap parses --tablespace-map OLD=NEW values.
func tablespaceMap(c *cli.Context) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range c.StringSlice("tablespace-map") {
		old, new, ok := strings.Cut(v, "=")
		if !ok || old == "" || new == "" {
			return nil, &pgsync.InputError{What: fmt.Sprintf("invalid --tablespace-map %q", v), Hint: "give OLD=NEW, e.g. --tablespace-map /srv/ts1=/mnt/new/ts1"}
		}
		m[filepath.Clean(old)] = filepath.Clean(new)
	}
	return m, nil
}

func passFlags() []cli.Flag {
	return append(append(append(commonFlags(), treeFlags()...),
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "check everything and report what would be read and deleted, from file stats alone; change nothing, stop nothing"},
	), reportFlags()...)
}

// reportFlags say how a run of prepare, finish or sync is shown and recorded.
func reportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "progress", Usage: "draw the progress of each pass (bytes, rate, ETA) and the downtime while the server is down on stderr also when it is not a terminal; without it, only on a terminal"},
		&cli.BoolFlag{Name: "no-progress", Usage: "draw no progress, also on a terminal (log lines only)"},
		&cli.StringFlag{Name: "metrics-file", Usage: "after the run, also a failed one, write its results to `FILE` in Prometheus's text format, atomically, for node_exporter's textfile collector (e.g. /var/lib/prometheus/node-exporter/pgtwopass.prom)"},
	}
}

// liveFlags are the flags of commands that run live passes.
func liveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "max-passes", Value: pgsync.DefaultMaxPasses, Usage: "repeat live passes while each writes less than the one before, at most `N` times"},
	}
}

func serverFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "no-stop", Usage: "the server must already be stopped: check it, stop nothing"},
		&cli.DurationFlag{Name: "max-downtime", Usage: "do not stop the server when the predicted downtime exceeds `DURATION` (e.g. 30s); exit status 3"},
		&cli.StringFlag{Name: "stop-command", Usage: "stop the server with `CMD` (run by /bin/sh) instead of pg_ctl stop -m fast"},
		&cli.StringFlag{Name: "start-command", Usage: "start the server with `CMD` (run by /bin/sh) instead of pg_ctl start"},
		&cli.StringFlag{Name: "systemd-unit", Usage: "stop and start the server with systemctl stop/start `UNIT`"},
		&cli.BoolFlag{Name: "restart", Usage: "start the source server again after the cold pass, also when it failed"},
		&cli.StringFlag{Name: "dsn", Usage: "connect here for the CHECKPOINT before the stop (default: from SRC/postmaster.pid, as the data directory's owner)"},
		&cli.StringFlag{Name: "start-log", Usage: "server log `FILE` when pgtwopass starts the server with pg_ctl (default: in the temporary directory)"},
		&cli.StringFlag{Name: "cold-pass", Value: "checksum", Usage: "`checksum`: read every source block; quick: skip files whose size, mtime, ctime and inode prove them unchanged since a copy made safely after their last change (refused on network file systems; docs/design.md says when not to use it)"},
		&cli.BoolFlag{Name: "backup-manifest", Usage: "write PostgreSQL's backup_manifest into the copy (CRC-32C of every file, from the cold pass's reads), so that pg_verifybackup -n DEST checks it"},
		&cli.BoolFlag{Name: "allow-crashed", Usage: "copy a cluster that was not shut down cleanly (it runs crash recovery when the copy starts)"},
	}
}

func passOptions(c *cli.Context, obs pgsync.Observer) (pgsync.Options, error) {
	src, dst, err := twoArgs(c)
	if err != nil {
		return pgsync.Options{}, err
	}
	if c.IsSet("jobs") && c.Int("jobs") < 1 {
		return pgsync.Options{}, &pgsync.InputError{What: "invalid --jobs " + c.String("jobs"), Hint: "use --jobs 1 or more"}
	}
	if c.IsSet("block-size") && c.Int("block-size") == 0 {
		return pgsync.Options{}, &pgsync.InputError{What: "invalid block size 0", Hint: "use a power of two from 4096 to 16777216, e.g. --block-size 8192"}
	}
	if c.IsSet("max-passes") && c.Int("max-passes") < 1 {
		return pgsync.Options{}, &pgsync.InputError{What: "invalid --max-passes " + c.String("max-passes"), Hint: "use --max-passes 1 or more"}
	}
	tsmap, err := tablespaceMap(c)
	if err != nil {
		return pgsync.Options{}, err
	}
	remote, err := remoteOptions(c)
	if err != nil {
		return pgsync.Options{}, err
	}
	return pgsync.Options{
		Remote:            remote,
		TablespaceMap:     tsmap,
		NoDefaultExcludes: c.Bool("no-default-excludes"),
		Source:            src,
		Dest:              dst,
		BlockSize:         c.Int("block-size"),
		Jobs:              c.Int("jobs"),
		Excludes:          c.StringSlice("exclude"),
		DryRun:            c.Bool("dry-run"),
		AllowCrashed:      c.Bool("allow-crashed"),
		BackupManifest:    c.Bool("backup-manifest"),
		ColdPass:          c.String("cold-pass"),
		MaxPasses:         c.Int("max-passes"),
		Observer:          obs,
	}, nil
}

func serverOptions(c *cli.Context) (pgsync.ServerOptions, error) {
	if d := c.Duration("max-downtime"); d < 0 {
		return pgsync.ServerOptions{}, &pgsync.InputError{What: "invalid --max-downtime " + d.String(), Hint: "give a positive duration, e.g. --max-downtime 30s, or leave it out for no budget"}
	}
	return pgsync.ServerOptions{
		NoStop:       c.Bool("no-stop"),
		StopCommand:  c.String("stop-command"),
		StartCommand: c.String("start-command"),
		SystemdUnit:  c.String("systemd-unit"),
		Restart:      c.Bool("restart"),
		DSN:          c.String("dsn"),
		StartLog:     c.String("start-log"),
		MaxDowntime:  c.Duration("max-downtime"),
	}, nil
}
