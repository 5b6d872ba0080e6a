package sync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// startCopy stands in for PostgreSQL starting and stopping a sealed copy:
// it rewrites the copy's pg_control (state, checkpoint), as every start,
// checkpoint and shutdown does.
func startCopy(t *testing.T, dst string) {
	t.Helper()
	p := filepath.Join(dst, pass.ControlFile)
	b, err := os.ReadFile(p)
	must(t, err)
	b[16] ^= 0x01 // after the identifier: the state, the checkpoint
	must(t, os.WriteFile(p, b, 0o600))
}

func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h, err := scratch.HashTree(dir, nil)
	must(t, err)
	return h
}

// testCopyThatRanIsRefused: a sealed copy whose pg_control changed since
// the seal has run as a cluster (after a cutover, the new primary): every
// pass refuses it as bad input and touches nothing, status says so, verify
// --manifest-only says so rather than listing differences, and detach
// makes it an ordinary directory, which pgtwopass then refuses as any other.
func testCopyThatRanIsRefused(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	mustPass(t, dk, manifest.Cold, src, dst)
	// A copy that never ran is refreshed as usual.
	mustPass(t, dk, manifest.Live, src, dst)
	mustPass(t, dk, manifest.Cold, src, dst)

	startCopy(t, dst)
	before := treeHash(t, dst)
	for _, kind := range []manifest.PassKind{manifest.Live, manifest.Cold} {
		_, err := runPass(t, dk, context.Background(), kind, src, dst, Options{Jobs: 2})
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(ie.What, "has run as a PostgreSQL cluster since pgtwopass sealed it") || !strings.Contains(ie.Hint, "pgtwopass detach") {
			t.Fatalf("a %s pass into a copy that ran since its seal must be refused as bad input with the hint to detach it, got %v", kind, err)
		}
	}
	if after := treeHash(t, dst); after != before {
		t.Fatalf("a refused pass into a copy that ran must touch nothing")
	}

	d, err := newTestDest(t, dk, dst, nil)
	must(t, err)
	st, err := d.Status(context.Background())
	must(t, err)
	if !st.RanSinceSeal || st.Sealed && !st.RanSinceSeal {
		t.Errorf("status of a copy that ran since its seal must say so: %+v", st)
	}
	_, err = d.VerifyManifest(context.Background(), 2, pass.NewExcluder(false, nil))
	if err == nil || !strings.Contains(err.Error(), "has run as a PostgreSQL cluster") {
		t.Errorf("verify --manifest-only of a copy that ran must say it ran since the seal, got %v", err)
	}
	must(t, d.Detach(context.Background()))
	d.Close()
	if _, err := os.Stat(filepath.Join(dst, manifest.DirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("detach removes DEST/.pgtwopass (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "base", "1", "16384")); err != nil {
		t.Fatalf("detach leaves the data files alone: %v", err)
	}
	_, err = runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{Jobs: 2})
	if err == nil || !strings.Contains(err.Error(), "not a pgtwopass copy") {
		t.Fatalf("a detached copy is an ordinary directory, refused as DEST: got %v", err)
	}
}

// testDetachRefusesAnUnsealedCopy: detaching a copy whose pg_control is
// held in .pgtwopass would leave a cluster that never starts.
func testDetachRefusesAnUnsealedCopy(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	d, err := newTestDest(t, dk, dst, nil)
	must(t, err)
	defer d.Close()
	err = d.Detach(context.Background())
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.What, "not sealed") {
		t.Fatalf("detach of an unsealed copy must be refused, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, pass.HeldControl)); err != nil {
		t.Fatalf("a refused detach keeps the held pg_control: %v", err)
	}
}

// testUnknownSealIsRefused: an installed pg_control with nothing that says
// what the seal installed (no seal record, a damaged manifest) cannot be
// told apart from a copy that ran: refused, failing closed.
func testUnknownSealIsRefused(t *testing.T, dk destKind) {
	src := fakeCluster(t)
	dst := filepath.Join(t.TempDir(), "copy")
	mustPass(t, dk, manifest.Live, src, dst)
	mustPass(t, dk, manifest.Cold, src, dst)
	must(t, os.Remove(filepath.Join(dst, manifest.DirName, "sealed")))
	// Without the record, the manifest's record of pg_control still tells.
	mustPass(t, dk, manifest.Live, src, dst)
	mustPass(t, dk, manifest.Cold, src, dst)
	must(t, os.Remove(filepath.Join(dst, manifest.DirName, "sealed")))
	startCopy(t, dst)
	if _, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{Jobs: 2}); err == nil || !strings.Contains(err.Error(), "has run") {
		t.Fatalf("without the seal's record, the manifest's record of pg_control must still reveal a copy that ran, got %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dst, manifest.DirName, manifest.FileName), []byte("damaged"), 0o600))
	_, err := runPass(t, dk, context.Background(), manifest.Live, src, dst, Options{Jobs: 2})
	if err == nil || !strings.Contains(err.Error(), "cannot tell whether it has run") {
		t.Fatalf("with nothing that records the seal, a copy with a pg_control installed must be refused, got %v", err)
	}
}
