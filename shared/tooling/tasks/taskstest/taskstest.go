// Package taskstest is the conformance suite every task carrier passes: the
// Cloud Tasks enqueuer (against the real emulator) and the embedded dispatcher
// of the local run. It checks what the pipeline relies on: the body and the
// X-CloudTasks-* headers reach the queue's own target, a reused name is a no-op,
// a non-2xx answer is retried with a growing retry count until a 2xx ends the
// task, and a task is not delivered before its ScheduleTime.
package taskstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// Enqueuer is what the suite drives (the contract of shared/pipeline).
type Enqueuer interface {
	Enqueue(ctx context.Context, t tasks.Task) error
}

// Waiter is implemented by carriers that know when nothing is pending (the
// embedded dispatcher). The suite then also waits for that before checking that
// nothing more was delivered.
type Waiter interface {
	Wait(ctx context.Context) error
}

// patience bounds how long the suite waits for a delivery before failing. It
// guards against hangs; no check depends on how fast a delivery comes.
const patience = 60 * time.Second

// Run runs the suite. newEnqueuer returns an Enqueuer whose queues deliver to
// targets (tasks.QueuePoll and tasks.QueueIssue); each subtest asks for a fresh
// one. It is called from parallel subtests. Queues must retry a non-2xx answer
// at least three times, with backoffs of seconds at most.
func Run(t *testing.T, newEnqueuer func(t *testing.T, targets map[tasks.Queue]http.Handler) Enqueuer) {
	newEnv := func(t *testing.T) *env {
		e := &env{poll: newTarget(), issue: newTarget()}
		e.enq = newEnqueuer(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: e.poll, tasks.QueueIssue: e.issue})
		return e
	}

	t.Run("Delivery", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		body := []byte(`{"process":"customers/C/certificateProvisioningProcesses/P1"}`)
		e.enqueue(t, tasks.Task{Queue: tasks.QueuePoll, Name: "deliver-1", Body: body})
		d := e.poll.waitFor(t, "deliver-1", 1)[0]

		if d.Method != http.MethodPost {
			t.Errorf("method = %s, want POST", d.Method)
		}
		if !strings.HasPrefix(d.ContentType, "application/json") {
			t.Errorf("Content-Type = %q, want application/json", d.ContentType)
		}
		if !bytes.Equal(d.Body, body) {
			t.Errorf("body = %q, want %q", d.Body, body)
		}
		if d.Queue == "" {
			t.Errorf("%s header missing", tasks.HeaderQueueName)
		}
		if d.Retry != 0 || d.Exec != 0 {
			t.Errorf("retry, execution count = %d, %d; want 0, 0 on the first attempt", d.Retry, d.Exec)
		}
		if d.ETA.IsZero() || d.At.Before(d.ETA.Add(-time.Microsecond)) {
			t.Errorf("ETA %s (header %q) is after the delivery at %s", d.ETA, d.ETARaw, d.At)
		}
		e.settle(t, tasks.QueuePoll)
		if n := len(e.poll.named("deliver-1")); n != 1 {
			t.Errorf("deliver-1 delivered %d times, want once", n)
		}
		if got := e.issue.names(); slices.Contains(got, "deliver-1") {
			t.Errorf("issue target got %v, want no poll task", got)
		}
	})

	t.Run("DuplicateNameIsNoop", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		first, second := []byte(`{"n":1}`), []byte(`{"n":2}`)
		e.enqueue(t, tasks.Task{Queue: tasks.QueueIssue, Name: "dup-1", Body: first})
		e.enqueue(t, tasks.Task{Queue: tasks.QueueIssue, Name: "dup-1", Body: second})
		e.issue.waitFor(t, "dup-1", 1)
		// Once it ran, the name still counts as used.
		e.enqueue(t, tasks.Task{Queue: tasks.QueueIssue, Name: "dup-1", Body: second})
		e.settle(t, tasks.QueueIssue)

		got := e.issue.named("dup-1")
		if len(got) != 1 {
			t.Fatalf("dup-1 delivered %d times, want once", len(got))
		}
		if !bytes.Equal(got[0].Body, first) {
			t.Errorf("body = %q, want the first enqueue's %q", got[0].Body, first)
		}
	})

	t.Run("NonSuccessIsRetried", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.poll.respond = func(d delivery) int {
			if d.Name == "retry-1" && d.Retry < 2 {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		}
		body := []byte(`{"retry":true}`)
		e.enqueue(t, tasks.Task{Queue: tasks.QueuePoll, Name: "retry-1", Body: body})
		e.poll.waitFor(t, "retry-1", 3)
		e.settle(t, tasks.QueuePoll)

		got := e.poll.named("retry-1")
		var retries []int
		for _, d := range got {
			retries = append(retries, d.Retry)
			if !bytes.Equal(d.Body, body) {
				t.Errorf("attempt %d: body = %q, want %q", d.Retry, d.Body, body)
			}
			// Cloud Tasks counts only responses other than 5xx as executions.
			if d.Exec < 0 || d.Exec > d.Retry {
				t.Errorf("attempt %d: execution count %d, want 0..%d", d.Retry, d.Exec, d.Retry)
			}
		}
		if diff := cmp.Diff([]int{0, 1, 2}, retries); diff != "" {
			t.Errorf("retry counts of the deliveries (-want +got):\n%s", diff)
		}
	})

	t.Run("ScheduleTimeDelays", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		eta := time.Now().Add(2 * time.Second)
		e.enqueue(t, tasks.Task{Queue: tasks.QueuePoll, Name: "later", Body: []byte(`{}`), ScheduleTime: eta})
		e.enqueue(t, tasks.Task{Queue: tasks.QueuePoll, Name: "now", Body: []byte(`{}`)})
		later := e.poll.waitFor(t, "later", 1)[0]
		now := e.poll.waitFor(t, "now", 1)[0]

		if d := later.ETA.Sub(eta); d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("ETA header %q = %s, want the ScheduleTime %s", later.ETARaw, later.ETA, eta)
		}
		if later.At.Before(later.ETA.Add(-time.Microsecond)) {
			t.Errorf("delivered at %s, before its ETA %s", later.At, later.ETA)
		}
		if now.Seq > later.Seq {
			t.Errorf("the due task was delivered after the one scheduled for later")
		}
	})

	t.Run("QueueIsolation", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		pollBody, issueBody := []byte(`{"q":"poll"}`), []byte(`{"q":"issue"}`)
		// The same name in two queues is two tasks.
		e.enqueue(t, tasks.Task{Queue: tasks.QueuePoll, Name: "iso", Body: pollBody})
		e.enqueue(t, tasks.Task{Queue: tasks.QueueIssue, Name: "iso", Body: issueBody})
		p := e.poll.waitFor(t, "iso", 1)[0]
		i := e.issue.waitFor(t, "iso", 1)[0]
		e.settle(t, tasks.QueuePoll)
		e.settle(t, tasks.QueueIssue)

		if n := len(e.poll.named("iso")); n != 1 {
			t.Errorf("poll target got iso %d times, want once", n)
		}
		if n := len(e.issue.named("iso")); n != 1 {
			t.Errorf("issue target got iso %d times, want once", n)
		}
		if !bytes.Equal(p.Body, pollBody) {
			t.Errorf("poll target body = %q, want %q", p.Body, pollBody)
		}
		if !bytes.Equal(i.Body, issueBody) {
			t.Errorf("issue target body = %q, want %q", i.Body, issueBody)
		}
		if p.Queue == i.Queue {
			t.Errorf("both deliveries name queue %q, want different queue names", p.Queue)
		}
	})

	t.Run("UnknownQueueFails", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		if err := e.enq.Enqueue(t.Context(), tasks.Task{Queue: "no-such-queue", Name: "x", Body: []byte(`{}`)}); err == nil {
			t.Error("Enqueue to an unknown queue: got nil error")
		}
	})
}

