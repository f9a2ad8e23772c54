package embedded_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
	"github.com/chromeos-certprov/adapter/shared/tooling/tasks/embedded"
)

// On a virtual clock the dispatcher delivers at the tasks' schedule times and
// backs off in clock time, without waiting for them: a task an hour ahead
// that fails twice with a ten-minute backoff is done at once.
func TestVirtualClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := clock.NewVirtual(start)
	defer v.Stop()
	var mu sync.Mutex
	var got []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Header.Get(tasks.HeaderTaskName)+" retry "+r.Header.Get(tasks.HeaderRetryCount)+" at +"+v.Now().Sub(start).String())
		if r.Header.Get(tasks.HeaderTaskName) == "later" && len(got) < 4 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	d := newDispatcher(t, map[tasks.Queue]http.Handler{tasks.QueuePoll: h}, embedded.Options{
		MinBackoff: 10 * time.Minute, MaxBackoff: time.Hour, Clock: v,
	})
	release := v.Hold() // no task runs before both are enqueued
	for _, tk := range []tasks.Task{
		{Queue: tasks.QueuePoll, Name: "later", ScheduleTime: start.Add(time.Hour)},
		{Queue: tasks.QueuePoll, Name: "now"},
	} {
		if err := d.Enqueue(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
	}
	release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	want := []string{"now retry 0 at +0s", "later retry 0 at +1h0m0s", "later retry 1 at +1h10m0s", "later retry 2 at +1h30m0s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
}
