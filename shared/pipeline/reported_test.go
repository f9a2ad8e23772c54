package pipeline_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// Regressions of issue 11: every failure reaches the device, and contention
// or a transient answer never strands or fails a process.

// faultWhile injects fault on every call of method while on() is true.
func faultWhile(method string, fault cpemulator.Fault, on *atomic.Bool) func(string, string) cpemulator.Fault {
	return func(m, _ string) cpemulator.Fault {
		if m == method && on.Load() {
			return fault
		}
		return cpemulator.NoFault
	}
}

// A transient API answer while claiming frees the claim lease: the next
// delivery acts at once instead of answering "busy" for the whole lease.
func TestTransientClaimErrorFreesTheLease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, name string
		fault        cpemulator.Fault
	}{
		{cpemulator.MethodGet, "503", cpemulator.FaultUnavailable},
		{cpemulator.MethodGet, "429", cpemulator.FaultResourceExhausted},
		{cpemulator.MethodClaim, "503", cpemulator.FaultUnavailable},
		{cpemulator.MethodClaim, "429", cpemulator.FaultResourceExhausted},
		{cpemulator.MethodSignData, "503", cpemulator.FaultUnavailable},
		{cpemulator.MethodSignData, "429", cpemulator.FaultResourceExhausted},
	} {
		t.Run(tc.method+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{Fault: faultOnce(tc.method, tc.fault)})
			name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
			if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note}); err == nil {
				t.Fatalf("the first delivery succeeded despite a %s on %s", tc.name, tc.method)
			}
			if rec := h.record(name); !rec.LeaseUntil.IsZero() {
				t.Errorf("after a failed %s the lease is held until %s (now %s)", tc.method, rec.LeaseUntil, h.clk.Now())
			}
			// Pub/Sub redelivers after its minimum backoff (10 s), well
			// inside the lease (a minute here).
			h.clk.advance(10 * time.Second)
			if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note}); err != nil {
				t.Fatalf("redelivery: %v", err)
			}
			if tc.method == cpemulator.MethodSignData {
				// The first poll task resumes the SIGNING record.
				task, ok := h.q.next()
				if !ok || task.Queue != tasks.QueuePoll {
					t.Fatal("no poll task")
				}
				h.clk.advanceTo(task.ScheduleTime)
				if err := h.p.Poll(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: 1}); err != nil {
					t.Fatalf("first poll: %v", err)
				}
			}
			if st := h.record(name).State; st != progress.StatePolling {
				t.Errorf("state %s after the retry, want POLLING", st)
			}
			h.drain()
			h.wantUploaded(name)
			h.noViolations()
		})
	}
}

// Contention on a poll task's last attempt ("another delivery holds the
// lease") is not the process's failure: the work goes on in a fresh task.
func TestContentionOnTheLastPollAttemptIsNotAFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	// The delivery dies right before signData: its lease stays until it
	// expires, as after a real crash.
	h.crashClaim("sign:before-signData", note)
	h.p.Crash = nil
	// Pub/Sub delivers the notification again: it finds the record created
	// with the signing intent, leased, and enqueues the poll task that
	// resumes it once the lease has passed.
	if err := h.claim(note, 2); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	task, ok := h.q.next()
	if !ok || task.Queue != tasks.QueuePoll {
		t.Fatal("no poll task")
	}
	if lease := h.record(name).LeaseUntil; task.ScheduleTime.Before(lease) {
		t.Errorf("the poll task is due at %s, before the lease passes at %s", task.ScheduleTime, lease)
	}
	// Its last attempt comes while the lease still holds (the queue
	// dispatched it early, as a retry or a duplicate can).
	if now, lease := h.clk.Now(), h.record(name).LeaseUntil; !now.Before(lease) {
		t.Fatalf("the lease (%s) is not held at %s", lease, now)
	}
	if err := h.p.Poll(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: h.p.MaxAttempts}); err != nil {
		t.Errorf("last attempt returned %v: the queue would drop the task", err)
	}
	if rec := h.record(name); rec.State != progress.StateReceived || len(rec.SignData) == 0 {
		t.Fatalf("state %s after contention on the last attempt, want RECEIVED with the signing intent (last error %q)", rec.State, rec.LastError)
	}
	if len(h.q.pending) == 0 {
		t.Fatal("no task carries the work on")
	}
	h.drain()
	h.wantUploaded(name)
	h.noViolations()
}

// A failure whose setFailure cannot get through stays FAILING and is
// retried by a fresh task: the record is FAILED only once the device was told.
func TestUnreportedFailureStaysFailing(t *testing.T) {
	t.Parallel()
	for name, fault := range map[string]cpemulator.Fault{"503": cpemulator.FaultUnavailable, "429": cpemulator.FaultResourceExhausted} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var down atomic.Bool
			down.Store(true)
			h := newHarness(t, cpemulator.Options{Fault: faultWhile(cpemulator.MethodSetFailure, fault, &down)})
			name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, Behaviour: cpemulator.Silent})
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			task, ok := h.q.next()
			if !ok {
				t.Fatal("no poll task")
			}
			h.clk.advance(2 * time.Hour) // past the poll deadline
			if err := h.p.Poll(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: h.p.MaxAttempts}); err != nil {
				t.Errorf("last attempt returned %v", err)
			}
			rec := h.record(name)
			if rec.State != progress.StateFailing {
				t.Fatalf("state %s reported %v after a lost setFailure, want FAILING (last error %q)", rec.State, rec.FailureReported, rec.LastError)
			}
			// Every fresh task fails too while setFailure is down: the
			// chain is bounded and the record stays FAILING for the sweep.
			h.drain()
			if rec := h.record(name); rec.State != progress.StateFailing {
				t.Fatalf("state %s while setFailure is down, want FAILING", rec.State)
			}
			down.Store(false)
			h.p.SweepAfter = sweepAfter
			h.sweep()
			h.drain()
			h.wantFailed(name, "did not answer")
			if s := h.snap(name); s.SetFailureCalls != 1 {
				t.Errorf("setFailure accepted %d times, want 1", s.SetFailureCalls)
			}
			h.noViolations()
		})
	}
}

