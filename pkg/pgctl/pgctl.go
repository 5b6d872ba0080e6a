// Package pgctl controls a PostgreSQL server (stop, start, CHECKPOINT) and
// reads facts about a cluster (PG_VERSION, global/pg_control, postmaster.pid,
// postmaster.opts, the data directory's owner).
//
// [ReadServerState] says whether a server runs, from postmaster.pid, and
// fails closed: a file it cannot read means "a server may be running".
// A [Controller] stops and starts the server: [NewPgCtl], [NewDebian] (a
// cluster of postgresql-common, [FindDebianCluster]), [NewSystemd],
// [NewCommand], or a library user's own; their commands run in process
// groups of their own, out of reach of a terminal's Ctrl-C. [SQL] connects
// for the CHECKPOINT, as root as the data directory's owner through a
// helper process (programs call [ServeOwnerHelper] first thing in main).
//
// [ReadControlFile] reads pg_control itself for PostgreSQL 13 to 18, with
// no program of the cluster's version; [ReadControlData] runs
// pg_controldata instead.
//
// It never writes into the data directory itself, and it never prints or
// logs: it returns values and errors.
package pgctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Owner is the OS user that owns a data directory.
type Owner struct {
	UID, GID uint32
	Name     string   // "" when the uid has no user entry
	Groups   []uint32 // supplementary groups of the user, if known
}

// String returns the user name, or "uid N" when the name is unknown.
func (o Owner) String() string {
	if o.Name != "" {
		return o.Name
	}
	return fmt.Sprintf("uid %d", o.UID)
}

// OwnerOf returns the owner of dataDir.
func OwnerOf(dataDir string) (Owner, error) {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return Owner{}, fmt.Errorf("failed to stat data directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Owner{}, fmt.Errorf("failed to read owner of %s: unsupported platform", dataDir)
	}
	o := Owner{UID: st.Uid, GID: st.Gid}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return o, nil // unknown uid: no name, no groups
	}
	o.Name = u.Username
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				o.Groups = append(o.Groups, uint32(n))
			}
		}
	}
	return o, nil
}

// ReadPGVersion returns the trimmed contents of dataDir/PG_VERSION, e.g. "15".
func ReadPGVersion(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return "", fmt.Errorf("failed to read PG_VERSION: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("failed to read PG_VERSION: file is empty")
	}
	return v, nil
}

// FindBinDir finds the directory holding PostgreSQL's server binaries
// (initdb, pg_ctl, pg_controldata, ...) for major version major ("" = any).
// PGTWOPASS_BINDIR overrides the search.
func FindBinDir(major string) (string, error) {
	if d := os.Getenv("PGTWOPASS_BINDIR"); d != "" {
		if !hasPgCtl(d) {
			return "", fmt.Errorf("failed to find binaries: PGTWOPASS_BINDIR=%s has no pg_ctl", d)
		}
		return d, nil
	}
	var tried []string
	try := func(dir string) bool {
		tried = append(tried, dir)
		return hasPgCtl(dir) && (major == "" || binDirMajor(dir) == major)
	}
	if major != "" {
		if d := "/usr/lib/postgresql/" + major + "/bin"; try(d) {
			return d, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" && try(d) {
			return d, nil
		}
	} else {
		tried = append(tried, "pg_config --bindir")
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if d := filepath.Dir(p); try(d) {
			return d, nil
		}
	} else {
		tried = append(tried, "pg_ctl on PATH")
	}
	if major == "" {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[j], dirs[i]) })
		for _, d := range dirs {
			if try(d) {
				return d, nil
			}
		}
		if len(dirs) == 0 {
			tried = append(tried, "/usr/lib/postgresql/*/bin")
		}
	} else if d := "/usr/pgsql-" + major + "/bin"; try(d) {
		return d, nil
	}
	what := "PostgreSQL server binaries"
	if major != "" {
		what = "PostgreSQL " + major + " server binaries"
	}
	return "", fmt.Errorf("failed to find %s (tried %s); install PostgreSQL's server binaries or set PGTWOPASS_BINDIR",
		what, strings.Join(tried, ", "))
}

