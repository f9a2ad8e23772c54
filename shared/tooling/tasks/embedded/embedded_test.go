package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/tasks/embedded"
	"github.com/chromeos-certprov/adapter/shared/tooling/tasks/taskstest"
)

func newDispatcher(t testing.TB, targets map[tasks.Queue]http.Handler, opts embedded.Options) *embedded.Dispatcher {
	d := embedded.New(targets, opts)
	t.Cleanup(func() { d.Close() })
	return d
}

func wait(t testing.TB, d *embedded.Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestConformance(t *testing.T) {
	taskstest.Run(t, func(t *testing.T, targets map[tasks.Queue]http.Handler) taskstest.Enqueuer {
		return newDispatcher(t, targets, embedded.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	})
}

// recorder answers each delivery with the status code status picks and keeps
// the headers of every delivery.
type recorder struct {
	mu     sync.Mutex
	got    []http.Header
	status func(r *http.Request) int
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.got = append(rec.got, r.Header.Clone())
	rec.mu.Unlock()
	code := http.StatusOK
	if rec.status != nil {
		code = rec.status(r)
	}
	w.WriteHeader(code)
}

func (rec *recorder) headers(name string) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []string
	for _, h := range rec.got {
		out = append(out, h.Get(name))
	}
	return out
}

func TestDropsAfterMaxAttempts(t *testing.T) {
	tests := []struct {
		name        string
		maxAttempts int
		status      int
		wantExec    []string
	}{
		{"5xx are not executions", 3, http.StatusServiceUnavailable, []string{"0", "0", "0"}},
		{"4xx are executions", 4, http.StatusConflict, []string{"0", "1", "2", "3"}},
		{"default 10 attempts", 0, http.StatusInternalServerError, []string{"0", "0", "0", "0", "0", "0", "0", "0", "0", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{status: func(*http.Request) int { return tt.status }}
			d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueueIssue: rec},
				embedded.Options{MaxAttempts: tt.maxAttempts, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
			if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueueIssue, Name: "doomed", Body: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
			wait(t, d)

			n := len(tt.wantExec)
			var wantRetries []string
			for i := range n {
				wantRetries = append(wantRetries, fmt.Sprint(i))
			}
			if diff := cmp.Diff(wantRetries, rec.headers(tasks.HeaderRetryCount)); diff != "" {
				t.Errorf("retry counts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantExec, rec.headers(tasks.HeaderExecutionCount)); diff != "" {
				t.Errorf("execution counts (-want +got):\n%s", diff)
			}
			want := embedded.Stats{Enqueued: 1, Dispatched: n, FailedAttempts: n, Dropped: 1}
			if diff := cmp.Diff(want, d.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
			if p := d.Pending(); p != 0 {
				t.Errorf("Pending = %d after Wait, want 0", p)
			}
		})
	}
}

// A retry is scheduled no earlier than the backoff after the failed attempt,
// and the backoff doubles up to MaxBackoff.
func TestBackoffDoubles(t *testing.T) {
	var mu sync.Mutex
	var starts, etas []time.Time
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		eta, err := taskstest.ParseETA(r.Header.Get(tasks.HeaderETA))
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		starts = append(starts, time.Now())
		etas = append(etas, eta)
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	})
	minB, maxB := 5*time.Millisecond, 20*time.Millisecond
	d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: h}, embedded.Options{MaxAttempts: 5, MinBackoff: minB, MaxBackoff: maxB})
	if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: "b"}); err != nil {
		t.Fatal(err)
	}
	wait(t, d)

	backoffs := []time.Duration{minB, 2 * minB, 4 * minB, maxB}
	if len(etas) != len(backoffs)+1 {
		t.Fatalf("%d attempts, want %d", len(etas), len(backoffs)+1)
	}
	for i, b := range backoffs {
		// The ETA header has microseconds; the failure came after the start.
		if gap := etas[i+1].Sub(starts[i]); gap < b-time.Microsecond {
			t.Errorf("retry %d: ETA %s after the failed attempt started, want at least %s", i+1, gap, b)
		}
		if starts[i+1].Before(etas[i+1].Add(-time.Microsecond)) {
			t.Errorf("retry %d delivered before its ETA", i+1)
		}
	}
}

