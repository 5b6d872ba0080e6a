package scratch

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// versionOptions returns Options for PostgreSQL major, skipping the test
// loudly (naming the install script) when it is not installed.
func versionOptions(t *testing.T, major string) Options {
	t.Helper()
	bin, err := VersionBinDir(major)
	if err != nil {
		t.Skipf("SKIP PostgreSQL %s: %v", major, err)
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skip("running as root without a postgres OS user:", err)
		}
	}
	return Options{BinDir: bin}
}

func writeExecutable(t *testing.T, path string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755))
}

func TestVersionsListsCacheAndDebian(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("PGTWOPASS_PG_CACHE", cache)
	writeExecutable(t, filepath.Join(cache, "99.1.0-beta.1", "bin", "initdb"))
	must(t, os.Symlink("99.1.0-beta.1", filepath.Join(cache, "99")))
	must(t, os.MkdirAll(filepath.Join(cache, "98", "bin"), 0o755)) // no initdb
	if VersionCache() != cache {
		t.Fatalf("VersionCache() = %s: PGTWOPASS_PG_CACHE must choose the cache", VersionCache())
	}
	v := Versions()
	if got, want := v["99"], filepath.Join(cache, "99", "bin"); got != want {
		t.Errorf("Versions()[99] = %q, want %q: a cache entry is reached through its <major> link", got, want)
	}
	if _, ok := v["98"]; ok {
		t.Error("Versions() lists a bin directory without initdb")
	}
	for m := range v {
		if strings.Contains(m, "beta") {
			t.Errorf("Versions() lists the npm version directory %q as a major version", m)
		}
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	for _, p := range debian {
		d := filepath.Dir(p)
		if m := filepath.Base(filepath.Dir(d)); v[m] != d {
			t.Errorf("Versions()[%s] = %q, want Debian's %s", m, v[m], d)
		}
	}
	// Debian wins over the cache for the same major: it has the client programs.
	if len(debian) > 0 {
		d := filepath.Dir(debian[0])
		m := filepath.Base(filepath.Dir(d))
		writeExecutable(t, filepath.Join(cache, m, "bin", "initdb"))
		if got := Versions()[m]; got != d {
			t.Errorf("Versions()[%s] = %q with the same major in the cache, want Debian's %s", m, got, d)
		}
	}
	_, err := VersionBinDir("12")
	if err == nil || !strings.Contains(err.Error(), InstallScript) {
		t.Errorf("VersionBinDir of a missing major must fail naming %s, got %v", InstallScript, err)
	}
}

func TestClientDirFallsBackForNpmBuilds(t *testing.T) {
	server := t.TempDir()
	for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
		writeExecutable(t, filepath.Join(server, p))
	}
	client := t.TempDir()
	writeExecutable(t, filepath.Join(client, "pgbench"))
	if d, err := clientDir(server, client, "pgbench"); err != nil || d != client {
		t.Errorf("clientDir = %q, %v: a program missing from the server's bin dir must come from ClientBinDir %s", d, err, client)
	}
	if _, err := clientDir(server, client, "psql"); err == nil || !strings.Contains(err.Error(), "ClientBinDir") {
		t.Errorf("clientDir must fail when ClientBinDir lacks the program, got %v", err)
	}
	if d, err := clientDir(server, client, "pg_ctl"); err != nil || d != server {
		t.Errorf("clientDir = %q, %v: a program the server's bin dir has must come from there", d, err)
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(debian) == 0 {
		t.Skip("no Debian pgbench to fall back to")
	}
	if d, err := clientDir(server, "", "pgbench"); err != nil || !strings.HasPrefix(d, "/usr/lib/postgresql/") {
		t.Errorf("clientDir without ClientBinDir = %q, %v: want a Debian installation", d, err)
	}
}

// TestClusterEveryMajor runs a cluster of each supported major version
// through what the tests of pgtwopass do with it: initdb, start, pgbench
// (Debian's client against another major's server), stop, pg_checksums.
func TestClusterEveryMajor(t *testing.T) {
	for _, major := range SupportedMajors {
		t.Run(major, func(t *testing.T) {
			o := versionOptions(t, major)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c, err := InitDB(ctx, filepath.Join(t.TempDir(), "data"), o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close(context.Background()) })
			if got := clusterMajor(c.Dir); got != major {
				t.Fatalf("PG_VERSION = %q: InitDB with the bin dir of %s must make a cluster of %s", got, major, major)
			}
			must(t, c.Start(ctx, "log_min_messages=warning"))
			if s, err := c.QueryString(ctx, "SELECT current_setting('server_version_num')::int / 10000"); err != nil || s != major {
				t.Fatalf("server major = %q, %v: want the server of %s running", s, err, major)
			}
			if s, err := c.QueryString(ctx, "SHOW data_checksums"); err != nil || s != "on" {
				t.Errorf("data_checksums = %q, %v: InitDB must enable data checksums on every version", s, err)
			}
			must(t, c.PgbenchInit(ctx, 1))
			l, err := c.Load(ctx, 2, 2)
			if err != nil {
				t.Fatal(err)
			}
			<-l.Done()
			if n, err := l.Stop(); err != nil || n == 0 {
				t.Errorf("pgbench load = %d transactions, %v: Debian's pgbench must drive the server of %s", n, err, major)
			}
			psql, err := c.ClientProgram("psql")
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.who.run(ctx, filepath.Dir(psql), "psql", "-XAtq", "-h", c.SocketDir, "-p", strconv.Itoa(c.Port),
				"-U", Superuser, "-c", "SELECT count(*) FROM pgbench_branches", "postgres")
			if err != nil || strings.TrimSpace(out) != "1" {
				t.Errorf("psql = %q, %v: Debian's psql must query the server of %s", out, err, major)
			}
			must(t, c.Stop(ctx, "fast"))
			out, err = Checksums(ctx, c.Dir, o)
			if major <= "16" {
				// pg_checksums checks PG_CONTROL_VERSION: Debian's 15 reads
				// 1300, the format of 13 to 16.
				if err != nil || !strings.Contains(out, "Bad checksums:  0") {
					t.Errorf("pg_checksums on %s must report no bad checksum: %v\n%s", major, err, out)
				}
			} else if _, ok := Versions()[major]; ok && err == nil && !strings.Contains(out, "Bad checksums:  0") {
				// 17 and 18 have another pg_control format: pg_checksums of
				// 15 refuses them ("not compatible", "CRC value is
				// incorrect") rather than checking wrongly.
				t.Errorf("pg_checksums on %s: neither an error nor a clean report:\n%s", major, out)
			}
		})
	}
}
