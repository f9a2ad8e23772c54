package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// faultTimes answers n requests of method with fault, then serves normally.
func faultTimes(method string, fault cpemulator.Fault, n int) func(string, string) cpemulator.Fault {
	var mu sync.Mutex
	return func(m, _ string) cpemulator.Fault {
		mu.Lock()
		defer mu.Unlock()
		if m != method || n == 0 {
			return cpemulator.NoFault
		}
		n--
		return fault
	}
}

// With PaceClaims, a claim that meets the API's quota (429) is acknowledged
// and handed to the claim queue instead of erroring for Pub/Sub to deliver
// again; a claim task that meets 429 hands on to the next claim task, without
// spending its attempts; the process ends uploaded, asked to sign once.
func TestQuotaClaimWaitsInTheClaimQueue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method string
		// queues is the queue of every task delivered, in order.
		queues []tasks.Queue
	}{
		{cpemulator.MethodGet, []tasks.Queue{tasks.QueueClaim, tasks.QueueClaim, tasks.QueueClaim, tasks.QueuePoll, tasks.QueueIssue}},
		{cpemulator.MethodClaim, []tasks.Queue{tasks.QueueClaim, tasks.QueueClaim, tasks.QueueClaim, tasks.QueuePoll, tasks.QueueIssue}},
		// signData's 429 leaves SIGNING: the first poll task resumes it
		// (and meets the two 429s left as a poll task's retries).
		{cpemulator.MethodSignData, []tasks.Queue{tasks.QueuePoll, tasks.QueuePoll, tasks.QueuePoll, tasks.QueuePoll, tasks.QueueIssue}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{Fault: faultTimes(tc.method, cpemulator.FaultResourceExhausted, 3)})
			h.p.PaceClaims = true
			name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
			if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: 1}); err != nil {
				t.Fatalf("a claim that met 429 was not acknowledged: %v", err)
			}
			var got []tasks.Queue
			for {
				task, ok := h.q.next()
				if !ok {
					break
				}
				h.clk.advanceTo(task.ScheduleTime)
				got = append(got, task.Queue)
				for attempt := 1; ; attempt++ {
					if attempt > 1 {
						got = append(got, task.Queue)
					}
					if err := h.deliver(task, attempt); err == nil {
						break
					}
					if task.Queue == tasks.QueueClaim {
						t.Fatalf("a claim task erred on attempt %d: its attempts are spent", attempt)
					}
					h.clk.advance(10 * time.Second)
				}
			}
			if diff := cmp.Diff(tc.queues, got); diff != "" {
				t.Errorf("deliveries by queue (-want +got):\n%s", diff)
			}
			h.wantUploaded(name)
			if rec := h.record(name); strings.Contains(rec.LastError, "giving up") || rec.State != progress.StateUploaded {
				t.Errorf("state %s, last error %q", rec.State, rec.LastError)
			}
			if n := h.snap(name).SignDataCalls; n != 1 {
				t.Errorf("signData accepted %d times, want 1", n)
			}
			h.noViolations()
		})
	}
}

// Without PaceClaims a claim's 429 is left to Pub/Sub's redeliveries, as before.
func TestQuotaClaimWithoutPacingErrs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{Fault: faultTimes(cpemulator.MethodClaim, cpemulator.FaultResourceExhausted, 1)})
	_, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: 1}); err == nil {
		t.Fatal("a claim that met 429 without pacing was acknowledged")
	}
	if task, ok := h.q.next(); ok {
		t.Errorf("a %s task was enqueued", task.Queue)
	}
}

// The queues' rates keep to the arithmetic of quota.go: the claim queue
// admits what the budget can finish, poll and issue get twice their share,
// and issue stays under the CA's rate.
func TestQueueRates(t *testing.T) {
	t.Parallel()
	got := pipeline.QueueRates(2400, 7)
	budget := 2400.0 / 60 * (1 - pipeline.QuotaHeadroom)
	want := map[tasks.Queue]float64{
		tasks.QueueClaim: budget / 5.6,
		tasks.QueuePoll:  budget * 2 / 5.6,
		tasks.QueueIssue: 7,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rates (-want +got):\n%s", diff)
	}
	budget = 600.0 / 60 * (1 - pipeline.QuotaHeadroom) // at run time, as QueueRates computes it
	if got := pipeline.QueueRates(600, 0)[tasks.QueueIssue]; got != budget*2/5.6 {
		t.Errorf("issue without a CA rate: %v", got)
	}
}

// An issuance the CA throttles (its rate reached) on every attempt of the
// issue task is not the process's failure: the last attempt hands it to a
// fresh task, which issues once the CA takes requests again.
func TestCAThrottledOnTheLastAttemptIsNotAFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	throttled := 0
	h.ca.SetFault(func(ca.Request) error {
		if throttled < h.p.MaxAttempts {
			throttled++
			return &ca.Error{Kind: ca.Transient, Reason: "RESOURCE_EXHAUSTED", Err: ca.ErrThrottled}
		}
		return nil
	})
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	if throttled != h.p.MaxAttempts {
		t.Fatalf("the CA throttled %d requests, want %d (one task's attempts)", throttled, h.p.MaxAttempts)
	}
	h.wantUploaded(name)
	h.noViolations()
}

// With PaceClaims, a poll task that finds the claim still to do (the fresh
// task after contention, a sweep's re-drive) and meets 429 hands the claim
// to the claim queue instead of spending its attempts: before, its last
// attempt dropped the task and left the process to the sweep.
func TestQuotaOnAPollTaskBeforeTheClaim(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{Fault: faultTimes(cpemulator.MethodGet, cpemulator.FaultResourceExhausted, 2)})
	h.p.PaceClaims = true
	name, note := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	first, ok := h.q.next()
	if !ok || first.Queue != tasks.QueueClaim {
		t.Fatalf("no claim task after the claim's 429")
	}
	body := []byte(`{"key":"` + h.key(name) + `"}`)
	if err := h.p.Poll(context.Background(), pipeline.Delivery{Body: body, Attempt: h.p.MaxAttempts}); err != nil {
		t.Fatalf("a poll task before the claim erred on its last attempt: %v", err)
	}
	task, ok := h.q.next()
	if !ok || task.Queue != tasks.QueueClaim {
		t.Fatalf("the poll task's 429 did not go to the claim queue (next task %v, %v)", task.Queue, ok)
	}
	for _, tk := range []tasks.Task{first, task} {
		if err := h.deliver(tk, 1); err != nil {
			t.Fatalf("claim task %s: %v", tk.Name, err)
		}
	}
	h.drain()
	h.wantUploaded(name)
	h.noViolations()
}

// terraform/tasks.tf sets the queues' rates from the same requests per
// enrollment as QueueRates: the two numbers are one setting written twice
// (HCL cannot import Go), so this holds them together.
func TestTerraformCallsPerEnrollment(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", "terraform", "tasks.tf"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*calls_per_enrollment\s*=\s*([0-9.]+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("terraform/tasks.tf has no calls_per_enrollment local")
	}
	got, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || got != pipeline.CallsPerEnrollment {
		t.Errorf("terraform/tasks.tf calls_per_enrollment = %s, want pipeline.CallsPerEnrollment %v", m[1], pipeline.CallsPerEnrollment)
	}
}
