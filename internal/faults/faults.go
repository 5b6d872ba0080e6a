// Package faults holds the hooks by which tests stop or break the engine at
// precise points: the crash and fault tests of integration/ and the unit
// tests of the engine's packages.
//
// The hooks are nil in a release build and nothing in it can set them: the
// code that arms them from PGTWOPASS_FAULT_* environment variables is
// compiled only with the build tag pgtwopass_faults (arm.go), which the
// integration tests use to build their binary. Unit tests set the hooks
// directly.
package faults

import (
	"os/exec"
	"time"
)

// Hooks are the fault points. Each is nil unless a test armed it.
var Hooks struct {
	// BeforeWrite runs before each run of changed blocks is written to the
	// copy; an error it returns is the write's error.
	BeforeWrite func(path string, blocks int64) error
	// BeforeRead runs before each chunk of a source file is read; an error
	// it returns is the read's error.
	BeforeRead func(path string) error
	// AfterFile runs after each file of a pass is complete and durable.
	AfterFile func(rel string)
	// BeforeSync runs before each fsync of a file of the copy that a pass
	// changed; an error it returns is the fsync's error.
	BeforeSync func(path string) error
	// AfterOpen runs after a source file is opened and stat'ed, before it
	// is read: a test may change the file under the pass there.
	AfterOpen func(path string)
	// QuickMargin, when not 0, replaces the quick cold pass's safe horizon.
	QuickMargin time.Duration
	// Phase runs when finish reaches a named phase that runs in this
	// process: "checkpoint" (connected, before the CHECKPOINT is sent) and
	// "seal" (the manifest committed, before global/pg_control goes in).
	Phase func(name string)
	// WrapCommand may rewrite the command that runs a phase in a child
	// process ("stop" and "start" of the server) before it starts; the
	// function it returns runs once the command has started.
	WrapCommand func(phase string, cmd *exec.Cmd) (started func())
	// BeforeRestart runs when the job is about to start the source server
	// again (--restart): a test may look at the stopped source there.
	BeforeRestart func()
	// SourceRead runs after each read of a source file in a cold pass, with
	// the bytes read (the cross-check of the WAL-guided cold pass).
	SourceRead func(path string, off, n int64)
	// BeforeStop runs right before finish stops the source server.
	BeforeStop func()
}

// SourceRead calls Hooks.SourceRead if set.
func SourceRead(path string, off, n int64) {
	if h := Hooks.SourceRead; h != nil {
		h(path, off, n)
	}
}

// BeforeStop calls Hooks.BeforeStop if set.
func BeforeStop() {
	if h := Hooks.BeforeStop; h != nil {
		h()
	}
}

// BeforeWrite calls Hooks.BeforeWrite if set.
func BeforeWrite(path string, blocks int64) error {
	if h := Hooks.BeforeWrite; h != nil {
		return h(path, blocks)
	}
	return nil
}

// BeforeRead calls Hooks.BeforeRead if set.
func BeforeRead(path string) error {
	if h := Hooks.BeforeRead; h != nil {
		return h(path)
	}
	return nil
}

// BeforeSync calls Hooks.BeforeSync if set.
func BeforeSync(path string) error {
	if h := Hooks.BeforeSync; h != nil {
		return h(path)
	}
	return nil
}

// AfterFile calls Hooks.AfterFile if set.
func AfterFile(rel string) {
	if h := Hooks.AfterFile; h != nil {
		h(rel)
	}
}

// BeforeRestart calls Hooks.BeforeRestart if set.
func BeforeRestart() {
	if h := Hooks.BeforeRestart; h != nil {
		h()
	}
}

// AfterOpen calls Hooks.AfterOpen if set.
func AfterOpen(path string) {
	if h := Hooks.AfterOpen; h != nil {
		h(path)
	}
}

// Phase calls Hooks.Phase if set.
func Phase(name string) {
	if h := Hooks.Phase; h != nil {
		h(name)
	}
}

// WrapCommand calls Hooks.WrapCommand if set, and returns what to call
// once cmd has started.
func WrapCommand(phase string, cmd *exec.Cmd) (started func()) {
	if h := Hooks.WrapCommand; h != nil {
		if f := h(phase, cmd); f != nil {
			return f
		}
	}
	return func() {}
}
