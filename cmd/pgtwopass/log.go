package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/pgtwopass/pgtwopass/internal/human"
)

// Log formats (--log-format).
const (
	logConsole = "console"
	logJSON    = "json"
)

// logFormat is the format of the log: --log-format, else json when stderr
// is the systemd journal, whose structured fields fit JSON, else console,
// also when stderr is a pipe (| tee) or a file.
func logFormat(o outputOptions, stderr io.Writer) string {
	if o.LogFormat != "" {
		return o.LogFormat
	}
	if toJournal(stderr, os.Getenv("JOURNAL_STREAM")) {
		return logJSON
	}
	return logConsole
}

// toJournal says whether w is the journal's stream that systemd names in
// JOURNAL_STREAM ("DEVICE:INODE"). Comparing them, as systemd.exec(5)
// advises, tells stderr connected to the journal from stderr redirected
// by a process that inherited the variable.
func toJournal(w io.Writer, journalStream string) bool {
	dev, ino, ok := strings.Cut(journalStream, ":")
	f, isFile := w.(*os.File)
	if !ok || !isFile {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return dev == strconv.FormatUint(uint64(st.Dev), 10) && ino == strconv.FormatUint(st.Ino, 10)
}

// newLogger logs to sink (stderr, or the progress display that prints
// above its bars) in the format that logFormat picks.
func newLogger(o outputOptions, stderr, sink io.Writer) (*zap.Logger, error) {
	level := zap.InfoLevel
	if o.Verbose {
		level = zap.DebugLevel
	}
	var enc zapcore.Encoder
	switch format := logFormat(o, stderr); format {
	case logConsole:
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		cfg.EncodeLevel = zapcore.CapitalLevelEncoder
		cfg.CallerKey, cfg.StacktraceKey, cfg.NameKey = "", "", ""
		enc = humanEncoder{zapcore.NewConsoleEncoder(cfg)}
	case logJSON:
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		cfg.CallerKey, cfg.StacktraceKey = "", ""
		enc = zapcore.NewJSONEncoder(cfg)
	default:
		return nil, usagef("--log-format must be console or json, not %q", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(sink), level)), nil
}

// humanEncoder is the console encoder with numbers for people: seconds to
// two decimals (7.88, not 7.8750157640000005) and byte counts (fields
// named bytes_* or *_bytes) in KiB, MiB, GiB. The JSON log keeps them exact.
type humanEncoder struct{ zapcore.Encoder }

func (e humanEncoder) Clone() zapcore.Encoder { return humanEncoder{e.Encoder.Clone()} }

func (e humanEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	human := make([]zapcore.Field, len(fields))
	for i, f := range fields {
		human[i] = humanField(f)
	}
	return e.Encoder.EncodeEntry(ent, human)
}

func humanField(f zapcore.Field) zapcore.Field {
	switch f.Type {
	case zapcore.Float64Type:
		return zap.Float64(f.Key, roundForPeople(math.Float64frombits(uint64(f.Integer))))
	case zapcore.Int64Type:
		if strings.HasPrefix(f.Key, "bytes_") || strings.HasSuffix(f.Key, "_bytes") {
			return zap.String(f.Key, human.Bytes(f.Integer))
		}
	}
	return f
}

// roundForPeople keeps two decimals, or three significant digits below 1.
func roundForPeople(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v == 0 {
		return v
	}
	digits := 2
	if a := math.Abs(v); a < 1 {
		digits = max(2, 2-int(math.Floor(math.Log10(a))))
	}
	r, err := strconv.ParseFloat(fmt.Sprintf("%.*f", digits, v), 64)
	if err != nil {
		return v
	}
	return r
}
