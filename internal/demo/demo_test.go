package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/human"
	"github.com/pgtwopass/pgtwopass/internal/scratch"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// syncBuffer is a bytes.Buffer safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("creates PostgreSQL clusters")
	}
	if _, err := scratch.FindBinDir(); err != nil {
		t.Skip(err)
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(DefaultRunAs); err != nil {
			t.Skip("running as root without a postgres OS user:", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "demo")
	var out syncBuffer
	rep, err := Run(ctx, Options{Dir: dir, Scale: 2, Clients: 2, Cleanup: true}, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Same || rep.SourceQuery == "" || rep.SourceQuery != rep.CopyQuery {
		t.Errorf("Same = %v, source %q, copy %q", rep.Same, rep.SourceQuery, rep.CopyQuery)
	}
	if !strings.HasPrefix(rep.SourceQuery, "200000 accounts") {
		t.Errorf("source query = %q, want 200000 accounts (scale 2)", rep.SourceQuery)
	}
	if rep.SourceBytes <= 0 || !strings.Contains(out.String(), "the data directory holds "+human.Bytes(rep.SourceBytes)) {
		t.Errorf("the demo says the size it measured of the source (%d bytes), not an estimate:\n%s", rep.SourceBytes, out.String())
	}
	if rep.Transactions <= 0 {
		t.Errorf("the write load committed %d transactions", rep.Transactions)
	}
	res := rep.Result
	if res == nil {
		t.Fatal("no Result")
	}
	if !res.Stopped || !res.Restarted {
		t.Errorf("Stopped = %v, Restarted = %v; want both", res.Stopped, res.Restarted)
	}
	if res.Downtime <= 0 {
		t.Errorf("Downtime = %v", res.Downtime)
	}
	cold := false
	for _, p := range res.Passes {
		cold = cold || p.Kind == manifest.Cold
	}
	if !cold {
		t.Errorf("no cold pass in %+v", res.Passes)
	}
	if rep.Dir != dir || rep.SourcePort == 0 || rep.CopyPort == 0 || rep.SourcePort == rep.CopyPort {
		t.Errorf("report: dir %s (want %s), ports %d and %d", rep.Dir, dir, rep.SourcePort, rep.CopyPort)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Cleanup left %s: %v", dir, err)
	}
	for _, want := range []string{"write load running (2 clients)", "source and copy hold the same data", "downtime:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The demo shows the prediction made before the stop beside the downtime.
	if res.Prediction == nil || res.Prediction.Downtime <= 0 {
		t.Errorf("sync predicts the downtime before it stops the server: Prediction = %+v", res.Prediction)
	} else {
		want := fmt.Sprintf("downtime: %.2f s, predicted %.2f s (error ", res.Downtime.Seconds(), res.Prediction.Downtime.Seconds())
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's summary shows the predicted downtime beside the actual one: output lacks %q", want)
		}
	}
}