// delivery is one request a target received.
type delivery struct {
	Seq         int // order of arrival over both targets of the env
	Method      string
	ContentType string
	Body        []byte
	Name        string // X-CloudTasks-TaskName
	Queue       string // X-CloudTasks-QueueName
	Retry       int    // X-CloudTasks-TaskRetryCount
	Exec        int    // X-CloudTasks-TaskExecutionCount
	ETA         time.Time
	ETARaw      string // X-CloudTasks-TaskETA
	At          time.Time
}

type env struct {
	enq         Enqueuer
	poll, issue *target
	settles     int
}

func (e *env) enqueue(t *testing.T, task tasks.Task) {
	t.Helper()
	if err := e.enq.Enqueue(t.Context(), task); err != nil {
		t.Fatalf("Enqueue(%s/%s): %v", task.Queue, task.Name, err)
	}
}

// settle makes it safe to check that nothing more arrives: it sends a marker
// task due a little later through q and waits for it (anything wrongly created
// before it was due earlier), then waits until a Waiter has nothing pending.
func (e *env) settle(t *testing.T, q tasks.Queue) {
	t.Helper()
	e.settles++
	name := fmt.Sprintf("settle-%d", e.settles)
	e.enqueue(t, tasks.Task{Queue: q, Name: name, Body: []byte(`{}`), ScheduleTime: time.Now().Add(300 * time.Millisecond)})
	tg := e.poll
	if q == tasks.QueueIssue {
		tg = e.issue
	}
	tg.waitFor(t, name, 1)
	if w, ok := e.enq.(Waiter); ok {
		ctx, cancel := context.WithTimeout(t.Context(), patience)
		defer cancel()
		if err := w.Wait(ctx); err != nil {
			t.Fatalf("Wait: %v", err)
		}
	}
}

