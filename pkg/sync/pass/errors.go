package pass

import (
	"errors"
	"fmt"
)

// InputError is bad input: a path, a flag or a state of SRC or DEST that
// the user must change. Nothing was written when it is returned.
type InputError struct {
	What string // what is wrong
	Hint string // what to do about it
}

func (e *InputError) Error() string { return e.What }

// InputErr returns an *InputError.
func InputErr(hint, format string, args ...any) error {
	return &InputError{What: fmt.Sprintf(format, args...), Hint: hint}
}

// ErrInterrupted reports a pass stopped by a signal or a cancelled context
// at a clean point: the copy is left unsealed and a rerun converges.
var ErrInterrupted = errors.New("interrupted")

// RemoteError is a failure the receiver on another host reported.
type RemoteError struct {
	Host string
	Msg  string
}

func (e *RemoteError) Error() string { return "on " + e.Host + ": " + e.Msg }
