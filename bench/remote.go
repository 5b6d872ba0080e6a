package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// rshScript is the stand-in remote shell: it drops the host and runs the
// remote command on this host. rsync passes the remote command as several
// words, pgtwopass as one; sh -c "$*" runs either.
const rshScript = `#!/bin/sh
shift
exec sh -c "$*"
`

// remoteHost names the other host in DEST; the stand-in shell ignores it.
const remoteHost = "bench-host"

var remoteVariants = []variant{
	{"pgtwopass", "pgtwopass finish -e RSH"},
	{"pgtwopass-z", "pgtwopass finish --compress -e RSH"},
	{"rsync", "rsync -a --checksum --delete -e RSH"},
}

// remotePasses times the cold pass into a copy "on another host" (through
// the stand-in remote shell) from the pass-1 state, warm cache: pgtwopass
// sends the blocks whose hashes differ; rsync's delta algorithm is active
// over a remote shell (it is not between local paths).
func (b *bench) remotePasses(ctx context.Context, st *state) error {
	rsh := filepath.Join(b.work, "rsh")
	if err := os.WriteFile(rsh, []byte(rshScript), 0o755); err != nil {
		return err
	}
	checked := map[string]bool{}
	for r := range b.cfg.runs {
		for _, v := range rotate(remoteVariants, r) {
			m := newMeasurement()
			dst := st.dest
			switch v.key {
			case "pgtwopass", "pgtwopass-z":
				if err := st.restoreCopy(ctx); err != nil {
					return err
				}
			case "rsync":
				if err := st.restoreRsync(ctx); err != nil {
					return err
				}
				dst = st.rdest
			}
			var err error
			if m.load, err = b.ready(ctx, "warm", st.src); err != nil {
				return err
			}
			switch v.key {
			case "pgtwopass", "pgtwopass-z":
				args := []string{"finish", "--no-stop", "-e", rsh, "--remote-path", b.bin}
				if v.key == "pgtwopass-z" {
					args = append(args, "--compress")
				}
				res, err := b.pgtwopass(ctx, nil, append(args, st.src, remoteHost+":"+dst)...)
				if err != nil {
					return fmt.Errorf("%s: %w", v.label, err)
				}
				m.seconds, m.passSeconds, m.rssKiB = res.wall.Seconds(), res.sum.passSeconds(), res.maxRSS
				m.sent, m.recv = res.sum.BytesSent, res.sum.BytesReceived
				m.read, m.written = res.sum.BytesRead, res.sum.BytesWritten
			case "rsync":
				args := append([]string{"-a", "--checksum", "--delete", "--stats", "-e", rsh}, rsyncExcludes()...)
				t, err := runTimed(ctx, nil, "rsync", append(args, st.src+"/", remoteHost+":"+dst+"/")...)
				if err != nil {
					return fmt.Errorf("%s: %w", v.label, err)
				}
				m.seconds, m.rssKiB = t.wall.Seconds(), t.maxRSS
				m.sent = rsyncStat(t.stdout, "Total bytes sent")
				m.recv = rsyncStat(t.stdout, "Total bytes received")
				m.written = rsyncStat(t.stdout, "Literal data")
			}
			m.syncSeconds = syncAll().Seconds()
			logf("round %d remote %-36s %7.2fs sent %s received %s load %.2f", r+1, v.label, m.seconds, humanBytes(m.sent), humanBytes(m.recv), m.load)
			b.remote[v.key] = append(b.remote[v.key], m)
			if !checked[v.key] {
				checked[v.key] = true
				b.checkCopy(st.src, dst, "after "+v.label+" (remote)")
			}
		}
	}
	return nil
}
