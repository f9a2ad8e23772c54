// Package embedded is an in-process stand-in for Cloud Tasks, for the local run
// and for benchmarks: it delivers each task to its queue's http.Handler at or
// after its ScheduleTime, with the X-CloudTasks-* headers Cloud Tasks sets,
// retries non-2xx answers with exponential backoff up to a number of attempts,
// and treats a reused task name as a no-op. One timer heap serves every pending
// task and a fixed pool of workers calls the handlers, so tens of thousands of
// tasks cost little more than their bodies.
//
// It can also deliver some attempts twice (Options.DuplicateRate), as Cloud
// Tasks occasionally does, to check that the targets are idempotent.
package embedded

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
)

// Options tune the dispatcher. Zero values take the defaults.
type Options struct {
	// MaxAttempts is how many times a task is attempted before it is dropped
	// (default 10, as TASKS_MAX_ATTEMPTS).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait before a retry, which doubles
	// from MinBackoff with every failed attempt (defaults 100ms and 1h, Cloud
	// Tasks' own defaults).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Concurrency is how many handler calls may run at once (default 64).
	Concurrency int
	// DuplicateRate is the probability, from 0 to 1, that an attempt is
	// delivered a second time: the same task, with the same headers, handled
	// concurrently or right after. The outcome of the extra delivery is counted
	// but neither retries nor ends the task.
	DuplicateRate float64
	// Seed seeds the choice of duplicated attempts. The choice depends only on
	// the seed and the attempt (queue, task name, retry count), not on timing,
	// so a campaign duplicates the same attempts when run again.
	Seed int64
	// Logger, if set, gets a warning for every dropped task.
	Logger *slog.Logger
	// Rates limits each listed queue's dispatches per second, as a Cloud
	// Tasks queue's maxDispatchesPerSecond does: a due attempt waits for its
	// queue's next slot (ratelimit.go). Queues not listed are not limited.
	Rates map[tasks.Queue]float64
	// Clock schedules the attempts (default the real clock). With a virtual
	// clock, every attempt runs holding it, so that time moves to the next
	// due attempt only when no handler is running.
	Clock clock.Clock
}

// Stats counts what the dispatcher did.
type Stats struct {
	Enqueued           int // tasks accepted
	Duplicates         int // Enqueue calls with a name already used in that queue (no-ops)
	Dispatched         int // handler calls: attempts, retries and injected duplicates
	Succeeded          int // tasks ended by a 2xx answer
	FailedAttempts     int // handler calls answered with anything but 2xx
	Dropped            int // tasks given up after MaxAttempts failed attempts
	InjectedDuplicates int // extra deliveries made because of DuplicateRate
}

// ErrClosed is returned by Enqueue and Wait after Close.
var ErrClosed = errors.New("embedded: dispatcher closed")

