package sync

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

func inputErr(hint, format string, args ...any) error {
	return &InputError{What: fmt.Sprintf(format, args...), Hint: hint}
}

// ErrDifferences reports that verify found the copy different from the
// source (exit code 4). Verify returns the differences themselves as values.
var ErrDifferences = errors.New("the copy differs from the source")

// ErrInterrupted reports a pass stopped by a signal or a cancelled context
// at a clean point: the copy is left unsealed and a rerun converges.
var ErrInterrupted = errors.New("interrupted")