// The device message is cut on a rune boundary.
func TestDeviceMessageIsValidUTF8(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	ref := "x" + strings.Repeat("é", 400) // the cut at 497 bytes falls inside a rune
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, ProfileRef: ref})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	s := h.snap(name)
	if s.FailureMessage == "" {
		t.Fatalf("no failure reported (state %s)", h.record(name).State)
	}
	if !utf8.ValidString(s.FailureMessage) {
		t.Errorf("device message is not valid UTF-8: %q", s.FailureMessage[len(s.FailureMessage)-8:])
	}
	if rec := h.record(name); !utf8.ValidString(rec.FailureMessage) {
		t.Errorf("recorded message is not valid UTF-8")
	}
}

// A task body whose key no store can hold is acknowledged with a log line,
// not retried to the end.
func TestTaskWithAnInvalidKeyIsAcknowledged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	for _, body := range []string{`{"key":"a/b"}`, `{"key":"no-colon"}`, `{"key":"` + strings.Repeat("x", 2000) + `:y"}`, `{"key":"C:__x__"}`} {
		for _, step := range []func(context.Context, pipeline.Delivery) error{h.p.Poll, h.p.Issue} {
			if err := step(context.Background(), pipeline.Delivery{Body: []byte(body), Attempt: 1}); err != nil {
				t.Errorf("body %.40s: %v, want acknowledged", body, err)
			}
		}
	}
}

// A customer removed from allowedCustomers has its in-flight processes failed
// with a message that says why, instead of carried on.
func TestRemovedCustomerInFlightIsFailed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.p.Allowed = func(string) bool { return false }
	h.drain()
	h.wantFailed(name, "no longer")
	if s := h.snap(name); s.SignDataCalls != 1 {
		t.Errorf("signData %d, want 1", s.SignDataCalls)
	}
}

// Whether the API refuses a repeat claim by the same caller is not
// documented. When our first claim acted but its answer was lost: if the API
// accepts the repeat, the process goes on; if it refuses it, the process is
// left alone (it may be another adapter's) but the refusal is an ERROR, since
// the record shows an earlier claim attempt of ours.
func TestRepeatClaimAfterALostAnswer(t *testing.T) {
	t.Parallel()
	for _, refuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "accepted", true: "refused"}[refuse], func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{
				Fault:              faultOnce(cpemulator.MethodClaim, cpemulator.FaultLostResponse),
				RefuseRepeatClaims: refuse,
			})
			logs := &syncBuffer{}
			h.p.Log = slog.New(slog.NewJSONHandler(logs, nil))
			name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
			if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note}); err == nil {
				t.Fatal("the lost claim answer was not an error")
			}
			h.clk.advance(10 * time.Second)
			if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note}); err != nil {
				t.Fatal(err)
			}
			h.drain()
			if !refuse {
				h.wantUploaded(name)
				return
			}
			if st := h.record(name).State; st != progress.StateClaimedElsewhere {
				t.Fatalf("state %s, want CLAIMED_ELSEWHERE", st)
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
		})
	}
}

// Contention on the notification's last delivery is not the process's
// failure either: a fresh task carries the claim on.
func TestContentionOnTheLastDeliveryIsNotAFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	h.crashClaim("claim:before-claim", note) // dies holding the claim lease
	h.p.Crash = nil
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: h.p.MaxAttempts}); err != nil {
		t.Errorf("last delivery returned %v", err)
	}
	if rec := h.record(name); rec.State != progress.StateReceived {
		t.Fatalf("state %s after contention on the last delivery, want RECEIVED (last error %q)", rec.State, rec.LastError)
	}
	if len(h.q.pending) != 1 {
		t.Fatalf("%d tasks pending, want the one that carries the claim on", len(h.q.pending))
	}
	h.drain()
	h.wantUploaded(name)
	h.noViolations()
}

// A quota answer (429) to the upload on an issue task's last attempt is not
// the process's failure: the issued certificate is uploaded by a fresh task.
func TestQuotaOnTheLastUploadAttemptIsNotAFailure(t *testing.T) {
	t.Parallel()
	var quota atomic.Bool
	h := newHarness(t, cpemulator.Options{Fault: faultWhile(cpemulator.MethodUploadCertificate, cpemulator.FaultResourceExhausted, &quota)})
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	task := h.nextIssue()
	quota.Store(true)
	if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: h.p.MaxAttempts}); err != nil {
		t.Errorf("last attempt returned %v", err)
	}
	if rec := h.record(name); rec.State != progress.StateIssued {
		t.Fatalf("state %s after a 429 on the last upload attempt, want ISSUED (last error %q)", rec.State, rec.LastError)
	}
	quota.Store(false)
	h.drain()
	h.wantUploaded(name)
	h.noViolations()
}
