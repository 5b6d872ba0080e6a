package sync

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// Prediction is the expected downtime of a finish, computed before the
// server is stopped, like QEMU's expected_downtime: what the cold pass
// must read and write, at the rates measured by earlier passes, plus the
// time the last stop and start took.
type Prediction struct {
	Downtime   time.Duration
	ReadBytes  int64   // the cold pass reads this much of the source
	WriteBytes int64   // and is expected to write this much
	ReadRate   float64 // bytes/s, measured
	WriteRate  float64 // bytes/s, measured
	Overhead   time.Duration
	Stop       time.Duration // from the last stop, 0 if unknown
	Start      time.Duration // from the last start, when restarting
}

func (p *Prediction) String() string {
	s := fmt.Sprintf("%.2fs: read %s at %s/s, write about %s at %s/s", p.Downtime.Seconds(),
		humanBytes(p.ReadBytes), humanBytes(int64(p.ReadRate)), humanBytes(p.WriteBytes), humanBytes(int64(p.WriteRate)))
	if p.Stop > 0 {
		s += fmt.Sprintf(", stop %.2fs", p.Stop.Seconds())
	}
	if p.Start > 0 {
		s += fmt.Sprintf(", start %.2fs", p.Start.Seconds())
	}
	return s
}

// errNoBasis: no pass has measured rates yet.
var errNoBasis = fmt.Errorf("no earlier pass has measured the read and write rates")

// predict computes the downtime of a cold pass that reads readBytes, from
// the manifest's pass history and the last server timings.
func predict(h *manifest.Header, readBytes int64, timings serverTimings, restart bool) (*Prediction, error) {
	if h == nil || len(h.Passes) == 0 {
		return nil, errNoBasis
	}
	p := &Prediction{ReadBytes: readBytes}
	// The last cold pass read what the next one will read, the way it will
	// read it: its rate and overhead predict best. Otherwise the passes that
	// moved the most bytes give the least noisy rates.
	var basis *manifest.Pass
	var rb, wb int64
	for i := range h.Passes {
		ps := &h.Passes[i]
		if ps.ReadNs > 0 && ps.BytesRead > rb {
			rb, p.ReadRate = ps.BytesRead, float64(ps.BytesRead)/float64(ps.ReadNs)*1e9
		}
		if ps.WriteNs > 0 && ps.BytesWritten > wb {
			wb, p.WriteRate = ps.BytesWritten, float64(ps.BytesWritten)/float64(ps.WriteNs)*1e9
		}
		if ps.Kind == manifest.Cold && ps.ReadNs > 0 {
			basis = ps
		}
	}
	if basis != nil {
		p.ReadRate = float64(basis.BytesRead) / float64(basis.ReadNs) * 1e9
	}
	if p.ReadRate == 0 {
		return nil, errNoBasis
	}
	last := h.Passes[len(h.Passes)-1]
	// What the last pass had to write is what the next one will find
	// changed (the dirty rate of one more round).
	p.WriteBytes = last.BytesWritten
	if p.WriteRate == 0 {
		p.WriteRate = p.ReadRate
	}
	if basis == nil {
		basis = &last
	}
	if o := basis.Finished - basis.Started - basis.ReadNs - basis.WriteNs; o > 0 {
		p.Overhead = time.Duration(o)
	}
	p.Stop = timings.Stop()
	if restart {
		p.Start = timings.Start()
	}
	copying := float64(p.ReadBytes)/p.ReadRate + float64(p.WriteBytes)/p.WriteRate
	p.Downtime = p.Stop + time.Duration(copying*1e9) + p.Overhead + p.Start
	return p, nil
}

// serverTimings are how long the last stop and start of the source took,
// kept in DEST/.pgtwopass/server.json for the next prediction.
type serverTimings struct {
	StopSeconds  float64   `json:"stop_seconds"`
	StartSeconds float64   `json:"start_seconds"`
	When         time.Time `json:"when"`
}

func (t serverTimings) Stop() time.Duration  { return time.Duration(t.StopSeconds * 1e9) }
func (t serverTimings) Start() time.Duration { return time.Duration(t.StartSeconds * 1e9) }

const timingsName = "server.json"

// maxServerSeconds bounds a believable stop or start of the server.
const maxServerSeconds = 24 * 60 * 60

func readTimings(dest string) serverTimings {
	b, err := os.ReadFile(filepath.Join(dest, manifest.DirName, timingsName))
	if err != nil {
		return serverTimings{}
	}
	return parseTimings(b)
}

// parseTimings reads server.json, a file in DEST that anyone may have
// edited or damaged. A time it cannot believe (negative, over a day, not a
// number) counts as unknown, so that it can neither shorten a prediction
// below the copy's own time nor overflow it: a prediction that lets a budget
// pass wrongly stops a server for longer than the DBA allowed.
func parseTimings(b []byte) serverTimings {
	var t serverTimings
	if err := json.Unmarshal(b, &t); err != nil {
		return serverTimings{}
	}
	for _, s := range []*float64{&t.StopSeconds, &t.StartSeconds} {
		if !(*s >= 0 && *s <= maxServerSeconds) { // NaN fails both
			*s = 0
		}
	}
	return t
}

// writeTimings records the server timings atomically.
func writeTimings(dest string, t serverTimings) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(dest, manifest.DirName)
	if err := renameio.WriteFile(filepath.Join(dir, timingsName), append(b, '\n'), 0o600, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	return manifest.SyncDir(dir)
}

// recordTimings keeps this job's server timings for the next prediction.
// server.json is one of pgtwopass's own files in the copy: it goes to the
// data directory's owner, and a backup_manifest written by the cold pass is
// rewritten to list it as it now is.
func (j *job) recordTimings() error {
	if err := writeTimings(j.dst.dir, j.timings); err != nil {
		return fmt.Errorf("could not record the server's stop and start times: %w", err)
	}
	if os.Geteuid() == 0 {
		os.Lchown(filepath.Join(j.dst.dir, manifest.DirName, timingsName), int(j.src.owner.UID), int(j.src.owner.GID))
	}
	if j.opts.BackupManifest && !j.opts.DryRun {
		return refreshBackupManifest(j.dst.dir, j.src)
	}
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
