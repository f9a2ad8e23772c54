package pipeline_test

import (
	"context"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// Invariant 3: an upload whose answer was lost (503 after acting) returns an
// error for a retry, and leaves no lease behind: the call is over, so the
// queue's next attempt goes ahead at once (it reads the process first)
// instead of finding "another delivery is working" until the lease ends,
// which could use up the task's last attempts and strand the process.
func TestLostUploadAnswerLeavesNoLease(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{Fault: faultOnce(cpemulator.MethodUploadCertificate, cpemulator.FaultLostResponse)})
	name, data := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256})
	if err := h.claim(data, 1); err != nil {
		t.Fatal(err)
	}
	issue := h.nextIssue()
	if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 1}); err == nil {
		t.Fatal("Issue with a lost upload answer returned nil; want an error so the queue retries")
	}
	if rec := h.record(name); rec.State != progress.StateIssued || !rec.LeaseUntil.IsZero() {
		t.Fatalf("after the lost upload answer: %s with lease until %v; want ISSUED with no lease", rec.State, rec.LeaseUntil)
	}
	// The next attempt, with no time passed.
	if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 2}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	h.wantUploaded(name)
	h.noViolations()
}
