package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// TestRetryResumesStrandedProcesses strands a process where a dropped task
// leaves nothing to resume it, and checks that one operator retry finishes
// it as a sweep would: one task, one signData, one certificate.
func TestRetryResumesStrandedProcesses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		strand func(h *harness, note []byte)
		state  progress.State
		queue  tasks.Queue
	}{
		{"poll task dropped while polling", func(h *harness, note []byte) {
			if err := h.claim(note, 1); err != nil {
				h.t.Fatal(err)
			}
			h.q.drop()
		}, progress.StatePolling, tasks.QueuePoll},
		{"crash after signData, then the first poll task dropped", func(h *harness, note []byte) {
			h.crashClaim("sign:after-signData", note)
			h.q.drop()
		}, progress.StateReceived, tasks.QueuePoll},
		{"issue task dropped (it carried the signature: the record is still POLLING)", func(h *harness, note []byte) {
			if err := h.claim(note, 1); err != nil {
				h.t.Fatal(err)
			}
			h.nextIssue()
		}, progress.StatePolling, tasks.QueuePoll},
		{"crash before the upload, then the issue task dropped", func(h *harness, note []byte) {
			if err := h.claim(note, 1); err != nil {
				h.t.Fatal(err)
			}
			task := h.nextIssue()
			h.crashOnce("upload:before-upload")
			if err := h.deliver(task, 1); err == nil {
				h.t.Fatal("issue did not crash")
			}
		}, progress.StateIssued, tasks.QueueIssue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			name, note := h.add(cpemulator.ClientSpec{SignDelay: 5 * time.Second})
			tc.strand(h, note)
			h.p.Crash = nil
			h.drain()
			if got := h.record(name).State; got != tc.state {
				t.Fatalf("stranded in %s, want %s", got, tc.state)
			}
			h.clk.advance(2 * time.Minute) // past the lease and the poll that never came
			rec, task, err := h.p.Retry(context.Background(), h.key(name))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Sweeps != 1 || rec.State != tc.state || task.Queue != tc.queue || !strings.HasPrefix(task.Name, "sweep-") {
				t.Errorf("after retry: sweeps %d, state %s, task %s/%s; want 1, %s, a %s task named sweep-*", rec.Sweeps, rec.State, task.Queue, task.Name, tc.state, tc.queue)
			}
			if n := len(h.q.pending); n != 1 {
				t.Errorf("%d tasks pending after the retry, want 1", n)
			}
			h.drain()
			h.wantUploaded(name)
			if got := h.ca.Issued(); got != 1 {
				t.Errorf("the CA issued %d certificates, want 1", got)
			}
			if rec := h.record(name); rec.SignDataCalls != 1 {
				t.Errorf("record counts %d signData calls, want 1", rec.SignDataCalls)
			}
			h.noViolations()
		})
	}
}

// TestRetryRefuses: where a re-drive cannot help, Retry says why and
// changes nothing.
func TestRetryRefuses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	done, note := h.add(cpemulator.ClientSpec{})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	h.wantUploaded(done)

	// An issue delivery holds the lease while the CA answers.
	leased, note := h.add(cpemulator.ClientSpec{})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	issue := h.nextIssue()
	var inCA atomic.Bool
	h.p.Crash = func(_ context.Context, key, point string) error {
		if point == "issue:after-ca" && key == h.key(leased) && !inCA.Load() {
			inCA.Store(true)
			return errCrash
		}
		return nil
	}
	if err := h.deliver(issue, 1); err == nil {
		t.Fatal("issue did not crash")
	}
	h.p.Crash = nil
	// Claimed last: its first poll is still to come (polls that find
	// nothing do not write the record, so its next poll time is the first).
	polling, note := h.add(cpemulator.ClientSpec{Behaviour: cpemulator.Silent})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, process, want string
	}{
		{"uploaded", done, "the certificate was uploaded"},
		{"poll scheduled", polling, "its next poll is due at"},
		{"lease held", leased, "is acting on the process until"},
	} {
		before := h.record(tc.process)
		_, _, err := h.p.Retry(context.Background(), h.key(tc.process))
		var refused *pipeline.ActionRefusedError
		if !errors.As(err, &refused) || !strings.Contains(refused.Reason, tc.want) {
			t.Errorf("%s: retry error %v, want a refusal saying %q", tc.name, err, tc.want)
		}
		if after := h.record(tc.process); after.Version != before.Version {
			t.Errorf("%s: a refused retry wrote the record", tc.name)
		}
	}
	if _, _, err := h.p.Retry(context.Background(), customer+":no-such-process"); !errors.Is(err, progress.ErrNotFound) {
		t.Errorf("retry of an unknown process: %v, want ErrNotFound", err)
	}
}

