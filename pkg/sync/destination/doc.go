// Package destination is the side of a pass that holds the copy on this
// host and its manifest. [New] returns a [Local] copy, which implements
// pass.Destination: it checks and locks DEST, merges each pass's entries
// with the manifest, hands the sender a basis for every file it must read,
// writes the blocks it receives, makes every file and directory durable,
// commits the new manifest and, after a cold pass, seals the copy.
//
// A receiver on another host (package remote) serves a Local over the
// wire, so that a copy there runs exactly this code.
package destination
