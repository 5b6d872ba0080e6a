// Package flow is the flow control of a pass, without knowing of files:
// how much the destination has in flight with the sender ([Window]), the
// queue that keeps the files of a pass in walk order on their way to the
// manifest writer ([Queue]), and work done by several goroutines ahead of a
// consumer that takes it in order ([Ahead]). The destination uses them on
// this host and on another one (the receiver runs the same destination).
package flow

import (
	"context"
	"errors"
	"sync"
)

// ErrStopped is returned by the calls that wait once their stop channel is
// closed.
var ErrStopped = errors.New("pass aborted")

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Window counts what is in flight: files and their bytes. One goroutine
// takes, any may release.
type Window struct {
	// config
	maxFiles int
	maxBytes int64

	// state
	mu    sync.Mutex
	files int
	bytes int64
	freed chan struct{} // holds a token after a release
}

// NewWindow returns a window of at most maxFiles files (at least one) and
// maxBytes bytes.
func NewWindow(maxFiles int, maxBytes int64) *Window {
	return &Window{maxFiles: max(maxFiles, 1), maxBytes: maxBytes, freed: make(chan struct{}, 1)}
}

// TryTake puts a file of size bytes in flight if it fits: when the window
// has room for one more file and its bytes, or holds nothing at all (a file
// larger than the window goes alone).
func (w *Window) TryTake(size int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.files > 0 && (w.files >= w.maxFiles || w.bytes+size > w.maxBytes) {
		return false
	}
	w.files++
	w.bytes += size
	return true
}

// Release takes a file of size bytes out of flight.
func (w *Window) Release(size int64) {
	w.mu.Lock()
	w.files--
	w.bytes -= size
	w.mu.Unlock()
	signal(w.freed)
}

// Freed receives a token after a release: wait on it when TryTake failed,
// then try again.
func (w *Window) Freed() <-chan struct{} { return w.freed }

// Queue is a queue in order from one producer to one consumer. It holds
// at most limit items (a batch pushed into an empty queue is taken whole),
// and the consumer takes all it holds at once.
type Queue[T any] struct {
	// config
	limit int

	// state
	mu     sync.Mutex
	q      []T
	closed bool
	more   chan struct{} // a token after items came, or the queue closed
	space  chan struct{} // a token after the consumer took items
}

// NewQueue returns a queue of at most limit items.
func NewQueue[T any](limit int) *Queue[T] {
	return &Queue[T]{limit: limit, more: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// Push adds batch, waiting while the queue is full.
func (r *Queue[T]) Push(ctx context.Context, stop <-chan struct{}, batch []T) error {
	for {
		r.mu.Lock()
		if len(r.q) == 0 || len(r.q)+len(batch) <= r.limit {
			r.q = append(r.q, batch...)
			r.mu.Unlock()
			signal(r.more)
			return nil
		}
		r.mu.Unlock()
		select {
		case <-r.space:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return ErrStopped
		}
	}
}

// Close ends the queue: Take returns nothing once it is empty.
func (r *Queue[T]) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	signal(r.more)
}

// Take returns every item queued, waiting for one; none once the queue is
// closed and empty.
func (r *Queue[T]) Take(stop <-chan struct{}) ([]T, error) {
	for {
		r.mu.Lock()
		if q := r.q; len(q) > 0 {
			r.q = nil
			r.mu.Unlock()
			signal(r.space)
			return q, nil
		}
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return nil, nil
		}
		select {
		case <-r.more:
		case <-stop:
			return nil, ErrStopped
		}
	}
}

// Ahead computes fn(i) for i from 0 to n-1, block by block, from several
// goroutines, at most a number of blocks ahead of the consumer, which takes
// the results in order with Get. A pass stats the copy's files ahead of its
// merge this way: in parallel, and holding the stats of a few thousand
// files, not of all.
type Ahead[T any] struct {
	// config
	fn     func(i int) T
	n      int
	block  int
	ahead  int
	blocks []aheadBlock[T]

	// state
	mu      sync.Mutex
	moved   *sync.Cond // the consumer moved on, or Stop was called
	next    int        // the next block a goroutine takes
	cur     int        // the block the consumer is in
	stopped bool
	quit    chan struct{}
	wg      sync.WaitGroup
}

type aheadBlock[T any] struct {
	done chan struct{}
	out  []T
}

// NewAhead starts workers goroutines computing fn over 0..n-1 in blocks of
// block items, at most ahead blocks ahead of the one Get is in.
func NewAhead[T any](n, block, ahead, workers int, fn func(i int) T) *Ahead[T] {
	nb := (n + block - 1) / block
	a := &Ahead[T]{fn: fn, n: n, block: block, ahead: max(ahead, 1), blocks: make([]aheadBlock[T], nb), quit: make(chan struct{})}
	a.moved = sync.NewCond(&a.mu)
	for k := range a.blocks {
		a.blocks[k].done = make(chan struct{})
	}
	for range min(max(workers, 1), nb) {
		a.wg.Add(1)
		go a.run()
	}
	return a
}

func (a *Ahead[T]) run() {
	defer a.wg.Done()
	for {
		a.mu.Lock()
		for !a.stopped && a.next < len(a.blocks) && a.next > a.cur+a.ahead {
			a.moved.Wait()
		}
		k := a.next
		if a.stopped || k >= len(a.blocks) {
			a.mu.Unlock()
			return
		}
		a.next++
		a.mu.Unlock()
		first := k * a.block
		out := make([]T, min(a.block, a.n-first))
		for j := range out {
			out[j] = a.fn(first + j)
		}
		a.blocks[k].out = out
		close(a.blocks[k].done)
	}
}

// Get waits for the result of i. The consumer calls it from one goroutine,
// with i never smaller than before: the results of the blocks before i's
// are dropped.
func (a *Ahead[T]) Get(ctx context.Context, i int) (*T, error) {
	if k := i / a.block; k > a.cur {
		a.mu.Lock()
		for ; a.cur < k; a.cur++ {
			select {
			case <-a.blocks[a.cur].done:
				a.blocks[a.cur].out = nil
			default: // skipped while being computed: it drops with a
			}
		}
		a.mu.Unlock()
		a.moved.Broadcast()
	}
	k := i / a.block
	select {
	case <-a.blocks[k].done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-a.quit:
		return nil, ErrStopped
	}
	return &a.blocks[k].out[i-k*a.block], nil
}

// Stop ends the goroutines and waits for them. It may be called more than
// once.
func (a *Ahead[T]) Stop() {
	a.mu.Lock()
	if !a.stopped {
		a.stopped = true
		close(a.quit)
	}
	a.mu.Unlock()
	a.moved.Broadcast()
	a.wg.Wait()
}
