package pipeline_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// Regressions found by the fault campaign (shared/simulation.Campaign).

// faultOnce injects fault the first time method is called.
func faultOnce(method string, fault cpemulator.Fault) func(string, string) cpemulator.Fault {
	var mu sync.Mutex
	done := false
	return func(m, _ string) cpemulator.Fault {
		mu.Lock()
		defer mu.Unlock()
		if m != method || done {
			return cpemulator.NoFault
		}
		done = true
		return fault
	}
}

// A failure decided on a task's last attempt is reported on that attempt: a
// transient setFailure error there must not leave the process FAILING with no
// task left to finish it.
func TestFailureDecidedOnTheLastAttemptEnds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{Fault: faultOnce(cpemulator.MethodSetFailure, cpemulator.FaultLostResponse)})
	name, data := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, Behaviour: cpemulator.Silent})
	if err := h.claim(data, 1); err != nil {
		t.Fatal(err)
	}
	task, ok := h.q.next()
	if !ok || task.Queue != tasks.QueuePoll {
		t.Fatalf("no poll task after the claim")
	}
	h.clk.advance(2 * time.Hour) // past the poll deadline
	if err := h.p.Poll(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: h.p.MaxAttempts}); err != nil {
		t.Errorf("last attempt returned %v: the queue drops the task, nothing finishes the process", err)
	}
	rec := h.record(name)
	if rec.State != progress.StateFailed || !rec.FailureReported {
		t.Errorf("state %s, reported %v; want FAILED and reported (setFailure acted, its answer was lost)", rec.State, rec.FailureReported)
	}
	if s := h.snap(name); s.SetFailureCalls != 1 {
		t.Errorf("setFailure accepted %d times, want 1", s.SetFailureCalls)
	}
}

// A client that signs shortly before the poll deadline still gets its
// certificate when the CA needs a retry: the CA step's deadline runs from the
// signature, not from signData. (The campaign saw a process failed with "the
// CA had not issued by the deadline" after its CA had issued: the issuing
// delivery died, and the retry came after the poll deadline.)
func TestCARetryAfterThePollDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	var mu sync.Mutex
	calls := 0
	h.ca.SetFault(func(ca.Request) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return &ca.Error{Kind: ca.Transient, Reason: "outage"}
		}
		return nil
	})
	// The poll deadline is an hour: the client signs a minute before it.
	name, data := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: 59 * time.Minute})
	if err := h.claim(data, 1); err != nil {
		t.Fatal(err)
	}
	h.drain() // the CA's retry comes 90s later: past the poll deadline
	h.wantUploaded(name)
	h.noViolations()
	if rec := h.record(name); !rec.UploadedAt.After(rec.Deadline) || calls != 2 {
		t.Errorf("uploaded at %s after %d CA calls; the case needs an upload after the poll deadline %s and a retried CA", rec.UploadedAt, calls, rec.Deadline)
	}
}

// The first poll task is enqueued right after the write that records the
// operation: a delivery that dies between the two (here: its write's answer
// lost) leaves POLLING with no task. A later notification delivery, while
// the lease would still hold, makes sure the task exists and leaves the
// rest to it, instead of contending for the lease until Pub/Sub gives up.
// (Before issue 15 the same happened between SIGNING and its first poll,
// which stranded the process in SIGNING for good.)
func TestSigningWithoutItsPollTaskIsResumed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	var mu sync.Mutex
	updates := 0
	h.store.SetAfterCommitFault(func(op, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		if op != "update" {
			return nil
		}
		updates++
		if updates == 1 { // RECEIVED -> CLAIMED -> SIGNING -> POLLING committed, its answer lost
			return errors.New("injected: lost after commit")
		}
		return nil
	})
	name, data := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: data, Attempt: 1}); err == nil {
		t.Fatal("the first delivery succeeded despite the lost write")
	}
	if rec := h.record(name); rec.State != progress.StatePolling {
		t.Fatalf("state %s, want POLLING", rec.State)
	}
	// The last delivery comes while the dead delivery's lease would still hold.
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: data, Attempt: h.p.MaxAttempts}); err != nil {
		t.Errorf("last delivery: %v", err)
	}
	h.drain()
	h.wantUploaded(name)
	h.noViolations()
}

// An upload whose answer was lost frees its lease (the call is over). A
// delivery that had read the process before that upload acted must not then
// upload again: it reads the process only once it holds the lease.
func TestLostUploadIsNotRepeatedByAConcurrentDelivery(t *testing.T) {
	t.Parallel()
	var fmu sync.Mutex
	var uploadFault cpemulator.Fault // the next upload's fault, then none
	h := newHarness(t, cpemulator.Options{Fault: func(m, _ string) cpemulator.Fault {
		fmu.Lock()
		defer fmu.Unlock()
		if m != cpemulator.MethodUploadCertificate {
			return cpemulator.NoFault
		}
		f := uploadFault
		uploadFault = cpemulator.NoFault
		return f
	}})
	setUpload := func(f cpemulator.Fault) { fmu.Lock(); uploadFault = f; fmu.Unlock() }
	name, data := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.claim(data, 1); err != nil {
		t.Fatal(err)
	}
	issue := h.nextIssue()
	// The first upload fails before acting: ISSUED, the lease free.
	setUpload(cpemulator.FaultUnavailable)
	if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 1}); err == nil {
		t.Fatal("the first upload succeeded despite its fault")
	}
	if rec := h.record(name); rec.State != progress.StateIssued {
		t.Fatalf("state %s, want ISSUED", rec.State)
	}

	// B stops at its first store write; A uploads meanwhile (acted, answer
	// lost) and frees the lease; then B goes on.
	atWrite, release := make(chan struct{}), make(chan struct{})
	var stopped atomic.Bool
	h.store.SetFault(func(op, _ string) error {
		if op == "update" && stopped.CompareAndSwap(false, true) {
			close(atWrite)
			<-release
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 2}) }()
	<-atWrite
	setUpload(cpemulator.FaultLostResponse)
	if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 3}); err == nil {
		t.Error("A's upload reported success despite its lost answer")
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("B: %v", err)
	}
	if s := h.snap(name); s.UploadCalls != 1 {
		t.Errorf("%d uploads (%d repeated), want 1", s.UploadCalls, s.RepeatedUploads)
	}
	if rec := h.record(name); rec.State != progress.StateUploaded {
		t.Errorf("state %s, want UPLOADED", rec.State)
	}
}

// The first poll task is the only thing that resumes a record left in
// SIGNING. On its last attempt a transient failure is reported, as the last
// notification delivery does before SIGNING: otherwise the queue drops the
// task and the process waits in SIGNING forever, its device never told.
func TestSigningGivesUpOnTheLastPollAttempt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{Fault: func(m, _ string) cpemulator.Fault {
		if m == cpemulator.MethodSignData {
			return cpemulator.FaultUnavailable
		}
		return cpemulator.NoFault
	}})
	name, data := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.claim(data, 1); err == nil {
		t.Fatal("the claim succeeded although signData failed")
	}
	task, ok := h.q.next()
	if !ok || task.Queue != tasks.QueuePoll {
		t.Fatal("no poll task")
	}
	h.clk.advance(90 * time.Second) // past the lease
	if err := h.p.Poll(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: h.p.MaxAttempts}); err != nil {
		t.Errorf("last attempt returned %v: the queue drops the task, nothing finishes the process", err)
	}
	h.wantFailed(name, "try again later")
	if s := h.snap(name); s.SignDataCalls != 0 {
		t.Errorf("signData accepted %d times, want 0", s.SignDataCalls)
	}
}
