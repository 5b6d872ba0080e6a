// Command pgtwopass copies a PostgreSQL data directory with the shortest
// possible downtime: live passes while the server runs, then a cold pass
// with the server stopped that writes only the blocks that changed.
package main

import (
	"context"
	"os"
	"runtime/pprof"

	"github.com/pgtwopass/pgtwopass/pkg/pgctl"
)

func main() {
	// As root, pgtwopass connects to the server as the data directory's
	// owner through a copy of itself (peer authentication): that copy
	// serves here and exits.
	pgctl.ServeOwnerHelper()
	// PGTWOPASS_CPUPROFILE=FILE writes a CPU profile of the run (make bench).
	if path := os.Getenv("PGTWOPASS_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}
	ctx, intr := notifyInterrupts(context.Background())
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	intr.stop()
	pprof.StopCPUProfile()
	os.Exit(code)
}