var seq struct {
	sync.Mutex
	n int
}

type target struct {
	mu      sync.Mutex
	got     []delivery
	changed chan struct{} // closed and replaced on every delivery
	// respond gives the status code for a delivery (default 200).
	respond func(delivery) int
}

func newTarget() *target { return &target{changed: make(chan struct{})} }

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d := delivery{
		Method:      r.Method,
		ContentType: r.Header.Get("Content-Type"),
		Body:        body,
		Name:        r.Header.Get(tasks.HeaderTaskName),
		Queue:       r.Header.Get(tasks.HeaderQueueName),
		Retry:       atoi(r.Header.Get(tasks.HeaderRetryCount)),
		Exec:        atoi(r.Header.Get(tasks.HeaderExecutionCount)),
		ETARaw:      r.Header.Get(tasks.HeaderETA),
		At:          time.Now(),
	}
	d.ETA, _ = ParseETA(d.ETARaw)
	seq.Lock()
	seq.n++
	d.Seq = seq.n
	seq.Unlock()

	tg.mu.Lock()
	tg.got = append(tg.got, d)
	close(tg.changed)
	tg.changed = make(chan struct{})
	respond := tg.respond
	tg.mu.Unlock()

	code := http.StatusOK
	if respond != nil {
		code = respond(d)
	}
	w.WriteHeader(code)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func (tg *target) named(name string) []delivery {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	var out []delivery
	for _, d := range tg.got {
		if d.Name == name {
			out = append(out, d)
		}
	}
	return out
}

func (tg *target) names() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	var out []string
	for _, d := range tg.got {
		out = append(out, d.Name)
	}
	return out
}

// waitFor waits until name was delivered at least n times and returns those deliveries.
func (tg *target) waitFor(t *testing.T, name string, n int) []delivery {
	t.Helper()
	timeout := time.NewTimer(patience)
	defer timeout.Stop()
	for {
		tg.mu.Lock()
		changed := tg.changed
		tg.mu.Unlock()
		if got := tg.named(name); len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("%s delivered %d times after %s, want %d (deliveries: %v)", name, len(tg.named(name)), patience, n, tg.names())
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", name, t.Context().Err())
		}
	}
}

// ParseETA parses an X-CloudTasks-TaskETA value: seconds since the Unix epoch
// with an optional decimal fraction (e.g. "1700000000.123456").
func ParseETA(s string) (time.Time, error) {
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("task ETA %q: %w", s, err)
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		frac += strings.Repeat("0", 9-len(frac))
		if nsec, err = strconv.ParseInt(frac, 10, 64); err != nil || nsec < 0 {
			return time.Time{}, fmt.Errorf("task ETA %q: bad fraction", s)
		}
	}
	return time.Unix(sec, nsec), nil
}
