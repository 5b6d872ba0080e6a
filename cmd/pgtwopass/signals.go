package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupts turns SIGINT and SIGTERM into the end of a run. The first
// cancels the run's context: the engine stops at its next clean point, lets
// a stop or a start of the server that has begun run to its end, and with
// --restart starts the server again. The signals' default action (death) is
// never restored while a run may hold the server: a later signal is
// reported with what pgtwopass waits for ("already starting the server
// again; waiting for it"), not obeyed. Commands that never stop a server
// (all but finish and sync) obey a second signal at once, as programs do.
//
// The stop and start commands run in process groups of their own
// (pkg/pgctl), so a terminal's Ctrl-C, sent to its foreground process
// group, reaches pgtwopass alone.
type interrupts struct {
	cancel context.CancelFunc
	ch     chan os.Signal

	mu     sync.Mutex
	n      int
	report func(sig os.Signal, n int) (hold bool) // nil: obey a second signal
}

type interruptsKey struct{}

// notifyInterrupts returns a context that the first SIGINT or SIGTERM
// cancels, and the handler, which the run's output finds in the context
// (interruptsOf) to report signals.
func notifyInterrupts(parent context.Context) (context.Context, *interrupts) {
	ctx, cancel := context.WithCancel(parent)
	h := &interrupts{cancel: cancel, ch: make(chan os.Signal, 4)}
	signal.Notify(h.ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		for sig := range h.ch {
			h.handle(sig)
		}
	}()
	return context.WithValue(ctx, interruptsKey{}, h), h
}

// interruptsOf returns the handler of ctx, or nil.
func interruptsOf(ctx context.Context) *interrupts {
	h, _ := ctx.Value(interruptsKey{}).(*interrupts)
	return h
}

func (h *interrupts) handle(sig os.Signal) {
	h.mu.Lock()
	h.n++
	n, report := h.n, h.report
	h.mu.Unlock()
	h.cancel()
	hold := false
	if report != nil {
		hold = report(sig, n)
	}
	if n > 1 && !hold {
		// Die of the signal, as without a handler.
		signal.Reset(sig)
		syscall.Kill(os.Getpid(), sig.(syscall.Signal))
	}
}

// setReporter makes report say what a signal does, and decide whether a
// second one is held (true) or obeyed.
func (h *interrupts) setReporter(report func(sig os.Signal, n int) bool) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.report = report
	h.mu.Unlock()
}

// stop stops the delivery of signals to the handler.
func (h *interrupts) stop() {
	signal.Stop(h.ch)
	h.cancel()
}
