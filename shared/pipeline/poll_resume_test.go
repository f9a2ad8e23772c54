package pipeline_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// Invariant 3: when signData's answer was lost and the first poll task (not
// a Pub/Sub redelivery) finds the record in SIGNING, it learns from the
// process that signData started and then goes on polling itself: the next
// poll it would enqueue has its own name, so nobody else would.
func TestFirstPollResumesSigning(t *testing.T) {
	t.Parallel()
	var once sync.Once
	h := newHarness(t, cpemulator.Options{Fault: func(method, _ string) cpemulator.Fault {
		f := cpemulator.NoFault
		if method == cpemulator.MethodSignData {
			once.Do(func() { f = cpemulator.FaultLostResponse })
		}
		return f
	}})
	name, note := h.add(cpemulator.ClientSpec{SignDelay: 5 * time.Second})
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note}); err == nil {
		t.Fatal("Claim with a lost signData answer returned nil; want an error")
	}
	// No redelivery of the notification: only the poll task carries on.
	h.drain()
	h.wantUploaded(name)
	if s := h.snap(name); s.SignDataRequests != 1 {
		t.Errorf("signData requests %d, want 1", s.SignDataRequests)
	}
	h.noViolations()
}

// gatedStore holds the record updates of the deliveries whose context is
// marked until release is closed.
type gatedStore struct {
	pipeline.Store
	release chan struct{}
}

type heldKey struct{}

func (g *gatedStore) Update(ctx context.Context, key string, fn func(r *progress.Record) error) (*progress.Record, error) {
	if ctx.Value(heldKey{}) != nil {
		<-g.release
	}
	return g.Store.Update(ctx, key, fn)
}

// Invariant 3: a poll task delivered twice at once, where the delivery that
// advances the record dies before enqueuing what comes next (the issue task,
// or the next poll) and the other one finds the record moved on and
// answers 2xx, so the queue drops the task: the other one must make sure
// the next task exists.
func TestDuplicatePollWhoseWinnerCrashes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		point string
		delay time.Duration // when the client signs: before the first poll, or after it
	}{
		{"poll:after-signed", 0},
		{"poll:after-advance", 10 * time.Second},
	} {
		t.Run(tc.point, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			g := &gatedStore{Store: h.store, release: make(chan struct{})}
			h.p.Store = g
			if tc.point == "poll:after-advance" {
				// A poll that finds the operation not done writes the
				// record only at a checkpoint: make the first poll one.
				h.p.SweepAfter = time.Second
			}
			name, note := h.add(cpemulator.ClientSpec{SignDelay: tc.delay})
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			task, ok := h.q.next()
			if !ok {
				t.Fatal("no poll task")
			}
			h.clk.advanceTo(task.ScheduleTime)
			var crashed sync.Once
			h.p.Crash = func(_ context.Context, _, at string) error {
				if at != tc.point {
					return nil
				}
				hit := false
				crashed.Do(func() { hit = true; close(g.release) })
				if hit {
					return errCrash
				}
				return nil
			}
			var wg sync.WaitGroup
			var winner, other error
			wg.Add(2)
			go func() {
				defer wg.Done()
				winner = h.p.Poll(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: 1})
			}()
			go func() {
				defer wg.Done()
				other = h.p.Poll(context.WithValue(context.Background(), heldKey{}, true), pipeline.Delivery{Body: task.Body, Attempt: 1})
			}()
			wg.Wait()
			if tc.point == "poll:after-signed" && pipeline.IsCrash(other) && winner == nil {
				// The poll that finds the signature writes nothing (its
				// issue task carries it), so no store gate orders the two:
				// either may be the one that dies.
				winner, other = other, winner
			}
			if !pipeline.IsCrash(winner) || other != nil {
				t.Fatalf("deliveries returned %v and %v; want the crash and nil (the queue then drops the task)", winner, other)
			}
			h.p.Crash = nil
			h.p.Store = h.store
			h.drain()
			h.wantUploaded(name)
			h.noViolations()
		})
	}
}

// A poll task whose chain of polls is ahead of its record (the polls that
// found nothing wrote nothing) and whose operations.get fails on its last
// attempt carries on through the record, under a poll number the chain has
// not used: a name used before would be a no-op and end the polls.
func TestLastAttemptOfAChainAheadOfItsRecord(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	h := newHarness(t, cpemulator.Options{Fault: faultWhile(cpemulator.MethodOperationsGet, cpemulator.FaultUnavailable, &down)})
	name, note := h.add(cpemulator.ClientSpec{SignDelay: 2 * time.Minute})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	for range 4 { // polls that find nothing: the record stays at poll 0
		task, ok := h.q.next()
		if !ok {
			t.Fatal("no poll task")
		}
		h.clk.advanceTo(task.ScheduleTime)
		if err := h.deliver(task, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.record(name).PollCount; n != 0 {
		t.Fatalf("the record counts %d polls; polls that find nothing should not write it", n)
	}
	task, ok := h.q.next()
	if !ok {
		t.Fatal("no poll task")
	}
	h.clk.advanceTo(task.ScheduleTime)
	down.Store(true)
	if err := h.deliver(task, h.p.MaxAttempts); err != nil {
		t.Fatalf("last attempt: %v", err)
	}
	down.Store(false)
	h.drain()
	h.wantUploaded(name)
	h.noViolations()
}
