package sync

import (
	"errors"
	"fmt"
	"time"
)

// ErrDifferences reports that verify found the copy different from the
// source (exit code 4). Verify returns the differences themselves as values.
var ErrDifferences = errors.New("the copy differs from the source")

// BudgetError reports that the predicted downtime exceeds --max-downtime:
// the server was not stopped and the copy stays unsealed (exit code 3).
type BudgetError struct {
	Budget     time.Duration
	Prediction *Prediction // nil when nothing was measured to predict from
}

func (e *BudgetError) Error() string {
	if e.Prediction == nil {
		return fmt.Sprintf("cannot predict the downtime to keep to --max-downtime %v: %v; the server was not stopped", e.Budget, errNoBasis)
	}
	return fmt.Sprintf("the predicted downtime %s exceeds --max-downtime %v; the server was not stopped and the copy stays unsealed",
		e.Prediction, e.Budget)
}

// Hint says what to do about a budget that cannot be met.
func (e *BudgetError) Hint() string {
	if e.Prediction == nil {
		return "run prepare first: its passes measure the rates the prediction needs"
	}
	return "run prepare again (each live pass leaves less to the cold pass), use --cold-pass=quick, or try a quieter hour"
}
