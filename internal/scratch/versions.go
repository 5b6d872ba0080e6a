package scratch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SupportedMajors are the PostgreSQL major versions pgtwopass is tested
// with, oldest first.
var SupportedMajors = []string{"13", "14", "15", "16", "17", "18"}

// InstallScript installs the servers of SupportedMajors into VersionCache.
const InstallScript = "scripts/install-pg-versions.sh"

// VersionCache returns the directory where InstallScript puts the servers
// of other major versions: $PGTWOPASS_PG_CACHE, else
// /var/cache/pgtwopass/postgres. Its <major>/bin holds initdb, pg_ctl and
// postgres only (npm builds); the client programs come from elsewhere (see
// Options.ClientBinDir).
func VersionCache() string {
	if d := os.Getenv("PGTWOPASS_PG_CACHE"); d != "" {
		return d
	}
	return "/var/cache/pgtwopass/postgres"
}

// Versions returns the PostgreSQL server installations found here, major
// version -> bin directory holding initdb: Debian's
// /usr/lib/postgresql/<major>/bin and VersionCache()/<major>/bin. For a
// major found in both, Debian's wins: it has the client programs too.
func Versions() map[string]string {
	v := map[string]string{}
	for _, pattern := range []string{
		filepath.Join(VersionCache(), "*", "bin"),
		"/usr/lib/postgresql/*/bin",
	} {
		dirs, _ := filepath.Glob(pattern)
		for _, d := range dirs {
			major := filepath.Base(filepath.Dir(d))
			if _, err := strconv.ParseFloat(major, 64); err != nil {
				continue // <npm-version> directories: reached through their <major> link
			}
			if isExecutable(filepath.Join(d, "initdb")) {
				v[major] = d
			}
		}
	}
	return v
}

// VersionBinDir returns the bin directory of PostgreSQL major (Versions),
// or an error that says how to install it.
func VersionBinDir(major string) (string, error) {
	if d, ok := Versions()[major]; ok {
		return d, nil
	}
	return "", fmt.Errorf("scratch: PostgreSQL %s is not installed (no initdb in /usr/lib/postgresql/%s/bin or %s): run %s",
		major, major, filepath.Join(VersionCache(), major, "bin"), InstallScript)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// ClientProgram returns the path of client program prog (psql, pgbench,
// pg_amcheck, ...) to run against c's server: from c.BinDir when it has
// it, else from c.ClientBinDir or the newest Debian installation.
func (c *Cluster) ClientProgram(prog string) (string, error) {
	d, err := clientDir(c.BinDir, c.ClientBinDir, prog)
	if err != nil {
		return "", err
	}
	return filepath.Join(d, prog), nil
}

// clientDir returns the directory to run client program prog (psql,
// pgbench, pg_checksums, ...) from: bin when it has prog, else client when
// set, else the newest Debian installation that has prog, else the one on
// PATH.
func clientDir(bin, client, prog string) (string, error) {
	if isExecutable(filepath.Join(bin, prog)) {
		return bin, nil
	}
	if client != "" {
		if !isExecutable(filepath.Join(client, prog)) {
			return "", fmt.Errorf("scratch: ClientBinDir %s has no %s", client, prog)
		}
		return client, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, prog)) {
			return d, nil
		}
	}
	if p, err := exec.LookPath(prog); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("scratch: no %s in %s (npm builds ship only initdb, pg_ctl and postgres) nor in any /usr/lib/postgresql/*/bin: install Debian's postgresql-client or set Options.ClientBinDir",
		prog, bin)
}

// majorOf returns the version of /usr/lib/postgresql/<v>/bin as a number
// (0 when it is not one).
func majorOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// clusterMajor returns the major version in dir/PG_VERSION ("" if unknown).
func clusterMajor(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