// FindBinDirFor finds the pg_ctl for the cluster in dataDir, of major
// version major: first beside the postgres that last ran it (the first word
// of postmaster.opts), when that pg_ctl is of the same major version, else
// as FindBinDir does. A server installed outside the usual places (a build
// of its own, a package under /opt) is then controlled by its own pg_ctl.
func FindBinDirFor(dataDir, major string) (string, error) {
	if os.Getenv("PGTWOPASS_BINDIR") == "" {
		if bin, _, err := ReadPostmasterOpts(dataDir); err == nil && filepath.IsAbs(bin) {
			if d := filepath.Dir(bin); hasPgCtl(d) && binDirMajor(d) == major {
				return d, nil
			}
		}
	}
	return FindBinDir(major)
}

func hasPgCtl(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "pg_ctl"))
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// binDirMajor returns the major version of dir/pg_ctl ("" if unknown).
func binDirMajor(dir string) string {
	out, err := command(context.Background(), filepath.Join(dir, "pg_ctl"), "--version").Output()
	if err != nil {
		return ""
	}
	return versionMajor(string(out))
}

// versionMajor extracts the major version from text such as
// "pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" → "15" or
// "PostgreSQL 9.6.24" → "9.6".
func versionMajor(s string) string {
	for _, f := range strings.Fields(s) {
		if f == "" || f[0] < '0' || f[0] > '9' {
			continue
		}
		end := strings.IndexFunc(f, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
		if end >= 0 {
			f = f[:end]
		}
		parts := strings.Split(f, ".")
		if n, err := strconv.Atoi(parts[0]); err == nil && n < 10 && len(parts) > 1 {
			return parts[0] + "." + parts[1]
		}
		return parts[0]
	}
	return ""
}

// versionLess orders /usr/lib/postgresql/<v>/bin paths by numeric version.
func versionLess(a, b string) bool {
	va := strings.Split(filepath.Base(filepath.Dir(a)), ".")
	vb := strings.Split(filepath.Base(filepath.Dir(b)), ".")
	for i := 0; i < len(va) && i < len(vb); i++ {
		x, _ := strconv.Atoi(va[i])
		y, _ := strconv.Atoi(vb[i])
		if x != y {
			return x < y
		}
	}
	return len(va) < len(vb)
}

// ControlData is the parsed output of pg_controldata.
type ControlData struct {
	SystemIdentifier   uint64
	State              string // e.g. "shut down", "in production"
	PGControlVersion   int
	CheckpointLocation string            // "Latest checkpoint location"
	Fields             map[string]string // all "Key: value" lines
}

// CleanlyShutDown reports whether the cluster state is "shut down" or
// "shut down in recovery".
func (c ControlData) CleanlyShutDown() bool {
	return c.State == "shut down" || c.State == "shut down in recovery"
}

// ReadControlData runs binDir/pg_controldata -D dataDir in the C locale and
// parses its output. pg_controldata only reads and runs fine as root.
func ReadControlData(ctx context.Context, binDir, dataDir string) (ControlData, error) {
	cmd := command(ctx, filepath.Join(binDir, "pg_controldata"), "-D", dataDir)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return ControlData{}, fmt.Errorf("failed to run pg_controldata: %w%s", err, tail(stderr.Bytes()))
	}
	cd, err := parseControlData(string(out))
	if err != nil {
		return ControlData{}, fmt.Errorf("failed to parse pg_controldata output: %w", err)
	}
	return cd, nil
}

func parseControlData(out string) (ControlData, error) {
	cd := ControlData{Fields: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		cd.Fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	sysid, ok := cd.Fields["Database system identifier"]
	if !ok {
		return cd, errors.New(`no "Database system identifier" line`)
	}
	var err error
	if cd.SystemIdentifier, err = strconv.ParseUint(sysid, 10, 64); err != nil {
		return cd, fmt.Errorf("bad system identifier: %w", err)
	}
	if cd.State = cd.Fields["Database cluster state"]; cd.State == "" {
		return cd, errors.New(`no "Database cluster state" line`)
	}
	if cd.PGControlVersion, err = strconv.Atoi(cd.Fields["pg_control version number"]); err != nil {
		return cd, fmt.Errorf("bad pg_control version number: %w", err)
	}
	cd.CheckpointLocation = cd.Fields["Latest checkpoint location"]
	return cd, nil
}

// tail returns the last lines of command output, formatted for appending
// to an error message ("" when there is no output).
func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	s = strings.Join(lines, "\n")
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return "; output:\n" + s
}
