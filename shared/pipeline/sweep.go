package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// SweepResult counts what one sweep did.
type SweepResult struct {
	// Found is how many idle records the query returned.
	Found int `json:"found"`
	// Redriven records got a fresh task for their state.
	Redriven int `json:"redriven"`
	// Failed records were still idle after MaxRedrives re-drives: they were
	// moved to FAILING and a task reports the failure to the device.
	Failed int `json:"failed"`
	// Unreported records were still idle in FAILING after that: setFailure
	// has not gone through. They stay FAILING and are re-driven at every
	// sweep until the device is told, with an ERROR log each time (counted in
	// Redriven too).
	Unreported int `json:"unreported"`
	// Moved records were updated by someone else since the query.
	Moved int `json:"moved"`
	// Errors counts records the sweep could not act on (the next sweep tries again).
	Errors int `json:"errors"`
	// Deferred records were left to the next sweep because this one ran
	// out of time (its request's deadline was near).
	Deferred int `json:"deferred,omitempty"`
}

const (
	// MaxRedrives is how many times the sweep re-drives one idle process
	// before it fails it.
	MaxRedrives = 3
	// sweepLimit bounds the records one sweep handles; the next sweep takes
	// the rest (oldest first).
	sweepLimit = 200
	// sweepMargin is the time a sweep keeps in hand before its request's
	// deadline: one record's store update and enqueue, with room to spare.
	sweepMargin = 5 * time.Second
)

// errMoved aborts a sweep's update: the record moved since the query.
var errMoved = errors.New("record moved since the sweep's query")

// Sweep finds the processes whose record has not changed for p.SweepAfter
// while not finished, and hands each back to the pipeline: every hand-off is a
// task, and a task whose attempts all failed (a store or API outage longer
// than the queue's retries, a crash on the last attempt, a bad release) is
// dropped by the queue with nothing left to resume its process. A live
// process is never idle that long: its record changes at every poll.
//
// A re-drive is a task with a fresh name, to the queue of the record's state:
// PollSignature for RECEIVED to POLLING, IssueCertificate for SIGNED to
// FAILING; every step is safe to run twice. After MaxRedrives re-drives the
// process is failed (setFailure through a task); a process that then stays
// in FAILING is re-driven at every sweep with an ERROR log: a record ends
// FAILED only once its device was told (invariant 7).
//
// The sweep is triggered by a scheduler (terraform: sweep.tf) posting to
// PollSignature's /sweep path (shared/adapter routes it here). It returns an
// error only when it could not list the records.
func (p *Pipeline) Sweep(ctx context.Context) (SweepResult, error) {
	p.init()
	var res SweepResult
	log := p.logger(ctx)
	if p.SweepAfter <= 0 {
		log.Info("sweep requested but disabled (SWEEP_AFTER=0)")
		return res, nil
	}
	if p.SweepBudget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.SweepBudget)
		defer cancel()
	}
	now := p.Now().UTC()
	before := now.Add(-p.SweepAfter)
	recs, err := p.Store.Stale(ctx, nonTerminal, before, sweepLimit)
	if err != nil {
		return res, fmt.Errorf("sweep: list records idle since %s: %w", before.Format(time.RFC3339), err)
	}
	res.Found = len(recs)
	for i, rec := range recs {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < sweepMargin {
			// Stop cleanly rather than be cut off mid-record: the records
			// left are still idle, so the next sweep takes them first.
			res.Deferred = len(recs) - i
			log.Info("sweep stopped before its deadline; the next sweep takes the rest", slog.Int("deferred", res.Deferred))
			break
		}
		if err := p.sweepOne(ctx, rec, now, before, &res); err != nil {
			res.Errors++
			log.Warn("sweep could not act on a process; the next sweep tries again",
				slog.String("process_id", rec.ProcessID), slog.String("customer", rec.Customer), slog.String("reason", err.Error()))
		}
	}
	log.Info("sweep finished", slog.Int("found", res.Found), slog.Int("redriven", res.Redriven), slog.Int("failed", res.Failed),
		slog.Int("unreported", res.Unreported), slog.Int("moved", res.Moved), slog.Int("errors", res.Errors), slog.Int("deferred", res.Deferred),
		slog.Int64("idle_after_ms", p.SweepAfter.Milliseconds()))
	return res, nil
}

func (p *Pipeline) sweepOne(ctx context.Context, rec *progress.Record, now, before time.Time, res *SweepResult) error {
	_, _, err := p.redriveIdle(ctx, rec.Customer, rec.ProcessID, rec.Key, now, func(r *progress.Record) error {
		if r.State.Terminal() || !r.UpdatedAt.Before(before) {
			return errMoved
		}
		return nil
	}, "stale process re-driven", res)
	return err
}

