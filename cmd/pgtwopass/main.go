// Command pgtwopass copies a PostgreSQL data directory with the shortest
// possible downtime: live passes while the server runs, then a cold pass
// with the server stopped that writes only the blocks that changed.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	// PGTWOPASS_CPUPROFILE=FILE writes a CPU profile of the run (make bench).
	if path := os.Getenv("PGTWOPASS_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	pprof.StopCPUProfile()
	os.Exit(code)
}
