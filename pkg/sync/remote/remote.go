// Package remote carries a pass to a copy on another host: the [Client]
// is a pass.Destination on the sender's side that speaks the wire protocol
// (internal/wire, docs/protocol.md) over a connection, and [Receive] is the
// receiver that serves a destination.Local at the other end. [Dial] starts
// the receiver through a remote shell (ssh by default) and connects to it;
// tests connect a Client to Receive over pipes ([NewClient]).
package remote

import (
	"io"
	"strings"
)

// Remote is a destination on another host: [user@]host:PATH, as rsync
// writes it.
type Remote struct {
	User, Host, Path string
}

func (r Remote) String() string {
	s := r.Host + ":" + r.Path
	if r.User != "" {
		s = r.User + "@" + s
	}
	return s
}

// login is [user@]host.
func (r Remote) login() string {
	if r.User != "" {
		return r.User + "@" + r.Host
	}
	return r.Host
}

// ParseRemote reports whether dest names a directory on another host, as
// rsync decides it: a colon before the first slash. "./a:b" and "/x:y" are
// local paths.
func ParseRemote(dest string) (Remote, bool) {
	i := strings.IndexByte(dest, ':')
	if i <= 0 || strings.Contains(dest[:i], "/") {
		return Remote{}, false
	}
	r := Remote{Host: dest[:i], Path: dest[i+1:]}
	if u, h, ok := strings.Cut(r.Host, "@"); ok {
		r.User, r.Host = u, h
	}
	return r, true
}

// Options says how to reach a destination on another host.
type Options struct {
	// Rsh is the remote shell, with its options (rsync's -e): "ssh" by
	// default, e.g. "ssh -p 2222 -i key".
	Rsh string
	// RemotePath is pgtwopass on the other host: "pgtwopass" by default.
	// It goes into the remote command line as it is, so that it may be,
	// for example, "sudo -u postgres pgtwopass".
	RemotePath string
	// Compress compresses the blocks sent with zstd.
	Compress bool
	// BWLimit bounds the bytes sent per second; 0 means no limit.
	BWLimit int64
	// Stderr receives the remote shell's and the receiver's stderr.
	Stderr io.Writer
	// Program names this pgtwopass in the hello.
	Program string
}

// DefaultRsh and DefaultRemotePath are the defaults of --rsh and
// --remote-path.
const (
	DefaultRsh        = "ssh"
	DefaultRemotePath = "pgtwopass"
)
