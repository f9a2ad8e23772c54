package embedded_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
	"github.com/chromeos-certprov/adapter/shared/tooling/tasks/embedded"
)

// A queue with a rate dispatches its due tasks one interval apart, as Cloud
// Tasks' maxDispatchesPerSecond does, while a queue without one is not held
// back by it; a retry waits for a slot too.
func TestQueueRate(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := clock.NewVirtual(start)
	defer v.Stop()
	var mu sync.Mutex
	got := map[tasks.Queue][]string{}
	failed := false
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		q := tasks.Queue(r.Header.Get(tasks.HeaderQueueName))
		got[q] = append(got[q], r.Header.Get(tasks.HeaderTaskName)+"@"+v.Now().Sub(start).String())
		if r.Header.Get(tasks.HeaderTaskName) == "c1" && !failed {
			failed = true
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: h, tasks.QueueClaim: h}, embedded.Options{
		MinBackoff: 100 * time.Millisecond, Clock: v, Rates: map[tasks.Queue]float64{tasks.QueueClaim: 2},
	})
	release := v.Hold()
	for i := range 4 {
		for _, q := range []tasks.Queue{tasks.QueueClaim, tasks.QueuePoll} {
			if err := d.Enqueue(context.Background(), tasks.Task{Queue: q, Name: fmt.Sprintf("%c%d", q[0], i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	want := map[tasks.Queue][]string{
		tasks.QueuePoll:  {"p0@0s", "p1@0s", "p2@0s", "p3@0s"},
		tasks.QueueClaim: {"c0@0s", "c1@500ms", "c2@1s", "c3@1.5s", "c1@2s"},
	}
	// The unlimited queue delivers all four at once, in any order; the
	// claim queue's order is its rate's.
	slices.Sort(got[tasks.QueuePoll])
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
}
