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

// combineSlow is zlib's crc32_combine as first written here: it squares its
// way up to lenB on every call. Combine must agree with it for any length.
func combineSlow(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA
	}
	var even, odd [32]uint32
	odd[0] = 0x82f63b78
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	square(&even, &odd)
	square(&odd, &even)
	for {
		square(&even, &odd)
		if lenB&1 != 0 {
			crcA = times(&even, crcA)
		}
		lenB >>= 1
		if lenB == 0 {
			break
		}
		square(&odd, &even)
		if lenB&1 != 0 {
			crcA = times(&odd, crcA)
		}
		lenB >>= 1
		if lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

func TestCombineWithPrecomputedOperatorsMatchesZlibsLoop(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	lengths := []int64{1, 2, 3, 8191, 8192, 4 << 20, 4<<20 + 1, 1 << 30, 1<<30 - 8192 + 5, 1<<40 + 12345, 1<<62 - 1}
	for range 200 {
		lengths = append(lengths, r.Int64N(1<<34)+1)
	}
	for _, n := range lengths {
		a, b := r.Uint32(), r.Uint32()
		if got, want := Combine(a, b, n), combineSlow(a, b, n); got != want {
			t.Fatalf("Combine(%08x, %08x, %d) = %08x, zlib's loop gives %08x: the chunks of a file would get a wrong CRC-32C", a, b, n, got, want)
		}
		// A piece whose CRC happens to be 0 takes the shortcut.
		if got, want := Combine(0, b, n), combineSlow(0, b, n); got != want {
			t.Fatalf("Combine(0, %08x, %d) = %08x, want %08x", b, n, got, want)
		}
	}
}
