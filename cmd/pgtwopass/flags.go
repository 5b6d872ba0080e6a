package main

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	pgsync "github.com/pgtwopass/pgtwopass/pkg/sync"
)

// The flags, in groups that commands combine, and the functions that read
// each group into the engine's options. A flag's Category is the section
// of the help it is listed in; its Usage names its value in backquotes;
// its default is its Value or DefaultText, never written in its Usage.

// Categories of flags: the help's sections after OPTIONS.
const (
	catServer = "server"
	catCold   = "cold pass"
	catRemote = "remote"
	catOutput = "output"
)

// choiceFlag is a string option with a fixed set of values: the help shows
// them as its value, completion offers them, and any other value is bad
// usage (exit status 2).
type choiceFlag struct {
	cli.StringFlag
	Choices []string
}

func newChoiceFlag(f cli.StringFlag, choices ...string) *choiceFlag {
	cf := &choiceFlag{StringFlag: f, Choices: choices}
	cf.Action = func(_ *cli.Context, v string) error {
		if !slices.Contains(cf.Choices, v) {
			return &usageError{err: fmt.Errorf("--%s must be %s, not %q", cf.Name, orList(cf.Choices), v),
				hint: fmt.Sprintf("e.g. --%s %s; see the command's --help", cf.Name, cf.Choices[0])}
		}
		return nil
	}
	return cf
}

// orList is "a, b or c".
func orList(s []string) string { return joinList(s, " or ") }

// andList is "a, b and c".
func andList(s []string) string { return joinList(s, " and ") }

func joinList(s []string, last string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + last + s[len(s)-1]
}

// copyFlags say how a pass reads and writes: every command that copies or
// compares SRC and DEST.
func copyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, DefaultText: "one per CPU", Usage: "`N` workers that read, hash and write"},
		&cli.IntFlag{Name: "block-size", DefaultText: "the copy's, else 8192, PostgreSQL's page size", Usage: "`BYTES` per block: a power of two from 4096 to 16777216"},
		&cli.StringSliceFlag{Name: "exclude", Usage: "leave out entries matching `PATTERN` (shell glob; without a slash it matches names at any depth), on top of the default excludes"},
		&cli.StringSliceFlag{Name: "tablespace-map", Aliases: []string{"T"}, Usage: "copy the tablespace in directory OLD to NEW, and link the copy's pg_tblspc entry to NEW (`OLD=NEW`, as pg_basebackup -T)"},
		&cli.BoolFlag{Name: "no-default-excludes", Usage: "copy also what is left out by default (postmaster.pid, postmaster.opts, pg_stat_tmp/*, pgsql_tmp*, *.tmp of the server)"},
	}
}

// writeFlags are for the commands that write the copy.
func writeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "check everything and report what would be read and deleted, from file stats alone; change nothing, stop nothing"},
		&cli.StringFlag{Name: "waldir", DefaultText: "DEST/pg_wal, or where an earlier pass put the copy's WAL", Usage: "put the copy's WAL in `DIR`, with DEST/pg_wal a link to it (as pg_basebackup --waldir)"},
		&cli.BoolFlag{Name: "mkpath", Usage: "create the missing parents of DEST, of the tablespaces' copies and of --waldir (as rsync --mkpath)"},
		&cli.BoolFlag{Name: "allow-started-copy", Usage: "refresh a copy that has run since its seal (a test start, an abandoned cutover), discarding what it changed; without it such a copy is refused, since it may be a new primary"},
	}
}

// connectFlags say how to reach a DEST of the form [user@]host:PATH.
func connectFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "rsh", Aliases: []string{"e"}, Category: catRemote, Value: pgsync.DefaultRsh, Usage: "remote shell `CMD` (with its options, as rsync -e) for a DEST of the form [user@]host:PATH"},
		&cli.StringFlag{Name: "remote-path", Category: catRemote, Value: pgsync.DefaultRemotePath, Usage: "pgtwopass on the other host (`PATH`, or a command such as 'sudo -u postgres pgtwopass')"},
	}
}

