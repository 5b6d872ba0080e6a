package pass

import "time"

// Flow control (the mechanics are in internal/flow). The destination hands the sender the files to read, and
// records each once it is done, in walk order; what lies between is in
// flight. Enough must be in flight to keep the sender's workers busy and,
// to another host, to fill the round trip: each file costs one (a basis one
// way, its blocks and its end the other), so a pass that holds W files in
// flight over a round trip of RTT goes through at most W / RTT files a
// second. What is in flight also costs memory: the block hashes of each
// file on both sides (16 bytes per 8 KiB block) and a few hundred bytes of
// bookkeeping. So the window is sized by the round trip for its count of
// files, and bounded by bytes for its memory.

// BatchFiles is how many files the sender asks the destination for at a
// time (DestinationPass.Next), and the most it hands one worker at once.
const BatchFiles = 64

// FilesPerSecond bounds how fast a pass goes through files that need no
// write (an unchanged cold pass, which reads every file): 100,000 a second
// (10 µs a file) is more than two cores reach. The window holds enough files
// to cover a round trip at that rate.
const FilesPerSecond = 100_000

// MaxInFlightFiles bounds the window's files: about 1 KiB each on both
// sides, 64 MiB in all.
const MaxInFlightFiles = 1 << 16

// MaxInFlightBytes bounds the bytes of the files in flight (their source
// sizes): their block hashes take 0.4% of that at 8 KiB blocks on each side
// (16 MiB), and it covers the round trip of a link of 10 GB/s up to 0.4 s.
// A file larger than that goes in flight alone.
const MaxInFlightBytes = 4 << 30

// InFlightFiles is the window's count of files for a pass with jobs
// workers whose files take rtt to go to the sender and back: a few batches
// per worker, and the files that the fastest pass goes through in two round
// trips.
func InFlightFiles(jobs int, rtt time.Duration) int {
	n := 4*max(jobs, 1)*BatchFiles + int(2*rtt.Seconds()*FilesPerSecond)
	return min(max(n, 1), MaxInFlightFiles)
}
