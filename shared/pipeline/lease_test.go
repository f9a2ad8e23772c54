package pipeline_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// takeoverCA runs during its first call (before failing it with an outage)
// what first says, and holds every later call until release is closed.
type takeoverCA struct {
	pipeline.Issuer
	calls   atomic.Int32
	first   func()
	entered chan struct{}
	release chan struct{}
}

func (c *takeoverCA) Issue(ctx context.Context, req ca.Request) (*ca.Issued, error) {
	if c.calls.Add(1) == 1 {
		c.first()
		return nil, &ca.Error{Kind: ca.Transient, Reason: "outage"}
	}
	close(c.entered)
	<-c.release
	return c.Issuer.Issue(ctx, req)
}

// outageCA is a CA in an outage: every call fails, transiently.
type outageCA struct{ pipeline.Issuer }

func (outageCA) Issue(context.Context, ca.Request) (*ca.Issued, error) {
	return nil, &ca.Error{Kind: ca.Transient, Reason: "outage"}
}

// A delivery frees only its own lease: when its CA call outlived the lease
// and another delivery took the process over (and is calling the CA), the
// first one's failed call leaves the second's lease in place, so that no
// third delivery calls the CA beside it. Before leases had holders, the
// failed call freed whatever lease the record held.
func TestAFailedCallLeavesALeaseTakenOver(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, data := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256})
	if err := h.claim(data, 1); err != nil {
		t.Fatal(err)
	}
	issue := h.nextIssue()
	second := make(chan error, 1)
	c := &takeoverCA{Issuer: h.ca, entered: make(chan struct{}), release: make(chan struct{})}
	c.first = func() {
		h.clk.advance(2 * h.p.Lease) // the first call outlives its lease
		go func() { second <- h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 2}) }()
		<-c.entered // the second delivery holds the lease and calls the CA
	}
	h.p.CAs[cpemulator.DefaultCARef] = c
	if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 1}); err == nil {
		t.Fatal("the first delivery's CA outage returned nil; want an error for a retry")
	}
	rec := h.record(name)
	if rec.State != progress.StateIssuing || !rec.Leased(h.clk.Now()) || !strings.HasPrefix(rec.LeaseHolder, "issue-") {
		t.Errorf("after the first delivery's failed call: %s, lease held by %q until %v (now %v); want ISSUING, the second delivery's lease",
			rec.State, rec.LeaseHolder, rec.LeaseUntil, h.clk.Now())
	}
	close(c.release)
	if err := <-second; err != nil {
		t.Fatalf("the second delivery: %v", err)
	}
	h.wantUploaded(name)
	h.noViolations()
}

// A record written by the previous release has a lease with no holder: the
// new release treats it as an unknown delivery's, backs off until it
// expires, then takes over and finishes with one certificate.
func TestALeaseWithoutHolderIsHeldUntilItExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	name, data := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256})
	if err := h.claim(data, 1); err != nil {
		t.Fatal(err)
	}
	issue := h.nextIssue()
	// The record in ISSUING with its CSR, as the previous release left it
	// after a CA outage, then what that release wrote when it took the CA
	// lease again (its delivery is still calling the CA): no leaseHolder.
	h.p.CAs[cpemulator.DefaultCARef] = outageCA{}
	if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 1}); err == nil {
		t.Fatal("Issue during a CA outage returned nil; want an error for a retry")
	}
	h.p.CAs[cpemulator.DefaultCARef] = h.ca
	until := h.clk.Now().Add(h.p.Lease)
	if _, err := h.store.Update(context.Background(), h.key(name), func(r *progress.Record) error {
		if r.State != progress.StateIssuing || len(r.CSR) == 0 {
			t.Fatalf("after the CA outage: %s with a CSR of %d bytes; want ISSUING with the CSR", r.State, len(r.CSR))
		}
		r.LeaseUntil, r.LeaseHolder, r.IssueAttempts = until, "", r.IssueAttempts+1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.clk.advance(h.p.Lease / 2)
	if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 2}); err == nil {
		t.Fatal("Issue under the previous release's live lease returned nil; want an error (busy) for a retry")
	}
	if rec := h.record(name); rec.State != progress.StateIssuing || rec.LeaseHolder != "" || !rec.LeaseUntil.Equal(until) {
		t.Fatalf("the lease of the previous release was touched: %s, held by %q until %v", rec.State, rec.LeaseHolder, rec.LeaseUntil)
	}
	h.clk.advanceTo(until)
	if err := h.p.Issue(context.Background(), pipeline.Delivery{Body: issue.Body, Attempt: 3}); err != nil {
		t.Fatalf("Issue once the lease expired: %v", err)
	}
	h.wantUploaded(name)
	h.noViolations()
}
