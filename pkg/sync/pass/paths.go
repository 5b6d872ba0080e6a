package pass

import (
	"path/filepath"
	"strings"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
)

// Resolve returns path made absolute with the symlinks of its longest
// existing prefix resolved, so that paths that do not exist yet can be
// compared with paths that do.
func Resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	var rest []string
	for p := abs; ; p = filepath.Dir(p) {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if p == filepath.Dir(p) {
			return abs, nil
		}
		rest = append([]string{filepath.Base(p)}, rest...)
	}
}

// Within reports whether path is strictly inside dir (both clean and
// absolute).
func Within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// ValidRel reports whether rel, a path of an entry of a pass (from a sender
// that may be hostile or broken), names an entry below the data directory:
// "" (the data directory itself), or relative, without empty, "." or ".."
// components, without NUL, and not in pgtwopass's own directory. It
// allocates nothing: a destination checks every entry of every pass.
func ValidRel(rel string) bool {
	if rel == "" {
		return true
	}
	if strings.IndexByte(rel, 0) >= 0 {
		return false
	}
	first := true
	for rest := rel; ; {
		c, after, more := strings.Cut(rest, "/")
		if c == "" || c == "." || c == ".." || first && c == manifest.DirName {
			return false
		}
		if !more {
			return true
		}
		first, rest = false, after
	}
}