// sendFlags say how blocks are sent to another host: the commands that
// write the copy.
func sendFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "compress", Aliases: []string{"z"}, Category: catRemote, Usage: "compress the blocks sent to another host (zstd)"},
		&cli.StringFlag{Name: "bwlimit", Category: catRemote, Usage: "send at most `RATE` bytes per second to another host: a number of KiB, or with a suffix K, M or G (e.g. 50M); 0 means no limit"},
	}
}

// logFlags say how the run is logged on stderr.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Category: catOutput, Usage: "print one JSON object with the results on stdout at the end"},
		newChoiceFlag(cli.StringFlag{Name: "log-format", Category: catOutput, DefaultText: "json when stderr is the systemd journal, else console",
			Usage: "log lines for people (console) or for log shippers (json)"}, "console", "json"),
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Category: catOutput, Usage: "log every file changed or deleted"},
	}
}

// reportFlags say how a run of prepare, finish or sync is shown and recorded.
func reportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "progress", Category: catOutput, Usage: "show the progress of each pass (bytes, rate, ETA) and the downtime while the server is down, also when stderr is not a terminal (then as one line per second)"},
		&cli.BoolFlag{Name: "no-progress", Category: catOutput, Usage: "show no progress, also on a terminal (log lines only)"},
		&cli.StringFlag{Name: "metrics-file", Category: catOutput, Usage: "after the run, also a failed one, write its results to `FILE` in Prometheus's text format, atomically, for node_exporter's textfile collector"},
	}
}

// liveFlags are the flags of commands that run live passes.
func liveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "max-passes", Value: pgsync.DefaultMaxPasses, Usage: "repeat live passes while each writes less than the one before, at most `N` times"},
	}
}

// serverFlags say how the source server is stopped and started.
func serverFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "restart", Category: catServer, Usage: "start the source server again after the cold pass, also when it failed"},
		&cli.BoolFlag{Name: "no-stop", Category: catServer, Usage: "the server must already be stopped: check it, stop nothing"},
		&cli.DurationFlag{Name: "max-downtime", Category: catServer, Usage: "do not stop the server when the predicted downtime exceeds `DURATION` (e.g. 30s); exit status 3"},
		&cli.StringFlag{Name: "systemd-unit", Category: catServer, Usage: "stop and start the server with systemctl stop/start `UNIT`"},
		&cli.StringFlag{Name: "stop-command", Category: catServer, Usage: "stop the server with `CMD` (run by /bin/sh) instead of pg_ctl stop -m fast"},
		&cli.StringFlag{Name: "start-command", Category: catServer, Usage: "start the server with `CMD` (run by /bin/sh) instead of pg_ctl start"},
		&cli.StringFlag{Name: "dsn", Category: catServer, DefaultText: "from SRC/postmaster.pid", Usage: "connect to `DSN` for the CHECKPOINT before the stop (as root, to a unix socket as the data directory's owner, so that peer authentication lets it in)"},
		&cli.BoolFlag{Name: "no-checkpoint", Category: catServer, Usage: "stop the server without a CHECKPOINT first (its shutdown checkpoint then writes every dirty page while it is down: a longer downtime)"},
		&cli.StringFlag{Name: "start-log", Category: catServer, DefaultText: "where its stderr goes now", Usage: "server log `FILE` when pgtwopass starts the server with pg_ctl"},
	}
}

// coldFlags say what the cold pass does.
func coldFlags() []cli.Flag {
	return []cli.Flag{
		newChoiceFlag(cli.StringFlag{Name: "cold-pass", Category: catCold, Value: pgsync.ColdChecksum,
			Usage: "what the cold pass reads; checksum: every source block; quick: not the files whose size, mtime, ctime and inode prove them unchanged since a copy made safely after their last change; wal: of the relation files, only the blocks the WAL since the CHECKPOINT names, everything else whole, or every block when a premise fails (needs data checksums or wal_log_hints; quick and wal are refused on network file systems; docs/design.md says when to use each)"},
			pgsync.ColdChecksum, pgsync.ColdQuick, pgsync.ColdWAL),
		&cli.BoolFlag{Name: "backup-manifest", Category: catCold, Usage: "write PostgreSQL's backup_manifest into the copy (CRC-32C of every file, from the cold pass's reads), so that pg_verifybackup -n DEST checks it"},
		&cli.BoolFlag{Name: "allow-crashed", Category: catCold, Usage: "copy a cluster that was not shut down cleanly (it runs crash recovery when the copy starts)"},
	}
}

