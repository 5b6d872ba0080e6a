package remote

import (
	"fmt"

	"github.com/pgtwopass/pgtwopass/internal/wire"
	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// A file's block hashes may not fit in one frame (a 1 GiB segment has
// 131072 of them): the receiver sends them in parts of at most
// wire.HashesPerFrame, each but the last with More set, and the sender puts
// the parts together. Both kinds of message that carry hashes (TBasis and
// THashReply) go through these two functions.

// sendHashParts calls send with each part of hashes and whether more
// follow; an empty list is one part.
func sendHashParts(hashes []manifest.Hash, send func(part []manifest.Hash, more bool) error) error {
	for {
		n := min(len(hashes), wire.HashesPerFrame)
		if err := send(hashes[:n], n < len(hashes)); err != nil {
			return err
		}
		hashes = hashes[n:]
		if len(hashes) == 0 {
			return nil
		}
	}
}

// hashParts puts together the parts of one message at a time: a message of
// type T with its key (the file it is about), its hashes and More.
type hashParts[T any] struct {
	pending *T
	key     func(*T) string
	hashes  func(*T) *[]manifest.Hash
	blocks  func(*T) *[]uint32 // the blocks of the hashes, if the message has them
	more    func(*T) bool
}

// add takes the next part m. It returns the whole message once its last
// part came, nil while parts are missing, and an error when a part of
// another message comes before the last one.
func (hp *hashParts[T]) add(m T) (*T, error) {
	if p := hp.pending; p != nil {
		if hp.key(p) != hp.key(&m) {
			return nil, fmt.Errorf("%w: the hashes of %s interrupted by %s", wire.ErrCorrupt, hp.key(p), hp.key(&m))
		}
		*hp.hashes(p) = append(*hp.hashes(p), *hp.hashes(&m)...)
		if hp.blocks != nil {
			*hp.blocks(p) = append(*hp.blocks(p), *hp.blocks(&m)...)
		}
	} else {
		hp.pending = &m
	}
	if hp.more(&m) {
		return nil, nil
	}
	whole := hp.pending
	hp.pending = nil
	return whole, nil
}

func basisParts() *hashParts[wire.Basis] {
	return &hashParts[wire.Basis]{
		key:    func(m *wire.Basis) string { return fmt.Sprintf("file %d", m.ID) },
		hashes: func(m *wire.Basis) *[]manifest.Hash { return &m.Hashes },
		blocks: func(m *wire.Basis) *[]uint32 { return &m.Blocks },
		more:   func(m *wire.Basis) bool { return m.More },
	}
}

func hashReplyParts() *hashParts[wire.HashReply] {
	return &hashParts[wire.HashReply]{
		key:    func(m *wire.HashReply) string { return fmt.Sprintf("%q", m.Rel) },
		hashes: func(m *wire.HashReply) *[]manifest.Hash { return &m.Hashes },
		more:   func(m *wire.HashReply) bool { return m.More },
	}
}
