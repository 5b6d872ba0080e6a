package pgctl

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/pgtwopass/pgtwopass/internal/crc32c"
)

// The files and the program output that pgctl parses are untrusted bytes:
// postmaster.pid and postmaster.opts may be stale, truncated or damaged
// (a crash during startup, a disk error), and pg_controldata's output is
// read from another program. The parsers must never panic, and what they
// accept must be usable. `make fuzz` runs each target; `go test` runs the
// seeds.

func FuzzParsePostmasterPID(f *testing.F) {
	for _, s := range []string{
		"2482\n/var/lib/postgresql/15/main\n1795586631\n5432\n/var/run/postgresql\n*\n  9977912         8\nready   \n",
		"2482\n/tmp/d\n1795586631\n5499\n/tmp\n\n  9977912         8\nstarting\n",
		"77\n/tmp/d\n",         // written in stages during startup
		"-2482\n/tmp/d\n",      // a standalone backend in very old releases
		"2482",                 // no newline
		"",                     // empty
		"not a pid\n",          // damaged
		"2482\n/d\nx\n",        // bad start time
		"2482\n/d\n1\n99999\n", // port out of range
		"9223372036854775807\n",
		"-9223372036854775808\n",
		"4294967297\n", // wraps to PID 1 as a pid_t
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		pm, err := parsePostmasterPID(text)
		if err != nil {
			if pm != nil {
				t.Fatalf("parsePostmasterPID returns a Postmaster with an error")
			}
			return
		}
		// ServerRunning signals the PID with kill(pid, 0): a PID that
		// pid_t cannot hold would name another process, a negative one a
		// process group.
		if pm.PID < 0 || pm.PID > math.MaxInt32 {
			t.Fatalf("parsePostmasterPID accepts PID %d, outside what a pid_t holds", pm.PID)
		}
		if pm.Port < 0 || pm.Port > 65535 {
			t.Fatalf("parsePostmasterPID accepts port %d", pm.Port)
		}
	})
}

func FuzzParsePostmasterOpts(f *testing.F) {
	f.Add(`/usr/lib/postgresql/15/bin/postgres "-D" "/var/lib/postgresql/15/main" "-c" "config_file=/etc/postgresql/15/main/postgresql.conf"`+"\n", "-p", "5433")
	f.Add("/usr/lib/postgresql/15/bin/postgres\n", "", "")
	f.Add(`/bin/postgres "-D" "/a b" "-c" "x=\"q\""`, `say "hi"`, "a\" b")
	f.Add(`/bin/postgres -D /x`, "-k", "/tmp")
	f.Add(``, "", "")
	f.Add(`"`, `"`, `" `)
	f.Fuzz(func(t *testing.T, text, a, b string) {
		// Any text: no panic, and a binary without surrounding blanks.
		bin, args := parsePostmasterOpts(text)
		if bin != strings.TrimSpace(bin) {
			t.Fatalf("parsePostmasterOpts(%q) returns the binary %q with surrounding blanks", text, bin)
		}
		_ = args
		// What PostgreSQL writes (each argument in double quotes, no
		// escaping) reads back as written, for arguments that do not
		// contain the `" ` that ends one.
		for _, s := range []string{a, b} {
			if strings.Contains(s, `" `) || strings.HasSuffix(s, `"`) || strings.ContainsAny(s, "\r\n") {
				return
			}
		}
		const binary = "/usr/lib/postgresql/15/bin/postgres"
		written := binary + ` "` + a + `" "` + b + `"` + "\n"
		gotBin, got := parsePostmasterOpts(written)
		if gotBin != binary || len(got) != 2 || got[0] != a || got[1] != b {
			t.Fatalf("parsePostmasterOpts(%q) = %q %q, want %q [%q %q]", written, gotBin, got, binary, a, b)
		}
	})
}

