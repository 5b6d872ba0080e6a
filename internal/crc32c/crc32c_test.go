package crc32c

import (
	"math/rand/v2"
	"testing"
)

func TestCombineEqualsChecksumOfConcatenation(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, split := range []int{0, 1, 7, 8192, 65535, 1 << 19, len(data) - 1, len(data)} {
		a, b := data[:split], data[split:]
		got := Combine(Checksum(a), Checksum(b), int64(len(b)))
		if want := Checksum(data); got != want {
			t.Errorf("split at %d: Combine gives %08x, the checksum of the whole is %08x", split, got, want)
		}
	}
	// Many pieces, combined in order, as the passes do with chunks.
	var crc uint32
	for off := 0; off < len(data); off += 100000 {
		end := min(off+100000, len(data))
		crc = Combine(crc, Checksum(data[off:end]), int64(end-off))
	}
	if crc != Checksum(data) {
		t.Errorf("combining pieces in order gives %08x, want %08x", crc, Checksum(data))
	}
}

func TestKnownValue(t *testing.T) {
	// PostgreSQL's backup_manifest lists PG_VERSION "15\n" with checksum
	// "8a744722": the CRC's bytes, little-endian.
	if got := Checksum([]byte("15\n")); got != 0x2247748a {
		t.Errorf("CRC-32C of \"15\\n\" = %08x, want 2247748a", got)
	}
}
