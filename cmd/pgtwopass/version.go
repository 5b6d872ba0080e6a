package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version and commit are set at build time by make build, make deb and
// goreleaser:
//
//	go build -ldflags "-X main.version=$(sh packaging/version.sh) -X main.commit=$(git rev-parse HEAD)"
//
// version is what git describe says of the last tag v*, without the v
// (1.2.3, or 1.2.3-4-gabcdef0 four commits later). Without them, as after
// go install, they come from the module's build information.
var (
	version = ""
	commit  = ""
)

// buildInfo is the version, the commit and the Go version of this binary.
type buildInfo struct {
	Version, Commit, GoVersion, Platform string
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		b = b.from(info)
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// from fills what the linker flags did not set from the build
// information: the module version of go install pgtwopass@v1.2.3, the
// commit and its state when go build ran in a git work tree.
func (b buildInfo) from(info *debug.BuildInfo) buildInfo {
	if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		b.Version = strings.TrimPrefix(info.Main.Version, "v")
	}
	if b.Commit == "" {
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" && modified == "true" {
			rev += "-dirty"
		}
		b.Commit = rev
	}
	return b
}

// String is what --version prints.
func (b buildInfo) String() string {
	return fmt.Sprintf("pgtwopass %s (commit %s, %s %s)", b.Version, b.Commit, b.GoVersion, b.Platform)
}

// program names this pgtwopass to a receiver on another host, and to the
// sender that started it.
func program() string { return "pgtwopass " + readBuildInfo().Version }
