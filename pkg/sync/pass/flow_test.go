package pass

import (
	"testing"
	"time"
)

func TestInFlightFiles(t *testing.T) {
	local := InFlightFiles(2, 0)
	if local < 4*BatchFiles {
		t.Fatalf("with no latency the window must still hold a few batches per worker, got %d", local)
	}
	far := InFlightFiles(2, 50*time.Millisecond)
	// A round trip of 50 ms must not cap the pass below FilesPerSecond.
	if float64(far)/0.05 < FilesPerSecond {
		t.Fatalf("%d files in flight over 50 ms go through %.0f files a second, under %d", far, float64(far)/0.05, FilesPerSecond)
	}
	if InFlightFiles(2, time.Hour) != MaxInFlightFiles {
		t.Fatalf("the window's files are bounded")
	}
}
