package remote

import (
	"context"
	"io"

	"github.com/pgtwopass/pgtwopass/pkg/sync/destination"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// Loopback runs a receiver for the copy in dir in this process and returns
// a Client connected to it over pipes: the whole protocol, without a remote
// shell. l says where the parts of the copy outside dir go.
func Loopback(ctx context.Context, dir string, l destination.Layout, o Options, obs pass.Observer) (*Client, error) {
	toReceiver, fromSender := io.Pipe()
	toSender, fromReceiver := io.Pipe()
	pl := &pipeLink{w: fromSender, exited: make(chan struct{})}
	go func() {
		pl.err = Receive(context.Background(), toReceiver, fromReceiver, ReceiveOptions{Dir: dir, Tablespaces: l.Tablespaces, WALDir: l.WALDir, Program: o.Program})
		toReceiver.Close()
		fromReceiver.Close()
		close(pl.exited)
	}()
	return NewClient(ctx, toSender, pl, Remote{Host: "loopback", Path: dir}, o, obs)
}

// pipeLink is the link to a receiver in this process.
type pipeLink struct {
	w      *io.PipeWriter
	exited chan struct{}
	err    error // Receive's; set before exited is closed
}

func (l *pipeLink) Write(p []byte) (int, error) { return l.w.Write(p) }
func (l *pipeLink) Close() error                { return l.w.Close() }
func (l *pipeLink) Exited() <-chan struct{}     { return l.exited }
func (l *pipeLink) Kill()                       { l.w.CloseWithError(io.ErrClosedPipe) }

func (l *pipeLink) Describe() string {
	if l.err != nil {
		return "the receiver ended with: " + l.err.Error()
	}
	return ""
}
