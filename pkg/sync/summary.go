package sync

import "time"

// Summary is a job's result as pgtwopass prints it with --json: one object
// at the end of prepare, finish and sync, failed ones included. The CLI
// writes it, and the benchmarks and the integration tests read it, all
// through this one type.
type Summary struct {
	Command         string  `json:"command"`
	OK              bool    `json:"ok"`
	Error           string  `json:"error,omitempty"`
	BytesRead       int64   `json:"bytes_read"`
	BytesWritten    int64   `json:"bytes_written"`
	FilesChanged    int64   `json:"files_changed"`
	FilesDeleted    int64   `json:"files_deleted"`
	DurationSeconds float64 `json:"duration_seconds"`
	// DowntimeSeconds, Stopped and Restarted are set by finish and sync.
	DowntimeSeconds *float64 `json:"downtime_seconds,omitempty"`
	// ColdPassMode is how the cold pass ran: checksum, quick or wal;
	// FallbackReason says why --cold-pass=wal read everything.
	ColdPassMode   string `json:"cold_pass_mode,omitempty"`
	FallbackReason string `json:"fallback_reason,omitempty"`
	// PredictedDowntimeSeconds is the prediction made before the stop.
	PredictedDowntimeSeconds *float64 `json:"predicted_downtime_seconds,omitempty"`
	// PredictedReadBytes is what the prediction expected the cold pass to
	// read; PredictedWALBlocks, for --cold-pass=wal, the blocks the WAL had
	// named by then.
	PredictedReadBytes *int64 `json:"predicted_read_bytes,omitempty"`
	PredictedWALBlocks *int64 `json:"predicted_wal_blocks,omitempty"`
	Stopped            *bool  `json:"stopped,omitempty"`
	Restarted          *bool  `json:"restarted,omitempty"`
	// BytesSent and BytesReceived are the traffic with a DEST on another
	// host, framing included.
	BytesSent     int64 `json:"bytes_sent,omitempty"`
	BytesReceived int64 `json:"bytes_received,omitempty"`
	// What the walk of SRC found that the copy does not carry as it is
	// (pass.Notes), counted by the first pass.
	SpecialFiles    int64         `json:"special_files"`
	HardLinkedFiles int64         `json:"hard_linked_files"`
	OutsideLinks    int64         `json:"outside_links"`
	Passes          []PassSummary `json:"passes"`
}

// PassSummary is one pass of a Summary.
type PassSummary struct {
	Kind          string  `json:"kind"`
	BytesRead     int64   `json:"bytes_read"`
	BytesWritten  int64   `json:"bytes_written"`
	BlocksWritten int64   `json:"blocks_written"`
	FilesExamined int64   `json:"files_examined"`
	FilesSkipped  int64   `json:"files_skipped"`
	FilesChanged  int64   `json:"files_changed"`
	FilesDeleted  int64   `json:"files_deleted"`
	Seconds       float64 `json:"seconds"`
	DryRun        bool    `json:"dry_run,omitempty"`
}

// NewSummary summarizes the job command (prepare, finish or sync) that
// returned res and err.
func NewSummary(command string, res *Result, err error) Summary {
	s := Summary{Command: command, OK: err == nil, Passes: []PassSummary{}}
	if err != nil {
		s.Error = err.Error()
	}
	if res == nil {
		return s
	}
	t := res.Total()
	s.BytesRead, s.BytesWritten, s.FilesChanged, s.FilesDeleted = t.BytesRead, t.BytesWritten, t.FilesChanged, t.FilesDeleted
	s.BytesSent, s.BytesReceived = res.BytesSent, res.BytesReceived
	end := res.Finished
	if end.IsZero() {
		end = time.Now()
	}
	s.DurationSeconds = end.Sub(res.Started).Seconds()
	if command != "prepare" {
		s.ColdPassMode, s.FallbackReason = res.ColdPassMode, res.FallbackReason
		d := res.Downtime.Seconds()
		s.DowntimeSeconds, s.Stopped, s.Restarted = &d, &res.Stopped, &res.Restarted
		if p := res.Prediction; p != nil {
			pd := p.Downtime.Seconds()
			s.PredictedDowntimeSeconds, s.PredictedReadBytes = &pd, &p.ReadBytes
			if p.WALBlocks > 0 || p.WALBytes > 0 {
				s.PredictedWALBlocks = &p.WALBlocks
			}
		}
	}
	if len(res.Passes) > 0 {
		first := res.Passes[0]
		s.SpecialFiles, s.HardLinkedFiles, s.OutsideLinks = first.Specials, first.HardLinked, first.OutsideLinks
	}
	for _, p := range res.Passes {
		s.Passes = append(s.Passes, PassSummary{
			Kind: p.Kind.String(), BytesRead: p.BytesRead, BytesWritten: p.BytesWritten, BlocksWritten: p.BlocksWritten,
			FilesExamined: p.FilesExamined, FilesSkipped: p.FilesSkipped, FilesChanged: p.FilesChanged, FilesDeleted: p.FilesDeleted,
			Seconds: p.Duration().Seconds(), DryRun: p.DryRun,
		})
	}
	return s
}
