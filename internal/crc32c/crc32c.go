// Package crc32c computes CRC-32C (Castagnoli), the checksum of
// PostgreSQL's backup_manifest, and combines the checksums of consecutive
// pieces, so that chunks of a file read by different workers in any order
// give the checksum of the whole file.
package crc32c

import (
	"errors"
	"hash/crc32"
	"io"
	"sync"
)

var table = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C of b.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, table) }

// Update returns the CRC-32C of the data whose checksum is crc followed by b.
func Update(crc uint32, b []byte) uint32 { return crc32.Update(crc, table, b) }

// Reader returns the CRC-32C of what r holds, read into buf.
func Reader(r io.Reader, buf []byte) (uint32, error) {
	var crc uint32
	for {
		n, err := io.ReadFull(r, buf)
		crc = Update(crc, buf[:n])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return crc, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// Combine returns the CRC-32C of A followed by B, given crcA = Checksum(A),
// crcB = Checksum(B) and lenB = len(B). It applies lenB zero bytes to crcA
// (zlib's crc32_combine), one precomputed operator per set bit of lenB: a
// few hundred XORs, whatever lenB.
func Combine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 || crcA == 0 {
		// The operator is linear: zero bytes applied to 0 leave 0.
		return crcA ^ crcB
	}
	ops := zeroOps()
	for k := 0; lenB != 0; k, lenB = k+1, lenB>>1 {
		if lenB&1 != 0 {
			crcA = times(&ops[k], crcA)
		}
	}
	return crcA ^ crcB
}

// zeroOps returns the operators that apply 2^k zero bytes to a CRC, for k
// from 0 to 62, each a 32×32 matrix over GF(2) (one column per word).
var zeroOps = sync.OnceValue(func() *[63][32]uint32 {
	var ops [63][32]uint32
	var odd, even [32]uint32
	// odd: the operator for one zero bit (reflected Castagnoli polynomial).
	odd[0] = 0x82f63b78
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	square(&even, &odd)   // two zero bits
	square(&odd, &even)   // four zero bits
	square(&ops[0], &odd) // eight zero bits: one byte
	for k := 1; k < len(ops); k++ {
		square(&ops[k], &ops[k-1])
	}
	return &ops
})

func times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func square(dst, mat *[32]uint32) {
	for n := range 32 {
		dst[n] = times(mat, mat[n])
	}
}