var taskID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,500}$`)

// Dispatcher delivers tasks in process. It is safe for concurrent use, and its
// handlers may call Enqueue.
type Dispatcher struct {
	targets map[tasks.Queue]http.Handler
	opts    Options

	ctx    context.Context // canceled by Close; the context of every request
	cancel context.CancelFunc
	clk    clock.Clock
	work   chan held // due attempts, for the workers
	wg     sync.WaitGroup

	mu      sync.Mutex
	due     entryHeap
	names   map[tasks.Queue]map[string]struct{}
	pending int           // accepted tasks not finished, plus injected duplicates in flight
	idle    chan struct{} // closed when pending drops to 0
	seq     uint64
	timer   clock.Timer // fires when the head of the heap is due
	timerAt time.Time   // when timer fires
	stats   Stats
	paces   map[tasks.Queue]*pace // Options.Rates
	closed  bool
}

// held is a due attempt handed to a worker with a hold of the clock.
type held struct {
	e       *entry
	release func()
}

// entry is one attempt waiting for its time.
type entry struct {
	queue     tasks.Queue
	name      string
	body      []byte
	eta       time.Time // schedule time of this attempt
	retries   int       // earlier attempts
	execs     int       // earlier attempts answered with other than 5xx
	duplicate bool      // an injected extra delivery
	paced     bool      // eta is a slot its queue's rate reserved
	seq       uint64    // FIFO among equal ETAs
}

// New starts a dispatcher that delivers each queue's tasks to targets[queue].
func New(targets map[tasks.Queue]http.Handler, opts Options) *Dispatcher {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Hour
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	opts.DuplicateRate = min(max(opts.DuplicateRate, 0), 1)
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}

	d := &Dispatcher{
		targets: make(map[tasks.Queue]http.Handler, len(targets)),
		opts:    opts,
		clk:     opts.Clock,
		work:    make(chan held),
		names:   make(map[tasks.Queue]map[string]struct{}),
		idle:    make(chan struct{}),
	}
	close(d.idle) // nothing pending yet
	d.paces = newPaces(opts.Rates)
	for q, h := range targets {
		if h != nil {
			d.targets[q] = h
			d.names[q] = make(map[string]struct{})
		}
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(opts.Concurrency)
	for range opts.Concurrency {
		go d.worker()
	}
	return d
}

// Enqueue accepts t for delivery at t.ScheduleTime (now if zero). A name already
// used in the queue is a no-op that returns nil; unlike Cloud Tasks, which frees
// names after about an hour, the dispatcher remembers them until it is closed. A
// task without a name is never deduplicated.
func (d *Dispatcher) Enqueue(ctx context.Context, t tasks.Task) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: enqueue %s/%s: %w", t.Queue, t.Name, err)
	}
	if _, ok := d.targets[t.Queue]; !ok {
		return fmt.Errorf("embedded: enqueue %q: unknown queue %q", t.Name, t.Queue)
	}
	if t.Name != "" && !taskID.MatchString(t.Name) {
		return fmt.Errorf("embedded: enqueue in %s: task name %q: want 1-500 of [A-Za-z0-9_-]", t.Queue, t.Name)
	}
	eta := t.ScheduleTime
	if eta.IsZero() {
		eta = d.clk.Now()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	name := t.Name
	if name == "" {
		name = "auto-" + strconv.FormatUint(d.seq+1, 10)
	} else {
		if _, used := d.names[t.Queue][name]; used {
			d.stats.Duplicates++
			return nil
		}
		d.names[t.Queue][name] = struct{}{}
	}
	d.stats.Enqueued++
	d.addPending()
	d.push(&entry{queue: t.Queue, name: name, body: bytes.Clone(t.Body), eta: eta})
	return nil
}

// Stats returns the counts so far.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Pending returns how many tasks are waiting or being delivered (injected
// duplicate deliveries included).
func (d *Dispatcher) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending
}

// Wait blocks until nothing is pending: every task, including those that
// handlers enqueued meanwhile, succeeded or was dropped. It returns ctx's error
// if ctx ends first, and ErrClosed if the dispatcher is closed first.
func (d *Dispatcher) Wait(ctx context.Context) error {
	d.mu.Lock()
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded: wait: %d tasks pending: %w", d.Pending(), ctx.Err())
	case <-d.ctx.Done():
		return ErrClosed
	}
}

// Close stops the dispatcher: pending tasks are discarded, the contexts of
// requests in flight are canceled, and Close returns when their handlers have
// returned. Handlers must not call Close.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	return nil
}

// push adds e to the heap and, if e is the new head, sets the timer for it.
// d.mu is held.
func (d *Dispatcher) push(e *entry) {
	d.seq++
	e.seq = d.seq
	heap.Push(&d.due, e)
	if d.due[0] == e {
		d.arm()
	}
}

// arm sets the timer for the head of the heap, unless it is set for then or
// earlier. d.mu is held.
func (d *Dispatcher) arm() {
	if len(d.due) == 0 || d.closed {
		return
	}
	eta := d.due[0].eta
	if d.timer != nil && !d.timerAt.After(eta) {
		return
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	d.timerAt = eta
	d.timer = d.clk.AfterFunc(eta.Sub(d.clk.Now()), d.dispatch)
}

// addPending and donePending track unfinished work for Wait. d.mu is held.
func (d *Dispatcher) addPending() {
	if d.pending == 0 {
		d.idle = make(chan struct{})
	}
	d.pending++
}

func (d *Dispatcher) donePending() {
	d.pending--
	if d.pending == 0 {
		close(d.idle)
	}
}

// dispatch hands the due attempts to the workers in ETA order, each with a
// hold of the clock, then sets the timer for the next one. It runs on the
// clock's timer (holding a virtual clock).
func (d *Dispatcher) dispatch() {
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return
		}
		d.timer = nil
		if len(d.due) == 0 || d.due[0].eta.After(d.clk.Now()) {
			d.arm()
			d.mu.Unlock()
			return
		}
		next := heap.Pop(&d.due).(*entry)
		if d.wait(next) {
			d.mu.Unlock()
			continue
		}
		d.mu.Unlock()
		h := held{e: next, release: d.clk.Hold()}
		select {
		case d.work <- h:
		case <-d.ctx.Done():
			h.release()
			return
		}
	}
}

func (d *Dispatcher) worker() {
	defer d.wg.Done()
	for {
		select {
		case h := <-d.work:
			d.deliver(h.e)
			h.release()
		case <-d.ctx.Done():
			return
		}
	}
}

// deliver makes one attempt of e and settles its outcome.
func (d *Dispatcher) deliver(e *entry) {
	if !e.duplicate && d.duplicated(e) {
		d.mu.Lock()
		if !d.closed {
			dup := *e
			dup.duplicate = true
			d.stats.InjectedDuplicates++
			d.addPending()
			d.push(&dup)
		}
		d.mu.Unlock()
	}

	code := d.call(e)

	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Dispatched++
	ok := code >= 200 && code <= 299
	if !ok {
		d.stats.FailedAttempts++
	}
	switch {
	case e.duplicate:
	case ok:
		d.stats.Succeeded++
	case d.closed:
	case e.retries+1 >= d.opts.MaxAttempts:
		d.stats.Dropped++
		if d.opts.Logger != nil {
			d.opts.Logger.Warn("embedded: task dropped after its last attempt",
				"queue", string(e.queue), "task", e.name, "attempts", e.retries+1, "status", code)
		}
	default:
		e.retries++
		if code < 500 {
			e.execs++
		}
		e.eta = d.clk.Now().Add(d.backoff(e.retries))
		d.push(e)
		return
	}
	d.donePending()
}

// duplicated reports whether the attempt e is to be delivered twice.
func (d *Dispatcher) duplicated(e *entry) bool {
	if d.opts.DuplicateRate <= 0 {
		return false
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%d", d.opts.Seed, e.queue, e.name, e.retries)
	// splitmix64 finalizer: FNV's low-entropy high bits become uniform.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/math.Exp2(53) < d.opts.DuplicateRate
}

// backoff is the wait before the attempt that follows failed attempt n (1-based).
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.opts.MinBackoff
	for i := 1; i < n && b < d.opts.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, d.opts.MaxBackoff)
}

// call runs the queue's handler for one attempt of e and returns the status
// code it answered (500 if it panicked).
func (d *Dispatcher) call(e *entry) (code int) {
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, "http://cloudtasks.embedded/"+string(e.queue), bytes.NewReader(e.body))
	if err != nil {
		return http.StatusInternalServerError
	}
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Google-Cloud-Tasks")
	req.Header.Set(tasks.HeaderTaskName, e.name)
	req.Header.Set(tasks.HeaderQueueName, string(e.queue))
	req.Header.Set(tasks.HeaderRetryCount, strconv.Itoa(e.retries))
	req.Header.Set(tasks.HeaderExecutionCount, strconv.Itoa(e.execs))
	req.Header.Set(tasks.HeaderETA, formatETA(e.eta))

	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler && d.opts.Logger != nil {
				d.opts.Logger.Error("embedded: handler panicked", "queue", string(e.queue), "task", e.name, "panic", fmt.Sprint(p))
			}
			code = http.StatusInternalServerError
		}
	}()
	rec := httptest.NewRecorder()
	d.targets[e.queue].ServeHTTP(rec, req)
	return rec.Code
}

// formatETA writes t as Cloud Tasks does: seconds since the epoch with a
// six-digit fraction.
func formatETA(t time.Time) string {
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
}

// entryHeap orders attempts by ETA, then by when they were pushed.
type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if !h[i].eta.Equal(h[j].eta) {
		return h[i].eta.Before(h[j].eta)
	}
	return h[i].seq < h[j].seq
}
func (h entryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)   { *h = append(*h, x.(*entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
