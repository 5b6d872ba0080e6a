package wal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgtwopass/pgtwopass/internal/scratch"
)

// These tests read WAL written by real servers, every major version from 13
// to 18 that is installed, and cross-check the reader independently: against
// pg_waldump where the version has one (Debian's), against pg_walinspect
// where the server has it (15+), and against facts queried from the server
// (the relations, databases and tablespaces the workload touched).

// pgInstall is a PostgreSQL installation for one major version.
type pgInstall struct {
	major   int
	bin     string // initdb, pg_ctl, postgres (and maybe pg_waldump, pgbench)
	waldump string // pg_waldump of this major version, or ""
}

// pgCache is where scripts/install-pg-versions.sh installs servers.
func pgCache() string {
	if d := os.Getenv("PGTWOPASS_PG_CACHE"); d != "" {
		return d
	}
	return "/var/cache/pgtwopass/postgres"
}

// findInstall returns the installation of a major version: Debian's
// /usr/lib/postgresql/N (with pg_waldump), else the test cache's.
func findInstall(major int) (pgInstall, bool) {
	exists := func(p string) bool { st, err := os.Stat(p); return err == nil && !st.IsDir() }
	for _, bin := range []string{
		fmt.Sprintf("/usr/lib/postgresql/%d/bin", major),
		filepath.Join(pgCache(), strconv.Itoa(major), "bin"),
	} {
		if exists(filepath.Join(bin, "initdb")) && exists(filepath.Join(bin, "postgres")) {
			in := pgInstall{major: major, bin: bin}
			if exists(filepath.Join(bin, "pg_waldump")) {
				in.waldump = filepath.Join(bin, "pg_waldump")
			}
			return in, true
		}
	}
	return pgInstall{}, false
}

// forEachVersion runs f in a subtest per major version 13 to 18, skipping
// loudly the versions that are not installed.
func forEachVersion(t *testing.T, f func(t *testing.T, in pgInstall)) {
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skip("running as root without a postgres OS user:", err)
		}
	}
	for _, v := range Versions {
		t.Run(fmt.Sprintf("pg%d", v), func(t *testing.T) {
			t.Parallel()
			in, ok := findInstall(v)
			if !ok {
				t.Skipf("PostgreSQL %d is not installed: run scripts/install-pg-versions.sh %d (it installs into %s/%d)", v, v, pgCache(), v)
			}
			f(t, in)
		})
	}
}

// controlFile is what the tests need of global/pg_control (ControlFileData,
// src/include/catalog/pg_control.h, the same offsets in 13 to 18).
type controlFile struct {
	sysID      uint64
	state      uint32 // 1: shut down
	checkpoint LSN
	redo       LSN
	tli        uint32
	segSize    uint32
}

