package simulation

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// Shape is a poll schedule in two phases, which config.PollSchedule cannot
// express yet: Initial·Multiplier^n capped at Max while less than LateAfter
// has passed since signData, then every LateMax (both ±Jitter). It lets the
// comparison measure a schedule before the pipeline implements it: the run
// moves every poll task to the time the shape gives (the pipeline's own
// NextPollAt is then only a record).
type Shape struct {
	Poll      config.PollSchedule
	LateAfter time.Duration
	LateMax   time.Duration
}

// Delay is the wait before poll n (0-based) when elapsed has passed since
// signData, for a jitter draw j in [0,1).
func (s Shape) Delay(n int, elapsed time.Duration, j float64) time.Duration {
	d := float64(s.Poll.Initial) * math.Pow(s.Poll.Multiplier, float64(n))
	limit := s.Poll.Max
	if s.LateAfter > 0 && elapsed >= s.LateAfter && s.LateMax > 0 {
		limit = s.LateMax
		d = float64(limit)
	}
	if d > float64(limit) {
		d = float64(limit)
	}
	d *= 1 + s.Poll.Jitter*(2*j-1)
	return time.Duration(d)
}

// PollsUntil is the number of operations.get calls a client that never signs
// costs until deadline, without jitter (its mean).
func (s Shape) PollsUntil(deadline time.Duration) int {
	var t time.Duration
	n := 0
	for {
		t += s.Delay(n, t, 0.5)
		if t >= deadline || n > 10_000_000 {
			return n
		}
		n++
	}
}

// shapedQueue moves poll tasks to the times a Shape gives.
type shapedQueue struct {
	next  pipeline.Enqueuer
	store *memory.Store
	shape Shape
	sched config.PollSchedule
	rng   *lockedRand
}

func (q *shapedQueue) Enqueue(ctx context.Context, t tasks.Task) error {
	if t.Queue == tasks.QueuePoll {
		var tb pipeline.TaskBody
		if json.Unmarshal(t.Body, &tb) == nil {
			if rec, err := q.store.Peek(ctx, tb.Key); err == nil && !rec.Deadline.IsZero() {
				now := time.Now()
				start := rec.Deadline.Add(-q.sched.Deadline)
				at := now.Add(q.shape.Delay(tb.Poll, now.Sub(start), q.rng.Float64()))
				if at.After(rec.Deadline) {
					at = rec.Deadline
				}
				t.ScheduleTime = at
			}
		}
	}
	return q.next.Enqueue(ctx, t)
}
