// Package crc32c computes CRC-32C (Castagnoli), the checksum of
// PostgreSQL's backup_manifest, and combines the checksums of consecutive
// pieces, so that chunks of a file read by different workers in any order
// give the checksum of the whole file.
package crc32c

import "hash/crc32"

var table = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C of b.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, table) }

// Update returns the CRC-32C of the data whose checksum is crc followed by b.
func Update(crc uint32, b []byte) uint32 { return crc32.Update(crc, table, b) }

// Combine returns the CRC-32C of A followed by B, given crcA = Checksum(A),
// crcB = Checksum(B) and lenB = len(B). It applies lenB zero bytes to crcA
// in O(log lenB) steps of GF(2) matrix algebra (zlib's crc32_combine).
func Combine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA
	}
	var even, odd [32]uint32
	// odd: the operator for one zero bit (reflected Castagnoli polynomial).
	odd[0] = 0x82f63b78
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	square(&even, &odd) // two zero bits
	square(&odd, &even) // four zero bits
	for {
		square(&even, &odd) // apply the next power of two of zero bytes
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
