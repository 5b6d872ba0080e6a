package remote

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkCompressWrites measures what --compress costs the sender: every
// worker compresses the runs of blocks it writes (up to 4 MiB) with one
// shared encoder's EncodeAll. With the encoder's concurrency at 1 (before)
// the workers compress one at a time; at one per CPU (now) each compresses
// its own. Run with -cpu 1,2 to see the difference on this machine:
//
//	go test -run '^$' -bench CompressWrites -cpu 2 ./pkg/sync/remote
func BenchmarkCompressWrites(b *testing.B) {
	// Pages like pgbench's: half repeated tuples, half random bytes.
	data := make([]byte, 4<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(data); i += 64 {
		if i/64%2 == 0 {
			copy(data[i:], fmt.Sprintf("%-64d", i/4096))
		} else {
			for j := i; j < i+64 && j < len(data); j++ {
				data[j] = byte(r.Uint32())
			}
		}
	}
	for _, c := range []struct {
		name        string
		concurrency int
	}{{"encoder-concurrency-1", 1}, {"encoder-per-cpu", runtime.GOMAXPROCS(0)}} {
		b.Run(c.name, func(b *testing.B) {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(c.concurrency))
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			b.SetBytes(int64(len(data)))
			b.RunParallel(func(pb *testing.PB) {
				var out []byte
				for pb.Next() {
					out = enc.EncodeAll(data, out[:0])
				}
			})
		})
	}
}
