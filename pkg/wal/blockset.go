package wal

import (
	"maps"
	"math/bits"
	"slices"
)

// BlockSet is a set of block numbers of one relation fork. It costs about 40
// bytes per run of 64 blocks that has a member: 2 MiB for a fully changed
// 1 GiB segment file's 131072 blocks, little for a few scattered blocks.
type BlockSet struct {
	words map[uint32]uint64 // block/64 -> bit block%64
	n     int
}

// Add adds block b.
func (s *BlockSet) Add(b uint32) {
	if s.words == nil {
		s.words = make(map[uint32]uint64)
	}
	w, bit := s.words[b/64], uint64(1)<<(b%64)
	if w&bit == 0 {
		s.words[b/64] = w | bit
		s.n++
	}
}

// Has reports whether block b is in the set.
func (s *BlockSet) Has(b uint32) bool { return s.words[b/64]&(1<<(b%64)) != 0 }

// Len returns the number of blocks in the set.
func (s *BlockSet) Len() int { return s.n }

// Clone returns a copy of s that shares nothing with it.
func (s *BlockSet) Clone() *BlockSet { return &BlockSet{words: maps.Clone(s.words), n: s.n} }

// Blocks returns the blocks in increasing order.
func (s *BlockSet) Blocks() []uint32 {
	keys := make([]uint32, 0, len(s.words))
	for k := range s.words {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]uint32, 0, s.n)
	for _, k := range keys {
		for w := s.words[k]; w != 0; w &= w - 1 {
			out = append(out, k*64+uint32(bits.TrailingZeros64(w)))
		}
	}
	return out
}
