package sender

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pgtwopass/pgtwopass/pkg/manifest"
	"github.com/pgtwopass/pgtwopass/pkg/sync/pass"
)

// fakePass hands out every regular file of the walk as a new one (no
// hashes), at most max at a time, and records what the sender does.
type fakePass struct {
	pass.DestinationPass
	entries []pass.Entry
	next    int

	mu      sync.Mutex
	data    map[uint64][]byte // what was written, by file
	done    map[uint64]*pass.FileResult
	unflush int // Done calls since the last Flush
	nexts   []int
}

func (f *fakePass) Next(_ context.Context, max int) ([]*pass.Basis, error) {
	var out []*pass.Basis
	for ; f.next < len(f.entries) && len(out) < max; f.next++ {
		if e := &f.entries[f.next]; e.IsRegular() {
			out = append(out, &pass.Basis{ID: uint64(f.next + 1), Rel: e.Rel, Index: f.next, Size: -1})
		}
	}
	f.nexts = append(f.nexts, len(out))
	return out, nil
}

func (f *fakePass) Write(id uint64, off int64, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.data[id]
	if n := off + int64(len(data)); int64(len(b)) < n {
		b = append(b, make([]byte, n-int64(len(b)))...)
	}
	copy(b[off:], data)
	f.data[id] = b
	return nil
}

func (f *fakePass) Done(res *pass.FileResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done[res.ID] != nil {
		return fmt.Errorf("file %d done twice", res.ID)
	}
	f.done[res.ID] = res
	f.unflush++
	return nil
}

func (f *fakePass) Flush() error {
	f.mu.Lock()
	f.unflush = 0
	f.mu.Unlock()
	return nil
}

func (f *fakePass) Commit(context.Context, *pass.CommitRequest) (*pass.CommitReply, error) {
	return &pass.CommitReply{}, nil
}

type fakeDest struct {
	pass.Destination
	p *fakePass
}

func (d *fakeDest) InFlight(int) int { return 1 }
func (d *fakeDest) BeginPass(_ context.Context, _ *pass.PassRequest, es []pass.Entry) (pass.DestinationPass, error) {
	d.p.entries = es
	return d.p, nil
}

// TestSmallFilesInBatches runs a pass over many small files and a few
// larger than a chunk: every file is read whole, done once, and each Done
// is flushed (a remote destination holds it until then).
func TestSmallFilesInBatches(t *testing.T) {
	src := t.TempDir()
	want := map[string][]byte{}
	write := func(rel string, size int) {
		b := bytes.Repeat([]byte{byte(len(want))}, size)
		if len(b) > 0 {
			b[0] = byte(size)
		}
		p := filepath.Join(src, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		want[rel] = b
	}
	for i := range 3*pass.BatchFiles + 5 {
		write(fmt.Sprintf("base/5/%d", 16384+i), i%4*4096)
	}
	write("base/5/big", 2*pass.ChunkSize+100)
	write("base/5/chunk", pass.ChunkSize) // the largest small file
	write("global/pg_control", 8192)
	fp := &fakePass{data: map[uint64][]byte{}, done: map[uint64]*pass.FileResult{}}
	st, _, err := Run(context.Background(), &Config{Kind: manifest.Cold, Source: src, Jobs: 2}, &fakeDest{p: fp}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if int(st.FilesExamined) != len(want) || len(fp.done) != len(want) {
		t.Fatalf("%d files examined, %d done, want %d", st.FilesExamined, len(fp.done), len(want))
	}
	for id, res := range fp.done {
		rel := fp.entries[id-1].Rel
		if res.Entry.Rel != rel || !bytes.Equal(fp.data[id], want[rel]) {
			t.Fatalf("%s: done as %q with %d bytes written, want its %d bytes", rel, res.Entry.Rel, len(fp.data[id]), len(want[rel]))
		}
		if len(res.Hashes) != manifest.NumBlocks(int64(len(want[rel])), pass.DefaultBlockSize) {
			t.Fatalf("%s: %d hashes", rel, len(res.Hashes))
		}
	}
	if fp.unflush != 0 {
		t.Fatalf("%d files done and never flushed: a receiver would wait for them forever", fp.unflush)
	}
	for _, n := range fp.nexts {
		if n > pass.BatchFiles {
			t.Fatalf("Next returned %d files, more than the %d asked for", n, pass.BatchFiles)
		}
	}
}

// TestProduceBatches checks how the producer groups files for the workers:
// small ones in batches of at most BatchFiles files and about a chunk of
// bytes, in walk order; a file larger than a chunk in chunks, after the
// batch before it.
func TestProduceBatches(t *testing.T) {
	src := t.TempDir()
	var entries []pass.Entry
	var bases []*pass.Basis
	add := func(rel string, size int64) {
		if err := os.WriteFile(filepath.Join(src, rel), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, pass.Entry{Rel: rel, Stat: manifest.Stat{Size: size}})
		bases = append(bases, &pass.Basis{ID: uint64(len(bases) + 1), Rel: rel, Index: len(entries) - 1})
	}
	for i := range 100 {
		add(fmt.Sprintf("s%03d", i), 8192)
	}
	for i := range 6 {
		add(fmt.Sprintf("m%d", i), pass.ChunkSize/4) // a batch holds about a chunk
	}
	add("large", 2*pass.ChunkSize+1)
	add("t", 1)
	fp := &fakePass{entries: entries, data: map[uint64][]byte{}, done: map[uint64]*pass.FileResult{}}
	p := &sender{cfg: &Config{Kind: manifest.Live, Source: src, Jobs: 2}, bs: pass.DefaultBlockSize, chunk: pass.ChunkSize, obs: pass.NopObserver{}}
	p.dirs = newSrcDirs(src)
	defer p.dirs.close()
	work := make(chan task, 1000)
	ctx, fail := context.WithCancelCause(context.Background())
	defer fail(nil)
	p.produce(ctx, fail, fp, entries, work)
	close(work)
	if err := context.Cause(ctx); err != nil {
		t.Fatal(err)
	}
	var order []string
	for tk := range work {
		if tk.small == nil {
			if tk.chunk.fc.b.Rel != "large" {
				t.Fatalf("only the large file is chunked, not %s", tk.chunk.fc.b.Rel)
			}
			if len(order) == 0 || order[len(order)-1] != "large" {
				order = append(order, "large")
			}
			continue
		}
		if len(tk.small) > pass.BatchFiles {
			t.Fatalf("a batch of %d files, more than %d", len(tk.small), pass.BatchFiles)
		}
		var before int64 // the bytes before the batch's last file
		for i, b := range tk.small {
			if i < len(tk.small)-1 {
				before += entries[b.Index].Stat.Size
			}
			order = append(order, b.Rel)
		}
		if before >= pass.ChunkSize {
			t.Fatalf("a batch went on past a chunk of bytes (%d before its last file)", before)
		}
	}
	var want []string
	for _, e := range entries {
		want = append(want, e.Rel)
	}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("the workers get the files in walk order:\n got %v\nwant %v", order, want)
	}
}
