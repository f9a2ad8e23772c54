package pipeline_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// Regressions found by the fault campaign of issue 11.

// Contention on an issue task's last attempt (the lease of an earlier attempt
// that crashed is still held) is not the process's failure, and must not drop
// the task either: the work goes on in a fresh task, as on the poll queue.
// Found by the campaign's "contention on a last attempt": the last attempt
// answered 503 "another delivery is working", the queue dropped the task and
// only the stale-process sweep resumed the process.
func TestContentionOnTheLastIssueAttemptIsNotAFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		point string
		state progress.State
	}{
		{"issue:before-ca", progress.StateIssuing},
		{"upload:before-upload", progress.StateIssued},
	} {
		t.Run(tc.point, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			task := h.nextIssue()
			h.crashOnce(tc.point)
			if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: 1}); err == nil {
				t.Fatalf("the issue attempt did not crash at %s", tc.point)
			}
			h.p.Crash = nil
			h.clk.advance(time.Second) // the queue's first backoff: the lease is still held
			if rec := h.record(name); rec.State != tc.state || !h.clk.Now().Before(rec.LeaseUntil) {
				t.Fatalf("after the crash: state %s, lease until %s (now %s); want %s and held", rec.State, rec.LeaseUntil, h.clk.Now(), tc.state)
			}
			if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: h.p.MaxAttempts}); err != nil {
				t.Errorf("last attempt returned %v: the queue would drop the task", err)
			}
			if rec := h.record(name); rec.State != tc.state {
				t.Fatalf("state %s after contention on the last attempt, want %s (last error %q)", rec.State, tc.state, rec.LastError)
			}
			if len(h.q.pending) == 0 {
				t.Fatal("no task carries the work on")
			}
			h.drain()
			h.wantUploaded(name)
			h.noViolations()
		})
	}
}

// A process whose claim went through with its answer lost, and which then
// fails before any delivery recorded the claim (every later delivery met a
// 503 on get), is claimed again before setFailure. When the API refuses that
// repeat claim, the process ends CLAIMED_ELSEWHERE: that is our own claim
// refused, and it must be logged at ERROR (pipeline.MsgOwnClaimRefused) as on
// the claim path. Found by the fault campaign (seed 1): the process ended
// CLAIMED_ELSEWHERE with an INFO-level note only.
func TestOwnClaimRefusedBeforeSetFailureIsAnError(t *testing.T) {
	t.Parallel()
	var claims atomic.Int32
	var getFails atomic.Bool
	h := newHarness(t, cpemulator.Options{
		RefuseRepeatClaims: true,
		Fault: func(method, _ string) cpemulator.Fault {
			switch {
			case method == cpemulator.MethodClaim && claims.Add(1) == 1:
				return cpemulator.FaultLostResponse
			case method == cpemulator.MethodGet && getFails.Load():
				return cpemulator.FaultUnavailable
			}
			return cpemulator.NoFault
		},
	})
	logs := &syncBuffer{}
	h.p.Log = slog.New(slog.NewJSONHandler(logs, nil))
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: 1}); err == nil {
		t.Fatal("the lost claim answer was not an error")
	}
	getFails.Store(true)
	for attempt := 2; attempt <= h.p.MaxAttempts; attempt++ {
		h.clk.advance(90 * time.Second) // past the lease
		err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: attempt})
		if attempt < h.p.MaxAttempts && err == nil {
			t.Fatalf("delivery %d succeeded despite the 503 on get", attempt)
		}
	}
	rec := h.record(name)
	if rec.State != progress.StateClaimedElsewhere || h.snap(name).RepeatClaimsRefused != 1 {
		t.Fatalf("state %s, repeat claims refused %d; want CLAIMED_ELSEWHERE after our repeat claim was refused (last error %q)",
			rec.State, h.snap(name).RepeatClaimsRefused, rec.LastError)
	}
	var found bool
	for _, e := range logs.entries(t) {
		if e["msg"] == pipeline.MsgOwnClaimRefused && e["level"] == "ERROR" && e["process_id"] == h.snap(name).ID {
			found = true
		}
	}
	if !found {
		t.Errorf("no ERROR %q naming the process", pipeline.MsgOwnClaimRefused)
	}
}