// flags joins groups of flags.
func flags(groups ...[]cli.Flag) []cli.Flag { return slices.Concat(groups...) }

// passOptions reads SRC, DEST, copyFlags and connectFlags: what every
// command that compares or copies SRC and DEST takes. The readers below
// read the other groups, each its own, so that a group offered by a
// command that does not read it shows (TestEveryFlagIsUsed).
func passOptions(c *cli.Context) (pgsync.Options, error) {
	if err := argsNeeded(c, "SRC", "DEST"); err != nil {
		return pgsync.Options{}, err
	}
	if c.IsSet("jobs") && c.Int("jobs") < 1 {
		return pgsync.Options{}, &pgsync.InputError{What: "invalid --jobs " + c.String("jobs"), Hint: "use --jobs 1 or more"}
	}
	if c.IsSet("block-size") && c.Int("block-size") == 0 {
		return pgsync.Options{}, &pgsync.InputError{What: "invalid block size 0", Hint: "use a power of two from 4096 to 16777216, e.g. --block-size 8192"}
	}
	tsmap, err := tablespaceMap(c)
	if err != nil {
		return pgsync.Options{}, err
	}
	return pgsync.Options{
		Source:            c.Args().Get(0),
		Dest:              c.Args().Get(1),
		BlockSize:         c.Int("block-size"),
		Jobs:              c.Int("jobs"),
		Excludes:          c.StringSlice("exclude"),
		NoDefaultExcludes: c.Bool("no-default-excludes"),
		TablespaceMap:     tsmap,
		Remote:            connectOptions(c),
	}, nil
}

// connectOptions reads connectFlags.
func connectOptions(c *cli.Context) pgsync.RemoteOptions {
	return pgsync.RemoteOptions{Rsh: c.String("rsh"), RemotePath: c.String("remote-path"), Stderr: c.App.ErrWriter, Program: program()}
}

// readSend reads sendFlags.
func readSend(c *cli.Context, o *runOptions) error {
	bw, err := parseRate(c.String("bwlimit"))
	o.Pass.Remote.Compress, o.Pass.Remote.BWLimit = c.Bool("compress"), bw
	return err
}

// readWrite reads writeFlags.
func readWrite(c *cli.Context, o *runOptions) error {
	o.Pass.DryRun, o.Pass.WALDir, o.Pass.MkPath = c.Bool("dry-run"), c.String("waldir"), c.Bool("mkpath")
	o.Pass.AllowStarted = c.Bool("allow-started-copy")
	return nil
}

// readLive reads liveFlags.
func readLive(c *cli.Context, o *runOptions) error {
	if c.IsSet("max-passes") && c.Int("max-passes") < 1 {
		return &pgsync.InputError{What: "invalid --max-passes " + c.String("max-passes"), Hint: "use --max-passes 1 or more"}
	}
	o.Pass.MaxPasses = c.Int("max-passes")
	return nil
}

// readCold reads coldFlags.
func readCold(c *cli.Context, o *runOptions) error {
	o.Pass.ColdPass = c.String("cold-pass")
	o.Pass.BackupManifest = c.Bool("backup-manifest")
	o.Pass.AllowCrashed = c.Bool("allow-crashed")
	return nil
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

// readServer reads serverFlags.
func readServer(c *cli.Context, o *runOptions) error {
	if d := c.Duration("max-downtime"); d < 0 {
		return &pgsync.InputError{What: "invalid --max-downtime " + d.String(), Hint: "give a positive duration, e.g. --max-downtime 30s, or leave it out for no budget"}
	}
	o.Server = pgsync.ServerOptions{
		NoStop:       c.Bool("no-stop"),
		StopCommand:  c.String("stop-command"),
		StartCommand: c.String("start-command"),
		SystemdUnit:  c.String("systemd-unit"),
		Restart:      c.Bool("restart"),
		DSN:          c.String("dsn"),
		NoCheckpoint: c.Bool("no-checkpoint"),
		StartLog:     c.String("start-log"),
		MaxDowntime:  c.Duration("max-downtime"),
	}
	return nil
}
