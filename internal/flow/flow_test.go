package flow

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWindowBoundsFilesAndBytes(t *testing.T) {
	w := NewWindow(2, 100)
	if !w.TryTake(10) || !w.TryTake(10) {
		t.Fatal("two files of 10 bytes fit a window of 2 files and 100 bytes")
	}
	if w.TryTake(1) {
		t.Fatal("a third file must wait: the window holds 2 files")
	}
	w.Release(10)
	select {
	case <-w.Freed():
	default:
		t.Fatal("a release must leave a token in Freed")
	}
	if w.TryTake(91) {
		t.Fatal("10 + 91 bytes exceed the window's 100")
	}
	if !w.TryTake(90) {
		t.Fatal("10 + 90 bytes fit the window's 100")
	}
	w.Release(10)
	w.Release(90)
	if !w.TryTake(1000) {
		t.Fatal("a file larger than the window goes alone into an empty window")
	}
	if w.TryTake(0) {
		t.Fatal("nothing goes with a file larger than the window")
	}
}

func TestQueueKeepsOrderAndItsLimit(t *testing.T) {
	ctx := context.Background()
	stop := make(chan struct{})
	q := NewQueue[int](4)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(q.Push(ctx, stop, []int{1, 2, 3}))
	pushed := make(chan error, 1)
	go func() { pushed <- q.Push(ctx, stop, []int{4, 5}) }()
	select {
	case <-pushed:
		t.Fatal("a push beyond the limit must wait for the consumer")
	case <-time.After(50 * time.Millisecond):
	}
	got, err := q.Take(stop)
	must(err)
	must(<-pushed)
	rest, err := q.Take(stop)
	must(err)
	got = append(got, rest...)
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("the queue must keep the order of its pushes: got %v", got)
		}
	}
	// A batch larger than the limit goes into an empty queue whole.
	must(q.Push(ctx, stop, []int{6, 7, 8, 9, 10, 11}))
	q.Close()
	if got, err := q.Take(stop); err != nil || len(got) != 6 {
		t.Fatalf("a closed queue gives what it holds first: %v %v", got, err)
	}
	if got, err := q.Take(stop); err != nil || got != nil {
		t.Fatalf("a closed, empty queue gives nothing: %v %v", got, err)
	}
	// A stopped pass unblocks both ends.
	q = NewQueue[int](1)
	must(q.Push(ctx, stop, []int{1}))
	close(stop)
	if err := q.Push(ctx, stop, []int{2}); !errors.Is(err, ErrStopped) {
		t.Fatalf("a push into a full queue of a stopped pass must fail, got %v", err)
	}
	if _, err := NewQueue[int](1).Take(stop); !errors.Is(err, ErrStopped) {
		t.Fatalf("a take from an empty queue of a stopped pass must fail, got %v", err)
	}
}

func TestAheadGivesEveryResultInOrderAndStaysWithinItsBlocks(t *testing.T) {
	const n, block, ahead = 1000, 10, 3
	var cur, furthest atomic.Int64 // the consumer's index, and the furthest computed
	var tooFar atomic.Int64
	a := NewAhead(n, block, ahead, 4, func(i int) int {
		// A block may be computed only while fewer than ahead blocks
		// that the consumer has not passed are taken.
		if c := cur.Load(); int64(i)/block >= c/block+ahead+1 {
			tooFar.Store(int64(i))
		}
		for {
			f := furthest.Load()
			if int64(i) <= f || furthest.CompareAndSwap(f, int64(i)) {
				break
			}
		}
		return i * 2
	})
	defer a.Stop()
	for i := range n {
		cur.Store(int64(i))
		v, err := a.Get(context.Background(), i)
		if err != nil || *v != 2*i {
			t.Fatalf("Get(%d) = %v, %v; want %d", i, v, err, 2*i)
		}
	}
	if i := tooFar.Load(); i != 0 {
		t.Fatalf("item %d was computed more than %d blocks ahead of the consumer", i, ahead)
	}
}

func TestAheadStops(t *testing.T) {
	block := make(chan struct{})
	a := NewAhead(100, 10, 2, 2, func(i int) int {
		if i == 10 {
			<-block
		}
		return i
	})
	if _, err := a.Get(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := a.Get(ctx, 15); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get of an item not computed yet must end with its context, got %v", err)
	}
	close(block)
	a.Stop()
	a.Stop() // twice is fine
	if _, err := a.Get(context.Background(), 95); !errors.Is(err, ErrStopped) {
		t.Fatalf("Get after Stop of an item never computed must fail, got %v", err)
	}
}
