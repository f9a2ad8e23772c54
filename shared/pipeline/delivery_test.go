package pipeline_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// A failure decided on the claim path whose setFailure has not gone through
// by the notification's last delivery is handed to a fresh report task, as on
// the task paths (invariant 7), instead of being left to the dead-letter topic
// and an hourly sweep. Before Delivery, the claim path reported with attempt 0
// whatever the delivery was.
func TestLastClaimDeliveryHandsOffTheReport(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	h := newHarness(t, cpemulator.Options{Fault: func(method, _ string) cpemulator.Fault {
		if method == cpemulator.MethodSetFailure && down.Load() {
			return cpemulator.FaultUnavailable
		}
		return cpemulator.NoFault
	}})
	name, note := h.add(cpemulator.ClientSpec{ProfileRef: "no_such_profile"})
	ctx := context.Background()
	if err := h.p.Claim(ctx, pipeline.Delivery{Body: note, Attempt: 1}); err == nil {
		t.Fatal("first delivery: setFailure is down, yet no error for a retry")
	}
	if err := h.p.Claim(ctx, pipeline.Delivery{Body: note, Attempt: h.p.MaxAttempts}); err != nil {
		t.Fatalf("last delivery returned %v: Pub/Sub dead-letters the message and nothing reports the failure until a sweep", err)
	}
	rec := h.record(name)
	if rec.State != progress.StateFailing || rec.ReportHandoffs != 1 {
		t.Fatalf("state %s, report hand-offs %d; want FAILING and 1", rec.State, rec.ReportHandoffs)
	}
	if len(h.q.pending) != 1 || !strings.HasPrefix(h.q.pending[0].Name, "report-") {
		t.Fatalf("pending tasks %v, want one report task", h.q.pending)
	}
	down.Store(false)
	h.drain()
	h.wantFailed(name, "not configured")
	h.noViolations()
}