// redriveIdle is one re-drive of the sweep: if admit lets the record in (an
// error from it is returned as it is, or counted as Moved when it is
// errMoved), it counts the re-drive in Sweeps and hands the process back to
// the pipeline with a fresh task, or fails it once its re-drives are used
// up. It returns the record as it left it and the task it enqueued (none
// when the record moved).
func (p *Pipeline) redriveIdle(ctx context.Context, customer, processID, key string, now time.Time, admit func(r *progress.Record) error, msg string, res *SweepResult) (*progress.Record, tasks.Task, error) {
	ctx = withProcess(ctx, p.logger(ctx), customer, processID)
	var idle time.Duration
	cur, err := p.Store.Update(ctx, key, func(r *progress.Record) error {
		if err := admit(r); err != nil {
			return err
		}
		idle = now.Sub(r.UpdatedAt)
		r.Sweeps++
		r.UpdatedAt = now
		return nil
	})
	if errors.Is(err, errMoved) {
		res.Moved++
		return nil, tasks.Task{}, nil
	}
	if err != nil {
		return nil, tasks.Task{}, fmt.Errorf("sweep %s: mark the record: %w", key, err)
	}
	switch {
	case cur.Sweeps <= MaxRedrives || cur.State == progress.StateFailing:
		// A failure not yet reported is never ended here (invariant 7):
		// it is re-driven at every sweep until the device was told, and
		// said loudly once its re-drives are used up.
		t, err := p.redrive(ctx, cur)
		if err != nil {
			return nil, tasks.Task{}, err
		}
		res.Redriven++
		attrs := []any{slog.String("state", string(cur.State)), slog.Int("sweeps", cur.Sweeps),
			slog.Int64("idle_ms", idle.Milliseconds()), slog.String("last_error", cur.LastError)}
		if cur.Sweeps > MaxRedrives {
			res.Unreported++
			p.logger(ctx).Error(MsgFailureUnreported, append(attrs, slog.String("failure_message", cur.FailureMessage))...)
			return cur, t, nil
		}
		p.logger(ctx).Warn(msg, attrs...)
		return cur, t, nil
	default:
		// Failed here, reported by a task: its retries carry setFailure
		// through a short outage, and later sweeps re-drive it until then.
		reason := fmt.Sprintf("no progress in state %s for %s after %d re-drives by the sweep (last error: %s)",
			cur.State, idle.Round(time.Second), cur.Sweeps-1, cur.LastError)
		next, err := p.markFailing(ctx, cur, reason,
			"The adapter could not finish this enrollment. The device will try again later; if this persists, contact your administrator.")
		if err != nil {
			return nil, tasks.Task{}, fmt.Errorf("sweep %s: fail the process: %w", cur.Key, err)
		}
		if next.State.Terminal() {
			res.Moved++
			return next, tasks.Task{}, nil
		}
		t, err := p.redrive(ctx, next)
		if err != nil {
			return nil, tasks.Task{}, err
		}
		res.Failed++
		return next, t, nil
	}
}

// redrive enqueues, under a name no earlier task used, the task that resumes
// r from its state, and returns it.
func (p *Pipeline) redrive(ctx context.Context, r *progress.Record) (tasks.Task, error) {
	t := resumeTask(r, fmt.Sprintf("sweep-%s-%d", taskID(r.Key), r.Sweeps), time.Time{})
	if err := p.Tasks.Enqueue(ctx, t); err != nil {
		return tasks.Task{}, fmt.Errorf("sweep %s: enqueue a %s task: %w", r.Key, t.Queue, err)
	}
	return t, nil
}

// resumeTask is a task named name, due at at, that resumes r from its state:
// PollSignature for RECEIVED to POLLING, IssueCertificate for SIGNED to
// FAILING. The sweep, the hand-offs of a last attempt and the failure
// reports all resume a record this way.
func resumeTask(r *progress.Record, name string, at time.Time) tasks.Task {
	switch r.State {
	case progress.StateReceived, progress.StateClaimed, progress.StateSigning, progress.StatePolling:
		body, _ := json.Marshal(TaskBody{Key: r.Key, Poll: r.PollCount})
		return tasks.Task{Queue: tasks.QueuePoll, Name: name, Body: body, ScheduleTime: at}
	default:
		body, _ := json.Marshal(TaskBody{Key: r.Key, Attempt: r.IssueAttempts})
		return tasks.Task{Queue: tasks.QueueIssue, Name: name, Body: body, ScheduleTime: at}
	}
}