// TestRetryCountsAgainstTheSweep: a retry is one of the sweep's MaxRedrives
// re-drives; once they are used up a retry refuses (the sweep fails the
// process next), while a failure waiting to be reported is always re-driven.
func TestRetryCountsAgainstTheSweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, note := h.add(cpemulator.ClientSpec{SignDelay: time.Hour})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= pipeline.MaxRedrives; i++ {
		h.q.drop()
		h.clk.advanceTo(h.record(name).NextPollAt.Add(time.Second))
		if _, _, err := h.p.Retry(context.Background(), h.key(name)); err != nil {
			t.Fatalf("retry %d: %v", i, err)
		}
	}
	h.q.drop()
	h.clk.advanceTo(h.record(name).NextPollAt.Add(time.Second))
	_, _, err := h.p.Retry(context.Background(), h.key(name))
	var refused *pipeline.ActionRefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "re-driven 3 times already") {
		t.Fatalf("retry after %d re-drives: %v, want a refusal", pipeline.MaxRedrives, err)
	}
	if _, err := h.p.Fail(context.Background(), h.key(name), "Stopped by your administrator."); err != nil {
		t.Fatal(err)
	}
	h.wantFailed(name, "Stopped by your administrator.")
}

// TestFail fails a process on purpose through setFailure: FAILED only once
// the API took it; a setFailure that does not go through leaves the record
// FAILING with a fresh task to report it.
func TestFail(t *testing.T) {
	t.Parallel()
	const msg = "Your administrator stopped this request. Restart the device to try again."
	t.Run("reported", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, cpemulator.Options{})
		name, note := h.add(cpemulator.ClientSpec{Behaviour: cpemulator.Silent})
		if err := h.claim(note, 1); err != nil {
			t.Fatal(err)
		}
		rec, err := h.p.Fail(context.Background(), h.key(name), "  "+msg+"\n")
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != progress.StateFailed || !rec.FailureReported || rec.FailureMessage != msg || rec.LastError != pipeline.OperatorReason {
			t.Errorf("record %s reported %t message %q reason %q", rec.State, rec.FailureReported, rec.FailureMessage, rec.LastError)
		}
		h.wantFailed(name, msg)
		if s := h.snap(name); s.SetFailureCalls != 1 || s.FailureMessage != msg {
			t.Errorf("setFailure calls %d with %q, want 1 with %q", s.SetFailureCalls, s.FailureMessage, msg)
		}
		// Failing it again is refused: it is finished.
		_, err = h.p.Fail(context.Background(), h.key(name), msg)
		var refused *pipeline.ActionRefusedError
		if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "failed already") {
			t.Errorf("second fail: %v, want a refusal", err)
		}
	})
	t.Run("setFailure unavailable", func(t *testing.T) {
		t.Parallel()
		var down atomic.Bool
		down.Store(true)
		h := newHarness(t, cpemulator.Options{Fault: func(method, _ string) cpemulator.Fault {
			if method == cpemulator.MethodSetFailure && down.Load() {
				return cpemulator.FaultUnavailable
			}
			return cpemulator.NoFault
		}})
		name, note := h.add(cpemulator.ClientSpec{Behaviour: cpemulator.Silent})
		if err := h.claim(note, 1); err != nil {
			t.Fatal(err)
		}
		h.q.drop()
		rec, err := h.p.Fail(context.Background(), h.key(name), msg)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != progress.StateFailing || rec.FailureReported || rec.ReportHandoffs != 1 {
			t.Fatalf("record %s reported %t hand-offs %d; want FAILING, not reported, 1 hand-off", rec.State, rec.FailureReported, rec.ReportHandoffs)
		}
		if n := len(h.q.pending); n != 1 {
			t.Fatalf("%d tasks pending, want the report's", n)
		}
		// A second fail is refused: the failure is decided, its report pending.
		_, err = h.p.Fail(context.Background(), h.key(name), "another message")
		var refused *pipeline.ActionRefusedError
		if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "failing already") {
			t.Errorf("fail of a failing process: %v, want a refusal", err)
		}
		down.Store(false)
		h.drain()
		h.wantFailed(name, msg)
	})
	t.Run("empty message", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, cpemulator.Options{})
		if _, err := h.p.Fail(context.Background(), customer+":p", " "); err == nil {
			t.Error("fail with an empty message: no error")
		}
	})
}
