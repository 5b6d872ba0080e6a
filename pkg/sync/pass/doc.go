// Package pass holds what the two sides of a pass share, and nothing else.
//
// A pass runs between two sides, as rsync's does. The sender (package
// sender) walks SRC, reads the files the destination asks for, hashes their
// blocks and sends the blocks that differ. The destination holds the copy
// and its manifest: package destination on this host, or a receiver on
// another host reached through package remote. The sender knows the
// destination only through the [Destination] and [DestinationPass]
// interfaces, so that both destinations run the same sender.
//
// What travels between them: the [Entry] list of the walk, a [Basis] for
// each file the sender must read, the file's blocks, and a [FileResult] for
// each file read. The rest of the package is what both sides need to agree
// on: the walk and its excludes ([Walk], [Excluder]), how blocks are hashed
// ([HashBlocks], [HashFile]), the events they report ([Observer]) and the
// errors a user can fix ([InputError]).
package pass
