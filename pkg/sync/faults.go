package sync

// Faults holds test-only hooks that stop or break the engine at precise
// points, for the crash and fault tests. They are nil in normal use; the CLI
// sets them from PGTWOPASS_FAULT_* environment variables (cmd/pgtwopass).
var Faults struct {
	// BeforeWrite runs before each run of changed blocks is written; an
	// error it returns is the write's error.
	BeforeWrite func(path string, blocks int64) error
	// BeforeRead runs before each chunk of a source file is read; an error
	// it returns is the read's error.
	BeforeRead func(path string) error
	// AfterFile runs after each file of a pass is complete and durable.
	AfterFile func(rel string)
	// AfterOpen runs after a source file is opened and stat'ed, before it
	// is read: a test may change the file under the pass there.
	AfterOpen func(path string)
}
