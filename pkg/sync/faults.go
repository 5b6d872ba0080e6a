package sync

// Faults holds test-only hooks that stop or break the engine at precise
// points, for the crash and fault tests. They are nil in normal use; the CLI
// sets them from PGTWOPASS_FAULT_* environment variables (cmd/pgtwopass).
var Faults struct {
	// BeforeWrite runs before each run of changed blocks is written; an
	// error it returns is the write's error.
	BeforeWrite func(path string, blocks int64) error
	// AfterFile runs after each file of a pass is complete and durable.
	AfterFile func(rel string)
}
