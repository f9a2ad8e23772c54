package cpemulator

import (
	"context"
	"errors"
	"testing"
	"time"

	cm "google.golang.org/api/chromemanagement/v1"
)

// claimWithin claims name with a client that gives up after d.
func (f *fixture) claimWithin(name, id string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := f.procs.Claim(name, &cm.GoogleChromeManagementVersionsV1ClaimCertificateProvisioningProcessRequest{CallerInstanceId: id}).Context(ctx).Do()
	return err
}

func TestTimeoutFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault       Fault
		wantClaimed string
	}{
		{FaultTimeout, ""},
		{FaultTimeoutAfterActing, "a"},
	}
	for _, tc := range tests {
		t.Run(map[Fault]string{FaultTimeout: "before acting", FaultTimeoutAfterActing: "after acting"}[tc.fault], func(t *testing.T) {
			t.Parallel()
			// An hour's hold: only the client giving up can end the request.
			f := newFixture(t, Options{Fault: onceFault(MethodClaim, tc.fault), TimeoutHold: time.Hour})
			name := f.add(ClientSpec{Key: ECP256})

			err := f.claimWithin(name, "a", 100*time.Millisecond)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("claim: %v, want the client's deadline", err)
			}
			if got := f.snap(name).ClaimedBy; got != tc.wantClaimed {
				t.Errorf("claimedBy %q after the timeout, want %q", got, tc.wantClaimed)
			}
			// The server lets go of a request whose client gave up: Close
			// waits for every request in flight.
			closed := make(chan struct{})
			go func() { f.srv.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(30 * time.Second):
				t.Fatal("the held request outlived its client")
			}
		})
	}
}

func TestTimeoutHoldEndsWith504(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		fault  Fault
		prep   []step
		call   step
		check  func(t *testing.T, s Snapshot)
	}{
		{"claim timeout", MethodClaim, FaultTimeout, nil, claimAs("a"), func(t *testing.T, s Snapshot) {
			if s.ClaimedBy != "" {
				t.Errorf("claimed by %q, want not acted", s.ClaimedBy)
			}
		}},
		{"signData timeout after acting", MethodSignData, FaultTimeoutAfterActing, []step{claimAs("a")}, sign(sampleData, ""), func(t *testing.T, s Snapshot) {
			if s.SignDataCalls != 1 || len(s.Operations) != 1 {
				t.Errorf("signDataCalls=%d operations=%v, want acted once", s.SignDataCalls, s.Operations)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The client never gives up: the hold ends the request.
			f := newFixture(t, Options{Fault: onceFault(tc.method, tc.fault), TimeoutHold: 10 * time.Millisecond})
			name := f.add(ClientSpec{Key: ECP256})
			for _, s := range tc.prep {
				f.must(s(f, name))
			}
			code, status, _ := apiStatus(t, tc.call(f, name))
			if code != 504 || status != "DEADLINE_EXCEEDED" {
				t.Errorf("held request answered %d %s, want 504 DEADLINE_EXCEEDED", code, status)
			}
			tc.check(t, f.snap(name))
		})
	}
}

// With Options.Sleep, a held request waits on the emulator's clock (a
// virtual clock's Sleep), for TimeoutHold, and is then answered 504.
func TestTimeoutHoldSleepsOnTheClock(t *testing.T) {
	t.Parallel()
	var slept []time.Duration
	f := newFixture(t, Options{Fault: onceFault(MethodClaim, FaultTimeout), TimeoutHold: time.Hour,
		Sleep: func(ctx context.Context, d time.Duration) error {
			slept = append(slept, d)
			return nil // the clock moved on at once
		}})
	name := f.add(ClientSpec{Key: ECP256})
	code, status, _ := apiStatus(t, claimAs("a")(f, name))
	if code != 504 || status != "DEADLINE_EXCEEDED" {
		t.Errorf("held request answered %d %s, want 504 DEADLINE_EXCEEDED", code, status)
	}
	if len(slept) != 1 || slept[0] != time.Hour {
		t.Errorf("slept %v, want the hour of TimeoutHold once", slept)
	}
}
