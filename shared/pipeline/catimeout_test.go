package pipeline_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/seal"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// slowCA is the dev CA behind a CA that answers only when its caller gives
// up, for the first hangs calls to Issue: it records the time each call was
// given (its context's deadline) and refuses a call without one.
type slowCA struct {
	pipeline.Issuer
	mu    sync.Mutex
	hangs int
	given map[string][]time.Duration
}

func (c *slowCA) note(ctx context.Context, call string) error {
	dl, ok := ctx.Deadline()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.given[call] = append(c.given[call], -1)
		return &ca.Error{Kind: ca.Transient, Reason: call + " without a deadline"}
	}
	c.given[call] = append(c.given[call], time.Until(dl))
	return nil
}

func (c *slowCA) Challenge(ctx context.Context, _ string) (string, time.Time, error) {
	if err := c.note(ctx, "Challenge"); err != nil {
		return "", time.Time{}, err
	}
	return "challenge-pw", time.Time{}, nil
}

func (c *slowCA) Issue(ctx context.Context, req ca.Request) (*ca.Issued, error) {
	if err := c.note(ctx, "Issue"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	hang := c.hangs > 0
	c.hangs--
	c.mu.Unlock()
	if hang {
		<-ctx.Done() // a CA that never answers, behind a connector that honours ctx
		return nil, &ca.Error{Kind: ca.Transient, Reason: "no answer", Err: ctx.Err()}
	}
	return c.Issuer.Issue(ctx, req)
}

// TestCACallsRunUnderADeadline: every CA call (the challenge, Issue) runs
// under a deadline of CATimeout, at most half the lease; a CA that hangs is
// given up with a transient error at that deadline, the lease is freed and
// the next delivery issues.
func TestCACallsRunUnderADeadline(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		lease     time.Duration
		caTimeout time.Duration
		hangs     int
		max       time.Duration // the longest deadline a call may get
	}{
		{"default: half the lease", time.Minute, 0, 0, 30 * time.Second},
		{"longer than half the lease: half the lease", time.Minute, 10 * time.Minute, 0, 30 * time.Second},
		{"a CA that hangs is given up at CATimeout", time.Minute, 200 * time.Millisecond, 1, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			slow := &slowCA{Issuer: h.ca, hangs: tc.hangs, given: map[string][]time.Duration{}}
			h.p.CAs[cpemulator.DefaultCARef] = slow
			h.p.Sealer = sealer
			h.p.Lease, h.p.CATimeout = tc.lease, tc.caTimeout
			name, note := h.add(cpemulator.ClientSpec{})
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			task := h.nextIssue()
			if tc.hangs > 0 {
				err := h.deliver(task, 1)
				var ce *ca.Error
				if !errors.As(err, &ce) || ce.Kind != ca.Transient || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("delivery to a hanging CA: %v, want a transient error at the deadline", err)
				}
				if rec := h.record(name); !rec.LeaseUntil.IsZero() {
					t.Errorf("lease %v kept after the CA call was given up", rec.LeaseUntil)
				}
			}
			if err := h.deliver(task, tc.hangs+1); err != nil {
				t.Fatalf("delivery: %v", err)
			}
			h.wantUploaded(name)
			slow.mu.Lock()
			defer slow.mu.Unlock()
			for _, call := range []string{"Challenge", "Issue"} {
				if len(slow.given[call]) == 0 {
					t.Errorf("%s was not called", call)
				}
				for _, d := range slow.given[call] {
					if d <= 0 || d > tc.max {
						t.Errorf("%s ran with %v left (-1: no deadline), want a deadline of at most %v", call, d, tc.max)
					}
				}
			}
		})
	}
}