func FuzzParseControlData(f *testing.F) {
	f.Add(`pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7311111111111111111
Database cluster state:               shut down
pg_control last modified:             Thu Nov 27 14:20:06 2026
Latest checkpoint location:           0/1723A10
Latest checkpoint's TimeLineID:       1
`)
	f.Add("Database system identifier: 1\nDatabase cluster state: in production\npg_control version number: 1300\n")
	f.Add("Database system identifier: -1\nDatabase cluster state: shut down\npg_control version number: 1300\n")
	f.Add("Database system identifier: 18446744073709551616\n")
	f.Add("Database cluster state:\n")
	f.Add(":\n::\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, out string) {
		cd, err := parseControlData(out)
		if err != nil {
			return
		}
		// What is accepted has what pgtwopass relies on: the identifier
		// that ties a copy to its cluster, and a state.
		if _, ok := cd.Fields["Database system identifier"]; !ok || cd.State == "" || cd.Fields == nil {
			t.Fatalf("parseControlData accepts output without an identifier or a state: %+v", cd)
		}
		if cd.CleanlyShutDown() && cd.State != "shut down" && cd.State != "shut down in recovery" {
			t.Fatalf("state %q reads as cleanly shut down", cd.State)
		}
	})
}

func FuzzVersionMajor(f *testing.F) {
	for _, s := range []string{
		"pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n",
		"PostgreSQL 9.6.24", "pg_ctl (PostgreSQL) 17beta1", "garbage", "", "9.", "10.1.2.3", ".5", "99999999999999999999999.1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := versionMajor(s)
		if strings.ContainsAny(v, " \t\n") {
			t.Fatalf("versionMajor(%q) = %q, with blanks: it names a directory /usr/lib/postgresql/<v>", s, v)
		}
	})
}

// FuzzParseControlFile: global/pg_control is read from a data directory
// that may be damaged or foreign. ParseControlFile must never panic, and
// what it accepts must carry a correct CRC of a known layout and values the
// engine can compute with. Each input is tried as a whole file, and laid
// over a real pg_control of each layout with the CRC fixed up, so that the
// decoding and the value checks behind the CRC are fuzzed too.
func FuzzParseControlFile(f *testing.F) {
	var bases [][]byte
	for _, major := range testMajors {
		for _, kind := range []string{"initdb", "running", "stopped"} {
			b := readTestdata(f, major+"-"+kind)
			if kind == "running" {
				bases = append(bases, b)
			}
			f.Add(b[:320], uint16(0))
		}
	}
	f.Add([]byte{}, uint16(0))
	f.Add(make([]byte, 8), uint16(8))
	f.Add([]byte{0x14, 0x05, 0, 0}, uint16(8))        // version 1300 only
	f.Add([]byte{0, 0, 0x05, 0x14}, uint16(8))        // byte-swapped
	f.Add([]byte{7, 0, 0, 0}, uint16(16))             // state
	f.Add([]byte{0, 0, 0, 0}, uint16(228))            // xlog_seg_size
	f.Add([]byte{3, 0, 0, 0}, uint16(172))            // wal_level
	f.Add(make([]byte, 8), uint16(208))               // floatFormat
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(60)) // 17's checkpoint wal_level
	f.Fuzz(func(t *testing.T, patch []byte, at uint16) {
		check := func(b []byte) {
			c, err := ParseControlFile(b)
			if err != nil {
				if c != nil {
					t.Fatalf("ParseControlFile returns a ControlFile with the error %v", err)
				}
				return
			}
			l := controlLayouts[c.PGControlVersion]
			if l == nil || len(b) != ControlFileSize {
				t.Fatalf("ParseControlFile accepts version %d, %d bytes", c.PGControlVersion, len(b))
			}
			if crc32c.Checksum(b[:l.crcOffset()]) != binary.LittleEndian.Uint32(b[l.crcOffset():]) || c.CRC != binary.LittleEndian.Uint32(b[l.crcOffset():]) {
				t.Fatalf("ParseControlFile accepts a pg_control whose CRC does not match")
			}
			if c.XLogSegSize == 0 || c.BlockSize == 0 || int(c.State) >= len(stateNames) {
				t.Fatalf("ParseControlFile accepts values the engine cannot use: %+v", c)
			}
			// What the engine and its messages call must not panic.
			_ = c.Fields()
			_ = c.RedoWALFile()
			_ = c.ControlData()
			_ = c.CleanlyShutDown()
			_ = c.Majors()
		}
		check(patch)
		for _, base := range bases {
			b := append([]byte(nil), base...)
			if int(at) < len(b) {
				copy(b[at:], patch)
			}
			check(b)
			check(fixCRC(b))
		}
	})
}
