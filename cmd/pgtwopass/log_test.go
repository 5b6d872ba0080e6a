package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
)

// TestLogFormat: console by default, also into a pipe or a file; json
// with --log-format json, or when stderr is the journal that
// JOURNAL_STREAM names (not merely when the variable is inherited).
func TestLogFormat(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	journal := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	for _, tc := range []struct {
		what   string
		flag   string
		env    string
		stderr any
		want   string
	}{
		{"a pipe (| tee)", "", "", w, logConsole},
		{"a file", "", "", f, logConsole},
		{"a buffer", "", "", &bytes.Buffer{}, logConsole},
		{"the journal", "", journal, f, logJSON},
		{"a pipe of a process that inherited JOURNAL_STREAM", "", journal, w, logConsole},
		{"a damaged JOURNAL_STREAM", "", "x", f, logConsole},
		{"--log-format json", "json", "", w, logJSON},
		{"--log-format console, in the journal", "console", journal, f, logConsole},
	} {
		t.Setenv("JOURNAL_STREAM", tc.env)
		sw := tc.stderr.(io.Writer)
		if got := logFormat(outputOptions{LogFormat: tc.flag}, sw); got != tc.want {
			t.Errorf("logs into %s: %s, want %s", tc.what, got, tc.want)
		}
	}
}

// TestConsoleLogNumbers: console lines round seconds and print byte
// counts for people; JSON lines keep them exact.
func TestConsoleLogNumbers(t *testing.T) {
	fields := []zap.Field{zap.Float64("seconds", 7.8750157640000005), zap.Float64("server_down_seconds", 0.0123456),
		zap.Int64("bytes_read", 624951296), zap.Int64("files_changed", 1002)}
	var console, jsonOut bytes.Buffer
	for _, tc := range []struct {
		format string
		out    *bytes.Buffer
	}{{logConsole, &console}, {logJSON, &jsonOut}} {
		log, err := newLogger(outputOptions{LogFormat: tc.format}, tc.out, tc.out)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("live pass finished", fields...)
	}
	for _, want := range []string{`"seconds": 7.88`, `"server_down_seconds": 0.0123`, `"bytes_read": "596.0 MiB"`, `"files_changed": 1002`} {
		if !strings.Contains(console.String(), want) {
			t.Errorf("the console line has %s: %s", want, console.String())
		}
	}
	for _, want := range []string{`"seconds":7.8750157640000005`, `"bytes_read":624951296`} {
		if !strings.Contains(jsonOut.String(), want) {
			t.Errorf("the JSON line keeps %s: %s", want, jsonOut.String())
		}
	}
}
