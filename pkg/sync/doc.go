// Package sync is pgtwopass's engine: it copies a PostgreSQL data directory
// block by block and keeps the copy's manifest.
//
// Most callers need three functions: [Prepare] runs a live pass while the
// source server runs, [Finish] stops the server, runs the cold pass that reads
// every source block and seals the copy, and [Verify] compares a stopped
// source with its copy. [Sync] is Prepare then Finish.
//
// The engine never prints. It reports through an [Observer]; errors the user
// can fix are [*InputError] values, which the CLI maps to exit code 2.
package sync
