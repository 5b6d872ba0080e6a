package pass

import (
	"path"
	"strings"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// DefaultExcludes are left out of every copy, and removed from it, because
// they describe a running server, not the cluster. A pattern without a
// slash matches an entry's name at any depth; one with a slash matches the
// path relative to the data directory. An excluded directory is left out
// with everything below it; "dir/*" leaves out the contents but keeps dir.
// docs/design.md gives the reason for each.
var DefaultExcludes = []string{
	"postmaster.pid",  // the lock of the running server; a copy must not carry it
	"postmaster.opts", // the source's command line, with the source's -D
	"pg_stat_tmp/*",   // temporary statistics of the running server
	"pgsql_tmp*",      // temporary files of running queries, removed at startup
	"postgresql.auto.conf.tmp",
	"current_logfiles.tmp",
	"pg_wal/summaries/temp.summary", // the WAL summary being written (17+), renamed when complete
}

// TablespaceMarker is the file in a tablespace's copy (the NEW directory of
// --tablespace-map) that says whose tablespace it is a copy of.
const TablespaceMarker = ".pgtwopass-tablespace"

// WALMarker is the file in the directory of the copy's WAL (--waldir) that
// says whose WAL directory it is.
const WALMarker = ".pgtwopass-wal"

// Excluder is a list of patterns that leave entries out of a pass.
type Excluder []string

// NewExcluder returns the default excludes (unless noDefaults) and extra.
func NewExcluder(noDefaults bool, extra []string) Excluder {
	if noDefaults {
		return append(Excluder{}, extra...)
	}
	return append(append(Excluder{}, DefaultExcludes...), extra...)
}

// Excluded reports whether rel (slash-separated, not the root) is left out.
// pgtwopass's own files always are.
func (x Excluder) Excluded(rel string) bool {
	if rel == manifest.DirName || IsMarker(rel) {
		return true
	}
	base := path.Base(rel)
	for _, p := range x {
		subject := base
		if strings.Contains(p, "/") {
			subject = rel
		}
		if match(p, subject) {
			return true
		}
	}
	return false
}

// match is path.Match without its cost for the patterns most common here:
// a name ("postmaster.pid") and a prefix ("pgsql_tmp*", "pg_stat_tmp/*").
// The walk asks for every entry of SRC, each against every pattern.
func match(p, subject string) bool {
	switch i := strings.IndexAny(p, `*?[\`); {
	case i < 0:
		return p == subject
	case i == len(p)-1 && p[i] == '*':
		return strings.HasPrefix(subject, p[:i]) && !strings.Contains(subject[i:], "/")
	}
	ok, _ := path.Match(p, subject)
	return ok
}

// IsMarker reports whether rel is the marker in a tablespace's copy or in
// the copy's WAL directory.
func IsMarker(rel string) bool {
	dir, name := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	return name == TablespaceMarker && IsTablespaceLink(dir) || name == WALMarker && dir == WalkedDir
}
