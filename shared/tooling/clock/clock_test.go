package clock_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// record collects, in order, what the timers saw.
type record struct {
	mu   sync.Mutex
	seen []string
	done chan struct{}
	n    int
}

func newRecord(n int) *record { return &record{done: make(chan struct{}), n: n} }

func (r *record) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, s)
	if len(r.seen) == r.n {
		close(r.done)
	}
}

func (r *record) wait(t *testing.T) []string {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the timers did not all run: the clock did not move")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func since(v *clock.Virtual) string { return v.Now().Sub(start).String() }

func TestVirtualRunsTimersInOrderAtTheirTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		quantum time.Duration
		after   []time.Duration
		want    []string
	}{
		{"one by one", 0, []time.Duration{time.Hour, time.Second, 24 * time.Hour, 0},
			[]string{"0s@0s", "1s@1s", "1h0m0s@1h0m0s", "24h0m0s@24h0m0s"}},
		{"equal times keep their order", 0, []time.Duration{time.Minute, time.Minute},
			[]string{"1m0s@1m0s", "1m0s@1m0s"}},
		// Within a quantum the timers run together, at the last one's time.
		{"within a quantum", time.Second, []time.Duration{time.Minute, time.Minute + 500*time.Millisecond, time.Hour},
			[]string{"1m0.5s@1m0.5s", "1m0s@1m0.5s", "1h0m0s@1h0m0s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := clock.NewVirtual(start)
			v.Quantum = tc.quantum
			defer v.Stop()
			r := newRecord(len(tc.after))
			// Holding the clock while the timers are set: none runs early.
			release := v.Hold()
			for _, d := range tc.after {
				v.AfterFunc(d, func() {
					// Timers of one step run concurrently: a timer
					// waits for the earlier ones of its step.
					r.add(d.String() + "@" + since(v))
				})
				time.Sleep(time.Millisecond)
			}
			if got := v.Now(); !got.Equal(start) {
				t.Errorf("the clock moved to %v while held", got)
			}
			release()
			got := r.wait(t)
			if tc.quantum > 0 {
				// The first two ran together, in either order.
				slices.Sort(got[:min(2, len(got))])
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("timers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVirtualSleepReleasesTheHold(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(start)
	defer v.Stop()
	r := newRecord(2)
	// Both sleepers hold the clock (Go); each Sleep lets it move.
	for _, d := range []time.Duration{2 * time.Hour, time.Hour} {
		v.Go(func() {
			if err := v.Sleep(context.Background(), d); err != nil {
				t.Errorf("sleep %s: %v", d, err)
			}
			r.add(d.String() + "@" + since(v))
		})
	}
	if diff := cmp.Diff([]string{"1h0m0s@1h0m0s", "2h0m0s@2h0m0s"}, r.wait(t)); diff != "" {
		t.Errorf("woke (-want +got):\n%s", diff)
	}
}

func TestVirtualSleepEndsWithItsContext(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(start)
	defer v.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	other := v.Hold() // nothing moves the clock
	v.Go(func() { errc <- v.Sleep(ctx, time.Hour) })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("sleep: %v, want context.Canceled", err)
	}
	if got := v.Now(); !got.Equal(start) {
		t.Errorf("clock at %v, want it unmoved", got)
	}
	other()
}

func TestVirtualStoppedTimerDoesNotRun(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(start)
	defer v.Stop()
	r := newRecord(1)
	release := v.Hold()
	stopped := v.AfterFunc(time.Minute, func() { r.add("stopped timer ran") })
	v.AfterFunc(time.Hour, func() { r.add("kept@" + since(v)) })
	if !stopped.Stop() {
		t.Error("Stop of a pending timer: false")
	}
	if stopped.Stop() {
		t.Error("second Stop: true")
	}
	release()
	if diff := cmp.Diff([]string{"kept@1h0m0s"}, r.wait(t)); diff != "" {
		t.Errorf("timers (-want +got):\n%s", diff)
	}
}

func TestRealClock(t *testing.T) {
	t.Parallel()
	var c clock.Clock = clock.Real{}
	before := time.Now()
	if err := c.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if c.Now().Before(before.Add(time.Millisecond)) {
		t.Error("Sleep returned early")
	}
	ran := make(chan struct{})
	c.AfterFunc(0, func() { close(ran) })
	<-ran
	c.Hold()()
}