func readControlFile(t *testing.T, dir string) controlFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "global", "pg_control"))
	if err != nil {
		t.Fatal(err)
	}
	c := controlFile{
		sysID:      binary.LittleEndian.Uint64(b[0:]),
		state:      binary.LittleEndian.Uint32(b[16:]),
		checkpoint: LSN(binary.LittleEndian.Uint64(b[32:])),
		redo:       LSN(binary.LittleEndian.Uint64(b[40:])),
		tli:        binary.LittleEndian.Uint32(b[48:]),
	}
	// The segment size is read from a segment's long page header.
	ents, err := os.ReadDir(filepath.Join(dir, "pg_wal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if len(e.Name()) == 24 {
			f, err := os.Open(filepath.Join(dir, "pg_wal", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			h, err := ReadSegmentHeader(f)
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			c.segSize = h.SegmentSize
			break
		}
	}
	return c
}

// workload is what a test did to a server, and what it learned from it.
type workload struct {
	start, startCheckpoint LSN // the redo LSN of the CHECKPOINT before the workload, and that checkpoint's record
	flushed                LSN // the flush LSN at the end of the workload (for pg_walinspect)
	db                     uint32
	filenodes              map[string]uint32 // table -> relfilenode written in the range
	dropped                map[string]uint32 // table -> relfilenode dropped in the range
	createdDBs             map[string]uint32 // name -> OID: FILE_COPY (or 13/14's CREATE) and WAL_LOG
	droppedDB              uint32
	tablespace             uint32
	compression            []string        // the wal_compression methods used (images compressed with each expected)
	inspectRecords         []inspectRecord // pg_walinspect, when the server has it
	inspectBlocks          []inspectBlock  // pg_get_wal_block_info, 16+
}

// runWorkload starts the cluster, writes the workload, and stops it.
func runWorkload(t *testing.T, ctx context.Context, c *scratch.Cluster, major int) *workload {
	t.Helper()
	w := &workload{filenodes: map[string]uint32{}, dropped: map[string]uint32{}, createdDBs: map[string]uint32{}}
	exec := func(sql string) {
		t.Helper()
		if err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	query := func(sql string) string {
		t.Helper()
		s, err := c.QueryString(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	oid := func(sql string) uint32 {
		t.Helper()
		v, err := strconv.ParseUint(query(sql), 10, 32)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return uint32(v)
	}
	lsn := func(sql string) LSN {
		t.Helper()
		l, err := ParseLSN(query(sql))
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return l
	}

	// Before the range: a table with data, and a table dropped later.
	exec("CREATE TABLE t_upd (id int PRIMARY KEY, v text) WITH (fillfactor = 50)")
	exec("INSERT INTO t_upd SELECT g, repeat('a', 100) FROM generate_series(1, 30000) g")
	exec("CREATE TABLE t_drop (id int)")
	exec("INSERT INTO t_drop SELECT generate_series(1, 1000)")
	exec("CREATE TABLE t_trunc (id int)")
	exec("INSERT INTO t_trunc SELECT generate_series(1, 1000)")
	exec("CREATE TABLE t_2pc (id int)")
	w.dropped["t_drop"] = oid("SELECT pg_relation_filenode('t_drop')")
	w.dropped["t_trunc"] = oid("SELECT pg_relation_filenode('t_trunc')")
	w.dropped["t_2pc"] = oid("SELECT pg_relation_filenode('t_2pc')")
	w.filenodes["t_upd"] = oid("SELECT pg_relation_filenode('t_upd')")
	w.db = oid("SELECT oid FROM pg_database WHERE datname = current_database()")

	// The range begins at this checkpoint's redo LSN.
	exec("CHECKPOINT")
	w.start = lsn("SELECT redo_lsn FROM pg_control_checkpoint()")
	w.startCheckpoint = lsn("SELECT checkpoint_lsn FROM pg_control_checkpoint()")

	// Updates: full-page images (with holes) first, then plain changes; from
	// 15 with each compression method the build has.
	comp := []string{"on"}
	if major >= 15 {
		comp = []string{"pglz", "lz4", "zstd"}
	}
	for i, m := range comp {
		if i > 0 {
			exec("CHECKPOINT") // so that the next changes log full pages again
		}
		err := c.Exec(ctx, fmt.Sprintf("SET wal_compression = %s; UPDATE t_upd SET v = repeat('b', 100) WHERE id %% %d = 0", m, 3+i))
		switch {
		case err == nil && m == "on":
			w.compression = append(w.compression, "pglz")
		case err == nil:
			w.compression = append(w.compression, m)
		case strings.Contains(err.Error(), "wal_compression"):
			t.Logf("PostgreSQL %d: this build has no wal_compression=%s: %v", major, m, err)
		default:
			t.Fatal(err)
		}
	}
	exec("UPDATE t_upd SET v = 'c' WHERE id < 100")
	// Relation files: a new table with indexes of every access method that
	// logs pages, an unlogged table (its init fork is logged), a relation
	// over a WAL segment boundary.
	exec("CREATE TABLE t_new (id int, v text, a int[])")
	exec("INSERT INTO t_new SELECT g, md5(g::text), ARRAY[g, g+1] FROM generate_series(1, 50000) g")
	exec("CREATE INDEX ON t_new USING hash (id)")
	exec("CREATE INDEX ON t_new USING gin (a)")
	exec("CREATE INDEX ON t_new USING brin (id)")
	exec("CREATE INDEX ON t_new USING gist (int4range(id, id + 1))")
	exec("CREATE INDEX ON t_new USING spgist (v)")
	w.filenodes["t_new"] = oid("SELECT pg_relation_filenode('t_new')")
	exec("CREATE UNLOGGED TABLE t_unlogged (id int)")
	exec("INSERT INTO t_unlogged SELECT generate_series(1, 1000)")
	exec("CREATE INDEX ON t_unlogged (id)") // its init fork's metapage is logged
	w.filenodes["t_unlogged"] = oid("SELECT pg_relation_filenode('t_unlogged')")
	exec("CREATE SEQUENCE s1")
	exec("SELECT nextval('s1') FROM generate_series(1, 100)")
	// Drops: DROP TABLE, TRUNCATE (a new relfilenode), an aborted creation,
	// a prepared transaction's drop.
	exec("DROP TABLE t_drop")
	exec("TRUNCATE t_trunc")
	exec("INSERT INTO t_trunc VALUES (1)")
	w.filenodes["t_trunc"] = oid("SELECT pg_relation_filenode('t_trunc')")
	exec("BEGIN; CREATE TABLE t_aborted (id int); INSERT INTO t_aborted VALUES (1); ROLLBACK")
	exec("BEGIN; DROP TABLE t_2pc; PREPARE TRANSACTION 'p1'")
	exec("COMMIT PREPARED 'p1'")
	// VACUUM that truncates the relation's tail.
	exec("DELETE FROM t_upd WHERE id > 20000")
	exec("VACUUM t_upd")
	// Databases: FILE_COPY (13 and 14's only CREATE DATABASE), WAL_LOG, DROP.
	if major >= 15 {
		exec("CREATE DATABASE db_copy STRATEGY FILE_COPY")
		exec("CREATE DATABASE db_wal STRATEGY WAL_LOG")
		w.createdDBs["db_wal"] = oid("SELECT oid FROM pg_database WHERE datname = 'db_wal'")
	} else {
		exec("CREATE DATABASE db_copy")
	}
	w.createdDBs["db_copy"] = oid("SELECT oid FROM pg_database WHERE datname = 'db_copy'")
	exec("CREATE DATABASE db_gone")
	w.droppedDB = oid("SELECT oid FROM pg_database WHERE datname = 'db_gone'")
	exec("DROP DATABASE db_gone")
	// A tablespace created and dropped.
	loc := filepath.Join(t.TempDir(), "ts")
	if err := os.Mkdir(loc, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := scratch.Chown(loc, scratch.Options{BinDir: c.BinDir}); err != nil {
		t.Fatal(err)
	}
	if err := scratch.MakeTraversable(filepath.Dir(loc)); err != nil {
		t.Fatal(err)
	}
	exec(fmt.Sprintf("CREATE TABLESPACE ts1 LOCATION '%s'", loc))
	w.tablespace = oid("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
	exec("CREATE TABLE t_ts (id int) TABLESPACE ts1")
	exec("INSERT INTO t_ts SELECT generate_series(1, 100)")
	w.filenodes["t_ts"] = oid("SELECT pg_relation_filenode('t_ts')")
	exec("DROP TABLE t_ts")
	exec("DROP TABLESPACE ts1")
	// Records larger than a page, and a segment switch.
	exec("SELECT pg_logical_emit_message(true, 'wal-test', repeat('m', 100000))")
	exec("SELECT pg_logical_emit_message(false, 'wal-test', repeat('n', 20000))")
	exec("SELECT pg_switch_wal()")
	exec("INSERT INTO t_new SELECT g, 'after switch' FROM generate_series(1, 1000) g")

	if query("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_walinspect'") == "1" {
		exec("CREATE EXTENSION pg_walinspect")
		exec("CHECKPOINT") // quiet: nothing in flight
		w.flushed = lsn("SELECT pg_current_wal_flush_lsn()")
		w.inspectRecords = inspectRecords(t, ctx, c, w.start, w.flushed)
		if major >= 16 {
			w.inspectBlocks = inspectBlocks(t, ctx, c, w.start, w.flushed)
		}
	} else {
		t.Logf("PostgreSQL %d: no pg_walinspect on this server, not cross-checked with it", major)
	}
	if err := c.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	return w
}

// inspectRecord is a row of pg_get_wal_records_info.
type inspectRecord struct {
	start, end, prev LSN
	xid              uint32
	rmgr             string
	length, fpiLen   uint32
	mainLen          uint32
	blockRef         string // 15: the text form of the block references
}

func inspectRecords(t *testing.T, ctx context.Context, c *scratch.Cluster, from, to LSN) []inspectRecord {
	t.Helper()
	conn, err := c.Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT start_lsn::text, end_lsn::text, prev_lsn::text, xid::text::bigint, resource_manager,
		record_length, fpi_length, main_data_length, coalesce(block_ref, '') FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)`,
		from.String(), to.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []inspectRecord
	for rows.Next() {
		var s, e, p string
		var xid int64
		var r inspectRecord
		var length, fpi, main int64
		if err := rows.Scan(&s, &e, &p, &xid, &r.rmgr, &length, &fpi, &main, &r.blockRef); err != nil {
			t.Fatal(err)
		}
		r.start, _ = ParseLSN(s)
		r.end, _ = ParseLSN(e)
		r.prev, _ = ParseLSN(p)
		r.xid, r.length, r.fpiLen, r.mainLen = uint32(xid), uint32(length), uint32(fpi), uint32(main)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// inspectBlock is a row of pg_get_wal_block_info (16+).
type inspectBlock struct {
	start              LSN
	id                 int
	rel                RelFileLocator
	fork               int
	block              uint32
	dataLen, fpiLength int
}

func inspectBlocks(t *testing.T, ctx context.Context, c *scratch.Cluster, from, to LSN) []inspectBlock {
	t.Helper()
	conn, err := c.Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT start_lsn::text, block_id::bigint, reltablespace::bigint, reldatabase::bigint, relfilenode::bigint,
		relforknumber::bigint, relblocknumber::bigint, block_data_length::bigint, coalesce(block_fpi_length, 0)::bigint
		FROM pg_get_wal_block_info($1::pg_lsn, $2::pg_lsn)`, from.String(), to.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []inspectBlock
	for rows.Next() {
		var s string
		var id, fork, dataLen, fpi, spc, db, rel, blk int64
		if err := rows.Scan(&s, &id, &spc, &db, &rel, &fork, &blk, &dataLen, &fpi); err != nil {
			t.Fatal(err)
		}
		l, _ := ParseLSN(s)
		out = append(out, inspectBlock{start: l, id: int(id), rel: RelFileLocator{uint32(spc), uint32(db), uint32(rel)},
			fork: int(fork), block: uint32(blk), dataLen: int(dataLen), fpiLength: int(fpi)})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRealWAL runs a workload on a real server of every installed major
// version, stops it, reads the WAL from the workload's checkpoint redo LSN
// to its end, and cross-checks every record independently.
func TestRealWAL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL servers")
	}
	forEachVersion(t, func(t *testing.T, in pgInstall) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		c, err := scratch.InitDB(ctx, filepath.Join(t.TempDir(), "data"), scratch.Options{BinDir: in.bin})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		// wal_keep_size keeps the segments the checkpoints would remove.
		if err := c.Start(ctx, "max_prepared_transactions=5", "wal_keep_size=1GB", "log_min_messages=warning"); err != nil {
			t.Fatal(err)
		}
		w := runWorkload(t, ctx, c, in.major)
		ctl := readControlFile(t, c.Dir)
		if ctl.state != 1 {
			t.Fatalf("pg_control state %d after a clean stop", ctl.state)
		}

		// Read every record from the start to the end of the WAL.
		r, err := NewReader(ReaderOptions{Source: Dir(filepath.Join(c.Dir, "pg_wal")), Start: w.start, TLI: ctl.tli,
			SegmentSize: ctl.segSize, Version: in.major, SystemID: ctl.sysID})
		if err != nil {
			t.Fatal(err)
		}
		recs, endErr := readAll(t, r)
		r.Close()
		wantKind(t, endErr, ErrEndOfWAL, 0)
		last := recs[len(recs)-1]
		if last.LSN != ctl.checkpoint || last.Rmgr != RmgrXLOG || last.RmgrInfo() != xlogCheckpointShutdown {
			t.Fatalf("the last record is %s %s at %s, want the shutdown checkpoint at %s", RmgrName(last.Rmgr), fmt.Sprintf("0x%02X", last.RmgrInfo()), last.LSN, ctl.checkpoint)
		}
		t.Logf("PostgreSQL %d: %d records from %s to %s", in.major, len(recs), w.start, last.End)
		checkKinds(t, recs, w.compression)

		if in.waldump != "" {
			compareWithWaldump(t, in.waldump, filepath.Join(c.Dir, "pg_wal"), w.start, recs, endErr)
		} else {
			t.Logf("PostgreSQL %d: no pg_waldump installed, not cross-checked with it", in.major)
		}
		if w.inspectRecords != nil {
			compareWithWalinspect(t, w, recs)
		}

		// The summary, from the same start to the shutdown checkpoint.
		r, _ = NewReader(ReaderOptions{Source: Dir(filepath.Join(c.Dir, "pg_wal")), Start: w.start, TLI: ctl.tli, SegmentSize: ctl.segSize})
		defer r.Close()
		sum, err := Summarize(ctx, r, SummaryOptions{End: ctl.checkpoint, DataChecksums: true})
		if err != nil {
			t.Fatal(err)
		}
		checkSummary(t, sum, w, ctl, recs, in.major)
		missing, changed, pages := pageLSNsMissing(t, c.Dir, sum, w.start)
		if changed == 0 {
			t.Fatal("no page changed in the range: the page LSN check checked nothing")
		}
		for _, m := range missing {
			t.Errorf("%s: its page LSN is past the start %s, but the summary does not name the block", m, w.start)
		}
		t.Logf("page LSNs: %d of %d relation pages changed in the range, %d missing from the summary", changed, pages, len(missing))
		// The check can fail: without one of those blocks it does.
		for rf, set := range sum.Blocks {
			if rf.Fork == MainFork && set.Len() > 0 {
				b := set.Blocks()[0]
				delete(set.words, b/64)
				set.n = 0
				if m, _, _ := pageLSNsMissing(t, c.Dir, sum, w.start); len(m) == 0 {
					continue // that block's page is gone or older (dropped, truncated)
				}
				return
			}
		}
		t.Error("removing blocks from the summary went unnoticed by the page LSN check")
	})
}

// relFileName matches a relation segment file: relfilenumber, fork suffix,
// segment number.
var relFileName = regexp.MustCompile(`^([0-9]+)(?:_(fsm|vm|init))?(?:\.([0-9]+))?$`)

// pageLSNsMissing is the cross-check that matters most, and needs no tool
// of the version: every page of every relation file whose LSN (pd_lsn, the
// end of the last record that changed it) is past the start was changed in
// the range, so the summary must name it. It returns the pages it does not
// name, how many pages changed in the range and how many pages it read. FSM
// forks and unlogged relations are skipped: they are not WAL-logged, and a
// cold pass reads them whole.
func pageLSNsMissing(t *testing.T, dataDir string, sum *Summary, start LSN) (missing []string, changed, pages int) {
	t.Helper()
	type dbDir struct {
		spc, db uint32
		path    string
	}
	var dirs []dbDir
	ents, _ := os.ReadDir(filepath.Join(dataDir, "base"))
	for _, e := range ents {
		if db, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
			dirs = append(dirs, dbDir{1663, uint32(db), filepath.Join(dataDir, "base", e.Name())})
		}
	}
	dirs = append(dirs, dbDir{1664, 0, filepath.Join(dataDir, "global")})
	spcs, _ := os.ReadDir(filepath.Join(dataDir, "pg_tblspc"))
	for _, sp := range spcs {
		spc, err := strconv.ParseUint(sp.Name(), 10, 32)
		if err != nil {
			continue
		}
		vers, _ := filepath.Glob(filepath.Join(dataDir, "pg_tblspc", sp.Name(), "PG_*"))
		for _, v := range vers {
			dbs, _ := os.ReadDir(v)
			for _, e := range dbs {
				if db, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
					dirs = append(dirs, dbDir{uint32(spc), uint32(db), filepath.Join(v, e.Name())})
				}
			}
		}
	}
	for _, d := range dirs {
		files, err := os.ReadDir(d.path)
		if err != nil {
			t.Fatal(err)
		}
		unlogged := map[string]bool{}
		for _, f := range files {
			if m := relFileName.FindStringSubmatch(f.Name()); m != nil && m[2] == "init" {
				unlogged[m[1]] = true
			}
		}
		for _, f := range files {
			m := relFileName.FindStringSubmatch(f.Name())
			if m == nil || m[2] == "fsm" || unlogged[m[1]] {
				continue
			}
			rel, _ := strconv.ParseUint(m[1], 10, 32)
			segNo, _ := strconv.ParseUint("0"+m[3], 10, 32)
			fork := MainFork
			if m[2] == "vm" {
				fork = VMFork
			}
			rf := RelFork{RelFileLocator{d.spc, d.db, uint32(rel)}, fork}
			b, err := os.ReadFile(filepath.Join(d.path, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off+8192 <= len(b); off += 8192 {
				pages++
				// pd_lsn: xlogid (high 32 bits), then xrecoff.
				lsn := LSN(uint64(binary.LittleEndian.Uint32(b[off:]))<<32 | uint64(binary.LittleEndian.Uint32(b[off+4:])))
				if lsn <= start {
					continue
				}
				changed++
				blkno := uint32(segNo*131072) + uint32(off/8192)
				if s := sum.Blocks[rf]; s == nil || !s.Has(blkno) {
					missing = append(missing, fmt.Sprintf("%s block %d (page LSN %s)", rf, blkno, lsn))
				}
			}
		}
	}
	return missing, changed, pages
}

// checkKinds checks that the WAL held what the workload should have made,
// so that the cross-checks covered it: images with and without holes,
// compressed (15+: each method), records over pages and segments.
func checkKinds(t *testing.T, recs []Record, compression []string) {
	t.Helper()
	seen := map[string]bool{}
	segs := map[uint64]bool{}
	for _, r := range recs {
		segs[uint64(r.LSN)/(16<<20)] = true
		if pageStart(r.LSN) != pageStart(r.End-1) {
			seen["spans pages"] = true
		}
		if uint64(r.LSN)/(16<<20) != uint64(r.End-1)/(16<<20) && !(r.Rmgr == RmgrXLOG && r.RmgrInfo() == xlogSwitch) {
			seen["spans segments"] = true
		}
		if r.Rmgr == RmgrXLOG && r.RmgrInfo() == xlogSwitch {
			seen["switch"] = true
		}
		for _, b := range r.Blocks {
			if b.HasImage() {
				seen["image"] = true
				if b.HoleLength > 0 {
					seen["image with hole"] = true
				}
				if b.Compression != "" {
					seen["compressed "+b.Compression] = true
				}
			}
			if b.Fork == InitFork {
				seen["init fork"] = true
			}
		}
	}
	want := []string{"spans pages", "spans segments", "switch", "image", "image with hole", "init fork"}
	for _, m := range compression {
		want = append(want, "compressed "+m)
	}
	for _, k := range want {
		if !seen[k] {
			t.Errorf("the WAL has no record that %s: the cross-checks did not cover it", k)
		}
	}
	t.Logf("seen: %v, %d segments", seen, len(segs))
}

var (
	waldumpRecord = regexp.MustCompile(`^rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), prev ([0-9A-F]+/[0-9A-F]+), desc: `)
	waldumpBlock  = regexp.MustCompile(`^\tblkref #(\d+): rel (\d+)/(\d+)/(\d+) fork (\w+) blk (\d+)(?: \(FPW( for WAL verification)?\); hole: offset: (\d+), length: (\d+)(?:, compression saved: (\d+), method: (\w+))?)?$`)
	waldumpEnd    = regexp.MustCompile(`error in WAL record at [0-9A-F/]+: invalid record length at ([0-9A-F]+/[0-9A-F]+): (?:wanted|expected at least) 24, got 0`)
)

// compareWithWaldump runs pg_waldump over the same WAL and compares every
// record: LSN, xl_prev, resource manager, lengths (with and without
// images), XID and every block reference (ID, relation, fork, block, image,
// hole, compression); and where the WAL ends.
func compareWithWaldump(t *testing.T, waldump, walDir string, start LSN, recs []Record, endErr error) {
	t.Helper()
	cmd := exec.Command(waldump, "-p", walDir, "-s", start.String(), "-b")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil || !waldumpEnd.Match(stderr.Bytes()) {
		t.Fatalf("pg_waldump: %v, stderr: %s", err, stderr.String())
	}
	var dumped []Record
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Text()
		if m := waldumpRecord.FindStringSubmatch(line); m != nil {
			recLen, _ := strconv.ParseUint(m[2], 10, 32)
			tot, _ := strconv.ParseUint(m[3], 10, 32)
			xid, _ := strconv.ParseUint(m[4], 10, 32)
			lsn, _ := ParseLSN(m[5])
			prev, _ := ParseLSN(m[6])
			rmgr := -1
			for i, n := range rmgrNames {
				if n == m[1] {
					rmgr = i
				}
			}
			if rmgr < 0 {
				t.Fatalf("pg_waldump: unknown resource manager in %q", line)
			}
			// CRC field misused to carry "rec" length for the comparison.
			dumped = append(dumped, Record{LSN: lsn, Prev: prev, TotalLen: uint32(tot), XID: uint32(xid), Rmgr: uint8(rmgr), CRC: uint32(recLen)})
			continue
		}
		if m := waldumpBlock.FindStringSubmatch(line); m != nil {
			if len(dumped) == 0 {
				t.Fatalf("pg_waldump: a block reference before any record: %q", line)
			}
			num := func(i int) uint32 { v, _ := strconv.ParseUint(m[i], 10, 32); return uint32(v) }
			b := BlockRef{ID: uint8(num(1)), Rel: RelFileLocator{num(2), num(3), num(4)}, Block: num(6)}
			b.Fork = forkByName(t, m[5])
			if m[8] != "" {
				b.Flags |= blkHasImage
				b.ApplyImage = m[7] == ""
				b.HoleOffset, b.HoleLength = uint16(num(8)), uint16(num(9))
				b.Compression = m[11]
			}
			d := &dumped[len(dumped)-1]
			d.Blocks = append(d.Blocks, b)
			continue
		}
		if strings.HasPrefix(line, "\tblkref") {
			t.Fatalf("pg_waldump: block reference not understood by the test: %q", line)
		}
	}
	if len(dumped) != len(recs) {
		t.Errorf("pg_waldump printed %d records, the reader read %d", len(dumped), len(recs))
	}
	blocks := 0
	for i := 0; i < min(len(dumped), len(recs)); i++ {
		d, r := dumped[i], recs[i]
		recLen := r.TotalLen - r.ImageBytes()
		if d.LSN != r.LSN || d.Prev != r.Prev || d.TotalLen != r.TotalLen || d.CRC != recLen || d.XID != r.XID || d.Rmgr != r.Rmgr {
			t.Fatalf("record %d: pg_waldump says %s prev %s %s len %d/%d xid %d; the reader %s prev %s %s len %d/%d xid %d",
				i, d.LSN, d.Prev, RmgrName(d.Rmgr), d.CRC, d.TotalLen, d.XID, r.LSN, r.Prev, RmgrName(r.Rmgr), recLen, r.TotalLen, r.XID)
		}
		if len(d.Blocks) != len(r.Blocks) {
			t.Fatalf("record %d at %s: pg_waldump shows %d block references, the reader %d", i, r.LSN, len(d.Blocks), len(r.Blocks))
		}
		for j := range d.Blocks {
			db, rb := d.Blocks[j], r.Blocks[j]
			same := db.ID == rb.ID && db.Rel == rb.Rel && db.Fork == rb.Fork && db.Block == rb.Block && db.HasImage() == rb.HasImage()
			if rb.HasImage() {
				same = same && db.ApplyImage == rb.ApplyImage && db.HoleOffset == rb.HoleOffset && db.HoleLength == rb.HoleLength && db.Compression == rb.Compression
			}
			if !same {
				t.Fatalf("record %d at %s, block %d: pg_waldump %+v, the reader %+v", i, r.LSN, j, db, rb)
			}
			blocks++
		}
	}
	m := waldumpEnd.FindSubmatch(stderr.Bytes())
	end, _ := ParseLSN(string(m[1]))
	var e *Error
	if !errors.As(endErr, &e) || e.LSN != end {
		t.Errorf("pg_waldump finds the end of the WAL at %s, the reader: %v", end, endErr)
	}
	t.Logf("pg_waldump agrees on %d records and %d block references; both end at %s", len(recs), blocks, end)
}

func forkByName(t *testing.T, name string) ForkNumber {
	for f := MainFork; f <= maxFork; f++ {
		if f.String() == name {
			return f
		}
	}
	t.Fatalf("unknown fork %q", name)
	return 0
}

var inspectBlockRef = regexp.MustCompile(`blkref #(\d+): rel (\d+)/(\d+)/(\d+) fork (\w+) blk (\d+)`)

// compareWithWalinspect compares the records pg_walinspect returned for
// [start, flushed) with the reader's: LSN, end, xl_prev, XID, resource
// manager, length, image bytes, main data length, and the block references
// (pg_get_wal_block_info from 16, the text of block_ref in 15).
func compareWithWalinspect(t *testing.T, w *workload, recs []Record) {
	t.Helper()
	// pg_walinspect returns the records that start before the end LSN
	// (16 and later) or that end at or before it (15): a record the flush
	// LSN cuts in two is in one list and not in the other.
	var mine, whole []Record
	for _, r := range recs {
		if r.LSN < w.flushed {
			mine = append(mine, r)
		}
		if r.End <= w.flushed {
			whole = append(whole, r)
		}
	}
	if len(mine) != len(w.inspectRecords) && len(whole) == len(w.inspectRecords) {
		mine = whole
	}
	if len(mine) != len(w.inspectRecords) {
		t.Fatalf("pg_walinspect returned %d records before %s, the reader read %d", len(w.inspectRecords), w.flushed, len(mine))
	}
	byLSN := map[LSN][]inspectBlock{}
	for _, b := range w.inspectBlocks {
		byLSN[b.start] = append(byLSN[b.start], b)
	}
	nblocks := 0
	for i, ir := range w.inspectRecords {
		r := mine[i]
		if ir.start != r.LSN || ir.end != r.End || ir.prev != r.Prev || ir.xid != r.XID || ir.rmgr != RmgrName(r.Rmgr) ||
			ir.length != r.TotalLen || ir.fpiLen != r.ImageBytes() || ir.mainLen != r.MainDataLen {
			t.Fatalf("record %d: pg_walinspect %+v; the reader %s..%s prev %s xid %d %s len %d fpi %d main %d", i, ir,
				r.LSN, r.End, r.Prev, r.XID, RmgrName(r.Rmgr), r.TotalLen, r.ImageBytes(), r.MainDataLen)
		}
		if w.inspectBlocks != nil {
			ib := byLSN[r.LSN]
			if len(ib) != len(r.Blocks) {
				t.Fatalf("record at %s: pg_get_wal_block_info shows %d blocks, the reader %d", r.LSN, len(ib), len(r.Blocks))
			}
			for j, b := range ib {
				rb := r.Blocks[j]
				fpi := 0
				if rb.HasImage() {
					fpi = int(rb.ImageLen)
				}
				if b.id != int(rb.ID) || b.rel != rb.Rel || b.fork != int(rb.Fork) || b.block != rb.Block || b.dataLen != int(rb.DataLen) || b.fpiLength != fpi {
					t.Fatalf("record at %s, block %d: pg_get_wal_block_info %+v, the reader %+v", r.LSN, j, b, rb)
				}
				nblocks++
			}
			continue
		}
		ms := inspectBlockRef.FindAllStringSubmatch(ir.blockRef, -1)
		if len(ms) != len(r.Blocks) {
			t.Fatalf("record at %s: block_ref %q, the reader has %d blocks", r.LSN, ir.blockRef, len(r.Blocks))
		}
		for j, m := range ms {
			rb := r.Blocks[j]
			if m[1] != strconv.Itoa(int(rb.ID)) || m[2]+"/"+m[3]+"/"+m[4] != rb.Rel.String() || m[5] != rb.Fork.String() || m[6] != strconv.FormatUint(uint64(rb.Block), 10) {
				t.Fatalf("record at %s, block %d: block_ref %q, the reader %+v", r.LSN, j, m[0], rb)
			}
			nblocks++
		}
	}
	t.Logf("pg_walinspect agrees on %d records and %d block references before %s", len(mine), nblocks, w.flushed)
}

// checkSummary checks the summary against the records and the facts the
// workload learned from the server.
func checkSummary(t *testing.T, sum *Summary, w *workload, ctl controlFile, recs []Record, major int) {
	t.Helper()
	if sum.Fallback != nil {
		t.Fatalf("fallback: %v", sum.Fallback)
	}
	if sum.Checkpoint == nil || sum.Checkpoint.LSN != ctl.checkpoint || !sum.Checkpoint.Shutdown || sum.Checkpoint.Redo != ctl.redo || sum.Checkpoint.TLI != ctl.tli {
		t.Fatalf("end checkpoint %+v, pg_control says %s redo %s tli %d", sum.Checkpoint, ctl.checkpoint, ctl.redo, ctl.tli)
	}
	if major >= 17 && sum.Checkpoint.WALLevel != walLevelReplica {
		t.Errorf("wal_level of the checkpoint: %d", sum.Checkpoint.WALLevel)
	}
	if !sum.StartIsRedo || sum.FirstLSN != w.start || sum.Records != uint64(len(recs)) || sum.Version != major || sum.SystemID != ctl.sysID {
		t.Errorf("summary: start is redo %v, first %s (want %s), %d records (want %d), version %d, system %d",
			sum.StartIsRedo, sum.FirstLSN, w.start, sum.Records, len(recs), sum.Version, sum.SystemID)
	}
	// Every block reference of every record is in the map.
	for _, r := range recs {
		for _, b := range r.Blocks {
			if s := sum.Blocks[b.RelFork()]; s == nil || !s.Has(b.Block) {
				t.Fatalf("block %s %d of the record at %s is missing from the summary", b.RelFork(), b.Block, r.LSN)
			}
		}
	}
	// The facts.
	for name, node := range w.filenodes {
		spc := uint32(1663)
		if name == "t_ts" {
			spc = w.tablespace
		}
		fork := MainFork
		if name == "t_unlogged" {
			fork = InitFork
		}
		rf := RelFork{RelFileLocator{spc, w.db, node}, fork}
		if name != "t_unlogged" && (sum.Blocks[rf] == nil || sum.Blocks[rf].Len() == 0) {
			t.Errorf("table %s (%s) written in the range has no blocks in the summary", name, rf)
		}
		if name != "t_upd" && !hasCreation(sum, rf) {
			t.Errorf("table %s (%s) created in the range is not among the creations", name, rf)
		}
	}
	for name, node := range w.dropped {
		if !hasDrop(sum, RelFileLocator{1663, w.db, node}) {
			t.Errorf("table %s (relfilenode %d) dropped in the range is not among the drops %v", name, node, sum.Dropped)
		}
	}
	if !hasDrop(sum, RelFileLocator{w.tablespace, w.db, w.filenodes["t_ts"]}) {
		t.Errorf("table t_ts dropped in tablespace %d is not among the drops", w.tablespace)
	}
	truncated := false
	for _, tr := range sum.Truncated {
		if tr.Rel == (RelFileLocator{1663, w.db, w.filenodes["t_upd"]}) && len(tr.Forks) > 0 && tr.Forks[0] == MainFork {
			truncated = true
		}
	}
	if !truncated {
		t.Errorf("VACUUM's truncation of t_upd is not among the truncations %v", sum.Truncated)
	}
	for name, dboid := range w.createdDBs {
		kind := "create_file_copy"
		if name == "db_wal" {
			kind = "create_wal_log"
		}
		if !hasDB(sum, kind, dboid, 1663) {
			t.Errorf("database %s (%d) created in the range: no %s in %v", name, dboid, kind, sum.Databases)
		}
	}
	if !hasDB(sum, "drop", w.droppedDB, 1663) {
		t.Errorf("database %d dropped in the range: not in %v", w.droppedDB, sum.Databases)
	}
	var tsCreate, tsDrop bool
	for _, ts := range sum.Tablespaces {
		tsCreate = tsCreate || ts.Kind == "create" && ts.Tablespace == w.tablespace && strings.HasSuffix(ts.Path, "/ts")
		tsDrop = tsDrop || ts.Kind == "drop" && ts.Tablespace == w.tablespace
	}
	if !tsCreate || !tsDrop {
		t.Errorf("tablespace %d created and dropped: %v", w.tablespace, sum.Tablespaces)
	}
	nblocks := 0
	for _, s := range sum.Blocks {
		nblocks += s.Len()
	}
	t.Logf("summary: %d relation forks, %d blocks, %d creations, %d truncations, %d drops, %d database changes, %d tablespace changes, %d checkpoints",
		len(sum.Blocks), nblocks, len(sum.Created), len(sum.Truncated), len(sum.Dropped), len(sum.Databases), len(sum.Tablespaces), len(sum.Checkpoints))
}

func hasCreation(sum *Summary, rf RelFork) bool {
	for _, c := range sum.Created {
		if c.RelFork == rf {
			return true
		}
	}
	return false
}

func hasDrop(sum *Summary, rel RelFileLocator) bool {
	for _, d := range sum.Dropped {
		if d.Rel == rel {
			return true
		}
	}
	return false
}

func hasDB(sum *Summary, kind string, db, spc uint32) bool {
	for _, d := range sum.Databases {
		if d.Kind == kind && d.Database == db && d.Tablespace == spc {
			return true
		}
	}
	return false
}

// TestKeeperRealServer writes several times max_wal_size of WAL between a
// CHECKPOINT and the stop, with wal_keep_size 0, so that checkpoints
// (and the shutdown checkpoint) remove and recycle segments of the range
// while it is read. The summary is fed while the server runs (the reader's
// limit at the flush LSN, as a cold pass would), from a Keeper that holds
// the segments; it must be complete and name every changed page, while a
// plain read of pg_wal after the stop has lost segments.
func TestKeeperRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL servers")
	}
	forEachVersion(t, func(t *testing.T, in pgInstall) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		c, err := scratch.InitDB(ctx, filepath.Join(t.TempDir(), "data"), scratch.Options{BinDir: in.bin})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		if err := c.Start(ctx, "max_wal_size=32MB", "min_wal_size=32MB", "wal_keep_size=0", "checkpoint_timeout=30s", "log_min_messages=warning"); err != nil {
			t.Fatal(err)
		}
		q := func(sql string) string {
			t.Helper()
			s, err := c.QueryString(ctx, sql)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		q("CREATE TABLE big (id int, v text)")
		q("CHECKPOINT")
		start, _ := ParseLSN(q("SELECT redo_lsn FROM pg_control_checkpoint()"))
		tli, _ := strconv.Atoi(q("SELECT timeline_id FROM pg_control_checkpoint()"))
		segSize, _ := strconv.Atoi(q("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"))
		walDir := filepath.Join(c.Dir, "pg_wal")

		k, err := NewKeeper(walDir, uint32(tli), uint32(segSize), start)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		kctx, kstop := context.WithCancel(ctx)
		kdone := make(chan error, 1)
		go func() { kdone <- k.Run(kctx, 10*time.Millisecond) }()

		load := make(chan error, 1)
		go func() {
			var err error
			for i := 0; i < 8 && err == nil; i++ {
				err = c.Exec(ctx, "INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 40000) g")
				if err == nil {
					err = c.Exec(ctx, "UPDATE big SET v = 'u' WHERE id % 10 = 0")
				}
			}
			load <- err
		}()

		r, err := NewReader(ReaderOptions{Source: k, Start: start, TLI: uint32(tli), SegmentSize: uint32(segSize), Limit: start})
		if err != nil {
			t.Fatal(err)
		}
		sm := NewSummarizer(SummaryOptions{DataChecksums: true})
		feeds := 0
	live:
		for {
			select {
			case err := <-load:
				if err != nil {
					t.Fatal(err)
				}
				break live
			case <-time.After(30 * time.Millisecond):
			}
			flush, _ := ParseLSN(q("SELECT pg_current_wal_flush_lsn()"))
			r.SetLimit(flush)
			if err := sm.Feed(ctx, r); !errors.Is(err, ErrLimit) {
				t.Fatalf("live Feed: %v (summary %v)", err, sm.Summary().Fallback)
			}
			feeds++
			if err := k.Release(r.NextLSN()); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Stop(ctx, "fast"); err != nil {
			t.Fatal(err)
		}
		kstop()
		if err := <-kdone; err != nil {
			t.Fatal(err)
		}
		if _, err := k.Scan(); err != nil {
			t.Fatal(err)
		}
		ctl := readControlFile(t, c.Dir)
		r.SetLimit(0)
		if err := sm.Feed(ctx, r); err != nil {
			t.Fatal(err)
		}
		sum := sm.Summary()
		if sum.Fallback != nil {
			t.Fatalf("fallback: %v", sum.Fallback)
		}
		if sum.Checkpoint == nil || sum.Checkpoint.LSN != ctl.checkpoint || !sum.StartIsRedo {
			t.Fatalf("end checkpoint %+v, pg_control's %s; start is redo: %v", sum.Checkpoint, ctl.checkpoint, sum.StartIsRedo)
		}
		// The range lost segments from pg_wal: removed, or recycled (their
		// name gone).
		lost := 0
		for no := uint64(start) / uint64(segSize); no < uint64(ctl.checkpoint)/uint64(segSize); no++ {
			if _, err := os.Stat(filepath.Join(walDir, SegmentFileName(uint32(tli), no, uint32(segSize)))); errors.Is(err, fs.ErrNotExist) {
				lost++
			}
		}
		if lost == 0 {
			t.Fatal("no segment of the range was removed or recycled: the test proved nothing")
		}
		missing, changed, pages := pageLSNsMissing(t, c.Dir, sum, start)
		for _, m := range missing {
			t.Errorf("%s: changed in the range, not in the summary", m)
		}
		t.Logf("PostgreSQL %d: %d MB of WAL from %s to %s, %d checkpoints, %d segments of the range gone from pg_wal; %d live feeds; %d of %d pages changed, all in the summary",
			in.major, (ctl.checkpoint-start)>>20, start, ctl.checkpoint, len(sum.Checkpoints), lost, feeds, changed, pages)

		// Read from pg_wal after the stop, the same range has lost segments.
		r2, _ := NewReader(ReaderOptions{Source: Dir(walDir), Start: start, TLI: uint32(tli), SegmentSize: uint32(segSize)})
		defer r2.Close()
		sum2, _ := Summarize(ctx, r2, SummaryOptions{End: ctl.checkpoint})
		if sum2.Fallback == nil {
			t.Fatal("a summary read from pg_wal after the stop is complete: segments were not lost after all?")
		}
		t.Logf("without the keeper: %v", sum2.Fallback)
	})
}

// TestRealWALLargeRelation: a table over 1 GiB (one row per page), updated
// in its second segment file (blocks from 131072 on), on the newest
// installed version: the summary names the blocks by their number in the
// fork, which the page LSNs of file .1 confirm.
func TestRealWALLargeRelation(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 1.1 GiB table")
	}
	var in pgInstall
	for _, v := range Versions {
		if i, ok := findInstall(v); ok {
			in = i
		}
	}
	if in.bin == "" {
		t.Skip("no PostgreSQL installed: run scripts/install-pg-versions.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := scratch.InitDB(ctx, filepath.Join(t.TempDir(), "data"), scratch.Options{BinDir: in.bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	if err := c.Start(ctx, "wal_keep_size=2GB", "max_wal_size=2GB", "log_min_messages=warning"); err != nil {
		t.Fatal(err)
	}
	q := func(sql string) string {
		t.Helper()
		s, err := c.QueryString(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	q("CREATE TABLE huge (id int, v text) WITH (fillfactor = 10, autovacuum_enabled = false)")
	q("ALTER TABLE huge ALTER COLUMN v SET STORAGE PLAIN")
	q("INSERT INTO huge SELECT g, repeat('h', 800) FROM generate_series(1, 140000) g")
	node, _ := strconv.ParseUint(q("SELECT pg_relation_filenode('huge')"), 10, 32)
	db, _ := strconv.ParseUint(q("SELECT oid FROM pg_database WHERE datname = current_database()"), 10, 32)
	if n := q("SELECT pg_relation_size('huge') / 8192"); n < "131073" {
		t.Fatalf("the table has %s blocks, not over 1 GiB", n)
	}
	q("CREATE INDEX ON huge (id)")
	q("VACUUM FREEZE huge") // hint bits and the visibility map set before the range
	q("CHECKPOINT")
	start, _ := ParseLSN(q("SELECT redo_lsn FROM pg_control_checkpoint()"))
	if err := c.Exec(ctx, "SET enable_seqscan = off; UPDATE huge SET v = repeat('u', 800) WHERE id IN (10, 131070, 131100, 139000)"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	ctl := readControlFile(t, c.Dir)
	r, _ := NewReader(ReaderOptions{Source: Dir(filepath.Join(c.Dir, "pg_wal")), Start: start, TLI: ctl.tli, SegmentSize: ctl.segSize})
	defer r.Close()
	sum, err := Summarize(ctx, r, SummaryOptions{End: ctl.checkpoint, DataChecksums: true})
	if err != nil || sum.Fallback != nil {
		t.Fatalf("%v, %v", err, sum.Fallback)
	}
	rf := RelFork{RelFileLocator{1663, uint32(db), uint32(node)}, MainFork}
	set := sum.Blocks[rf]
	if set == nil {
		t.Fatalf("no blocks of %s", rf)
	}
	var past []uint32
	for _, b := range set.Blocks() {
		if b >= 131072 {
			past = append(past, b)
		}
	}
	// Rows are 1 per page from block 0: row id is in block id-1.
	if !slices.Equal(past, []uint32{131099, 138999}) || !set.Has(9) || !set.Has(131069) || set.Len() > 10 {
		t.Errorf("%d blocks of %s, %v from 131072 on; want the updated rows' blocks 9, 131069, 131099, 138999", set.Len(), rf, past)
	}
	missing, changed, _ := pageLSNsMissing(t, c.Dir, sum, start)
	for _, m := range missing {
		t.Errorf("%s: changed in the range, not in the summary", m)
	}
	t.Logf("PostgreSQL %d: %s blocks %v; %d pages changed in the range, all in the summary", in.major, rf, set.Blocks(), changed)
	if changed < 4 {
		t.Errorf("only %d pages changed in the range", changed)
	}
}