func TestDuplicateNamesAreCounted(t *testing.T) {
	rec := &recorder{}
	d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: rec, tasks.QueueIssue: rec}, embedded.Options{})
	for _, task := range []tasks.Task{
		{Queue: tasks.QueuePoll, Name: "a"},
		{Queue: tasks.QueuePoll, Name: "a"},
		{Queue: tasks.QueueIssue, Name: "a"},
		{Queue: tasks.QueuePoll},
		{Queue: tasks.QueuePoll},
	} {
		if err := d.Enqueue(t.Context(), task); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, d)
	want := embedded.Stats{Enqueued: 4, Duplicates: 1, Dispatched: 4, Succeeded: 4}
	if diff := cmp.Diff(want, d.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	// A name stays used after its task ran.
	if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if got := d.Stats().Duplicates; got != 2 {
		t.Errorf("Duplicates = %d after reusing a finished name, want 2", got)
	}
}

func TestEnqueueRejects(t *testing.T) {
	d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: &recorder{}}, embedded.Options{})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		task tasks.Task
	}{
		{"unknown queue", context.Background(), tasks.Task{Queue: tasks.QueueIssue, Name: "x"}},
		{"bad name", context.Background(), tasks.Task{Queue: tasks.QueuePoll, Name: "a/b"}},
		{"canceled context", canceled, tasks.Task{Queue: tasks.QueuePoll, Name: "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := d.Enqueue(tt.ctx, tt.task); err == nil {
				t.Error("Enqueue: nil error")
			}
		})
	}
	if diff := cmp.Diff(embedded.Stats{}, d.Stats()); diff != "" {
		t.Errorf("Stats after rejected enqueues (-want +got):\n%s", diff)
	}
}

// Wait covers tasks that handlers enqueue, as PollSignature re-enqueues itself.
func TestWaitCoversChains(t *testing.T) {
	const hops = 50
	var d *embedded.Dispatcher
	var last atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.Header.Get(tasks.HeaderTaskName), "hop-%d", &n)
		last.Store(int64(n))
		if n < hops {
			if err := d.Enqueue(r.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: fmt.Sprintf("hop-%d", n+1),
				ScheduleTime: time.Now().Add(time.Millisecond)}); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		}
	})
	d = newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: h}, embedded.Options{})
	if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: "hop-1"}); err != nil {
		t.Fatal(err)
	}
	wait(t, d)
	if got := last.Load(); got != hops {
		t.Errorf("last hop = %d when Wait returned, want %d", got, hops)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: &recorder{}}, embedded.Options{})
	if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: "far", ScheduleTime: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := d.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
	if p := d.Pending(); p != 1 {
		t.Errorf("Pending = %d, want 1", p)
	}
}

func TestDuplicateDelivery(t *testing.T) {
	const n = 200
	var mu sync.Mutex
	count := map[string]int{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		count[r.Header.Get(tasks.HeaderTaskName)+"/"+r.Header.Get(tasks.HeaderRetryCount)]++
		mu.Unlock()
	})
	run := func(rate float64, seed int64) (map[string]int, embedded.Stats) {
		clear(count)
		d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: h}, embedded.Options{DuplicateRate: rate, Seed: seed, Concurrency: 8})
		for i := range n {
			if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: fmt.Sprint("t", i)}); err != nil {
				t.Fatal(err)
			}
		}
		wait(t, d)
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(count), d.Stats()
	}

	got, st := run(1, 1)
	for i := range n {
		if c := got[fmt.Sprint("t", i, "/0")]; c != 2 {
			t.Fatalf("rate 1: t%d delivered %d times, want 2", i, c)
		}
	}
	if want := (embedded.Stats{Enqueued: n, Dispatched: 2 * n, Succeeded: n, InjectedDuplicates: n}); st != want {
		t.Errorf("rate 1: Stats = %+v, want %+v", st, want)
	}

	a, sa := run(0.3, 42)
	b, sb := run(0.3, 42)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different duplicated tasks (-first +second):\n%s", diff)
	}
	if sa.InjectedDuplicates < n/10 || sa.InjectedDuplicates > n/2 || sa != sb {
		t.Errorf("rate 0.3: %d of %d duplicated (second run %d), want about 60", sa.InjectedDuplicates, n, sb.InjectedDuplicates)
	}
	if sa.Succeeded != n {
		t.Errorf("rate 0.3: %d succeeded, want %d", sa.Succeeded, n)
	}
}

// An injected duplicate of a failing attempt does not add retries.
func TestDuplicateOfFailureDoesNotRetry(t *testing.T) {
	rec := &recorder{status: func(r *http.Request) int {
		if tasks.RetryCount(r) == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}}
	d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: rec}, embedded.Options{DuplicateRate: 1, MinBackoff: time.Millisecond})
	if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: "x"}); err != nil {
		t.Fatal(err)
	}
	wait(t, d)
	want := embedded.Stats{Enqueued: 1, Dispatched: 4, Succeeded: 1, FailedAttempts: 2, InjectedDuplicates: 2}
	if diff := cmp.Diff(want, d.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestPanicIsRetried(t *testing.T) {
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			panic("boom")
		}
	})
	d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: h}, embedded.Options{MinBackoff: time.Millisecond})
	if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: "p"}); err != nil {
		t.Fatal(err)
	}
	wait(t, d)
	want := embedded.Stats{Enqueued: 1, Dispatched: 2, Succeeded: 1, FailedAttempts: 1}
	if diff := cmp.Diff(want, d.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestClose(t *testing.T) {
	started := make(chan struct{})
	var sawCancel atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		sawCancel.Store(true)
	})
	d := embedded.New(map[tasks.Queue]http.Handler{tasks.QueuePoll: h}, embedded.Options{})
	for _, name := range []string{"running", "queued"} {
		eta := time.Time{}
		if name == "queued" {
			eta = time.Now().Add(time.Hour)
		}
		if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: name, ScheduleTime: eta}); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !sawCancel.Load() {
		t.Error("Close returned before the running handler saw its context canceled")
	}
	if err := d.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: "late"}); !errors.Is(err, embedded.ErrClosed) {
		t.Errorf("Enqueue after Close = %v, want ErrClosed", err)
	}
	if err := d.Wait(t.Context()); !errors.Is(err, embedded.ErrClosed) {
		t.Errorf("Wait after Close = %v, want ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Many tasks, due in a spread of times, are each delivered once, in ETA order
// per worker, with no more handlers at once than Concurrency.
func TestManyTasksBoundedConcurrency(t *testing.T) {
	const n, conc = 20000, 16
	var inFlight, peak atomic.Int32
	var mu sync.Mutex
	seen := make(map[string]int, n)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := inFlight.Add(1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		mu.Lock()
		seen[r.Header.Get(tasks.HeaderTaskName)]++
		mu.Unlock()
		inFlight.Add(-1)
	})
	d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: h}, embedded.Options{Concurrency: conc})
	now := time.Now()
	for i := range n {
		task := tasks.Task{Queue: tasks.QueuePoll, Name: fmt.Sprint("m", i), ScheduleTime: now.Add(time.Duration(i%100) * time.Millisecond)}
		if err := d.Enqueue(t.Context(), task); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, d)
	if len(seen) != n {
		t.Errorf("%d distinct tasks delivered, want %d", len(seen), n)
	}
	for name, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", name, c)
		}
	}
	if p := peak.Load(); p > conc {
		t.Errorf("%d handlers ran at once, want at most %d", p, conc)
	}
}

func BenchmarkDispatch(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	d := newDispatcher(b, map[tasks.Queue]http.Handler{tasks.QueuePoll: h}, embedded.Options{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := d.Enqueue(context.Background(), tasks.Task{Queue: tasks.QueuePoll, Name: fmt.Sprint("b", i), Body: []byte(`{"k":"v"}`)}); err != nil {
			b.Fatal(err)
		}
	}
	wait(b, d)
}
