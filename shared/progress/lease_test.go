package progress

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAcquireLease(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	const d = 2 * time.Minute
	tests := []struct {
		name             string
		holder           string
		until            time.Time
		wantHeld         bool
		wantUntil        time.Time
		wantHolderOnFail string
	}{
		{"free", "", time.Time{}, false, now.Add(d), ""},
		{"expired, another's", "d-1", now.Add(-time.Second), false, now.Add(d), ""},
		{"expires now", "d-1", now, false, now.Add(d), ""},
		{"live, another's", "d-1", now.Add(time.Second), true, now.Add(time.Second), "d-1"},
		{"live, an earlier release's (no holder)", "", now.Add(time.Second), true, now.Add(time.Second), ""},
		{"expired, an earlier release's (no holder)", "", now.Add(-time.Second), false, now.Add(d), ""},
		{"live, its own: renewed", "me", now.Add(time.Second), false, now.Add(d), ""},
	}
	for _, tc := range tests {
		r := &Record{State: StateSigning, LeaseHolder: tc.holder, LeaseUntil: tc.until}
		err := AcquireLease(r, "me", now, d)
		if got := errors.Is(err, ErrLeaseHeld); got != tc.wantHeld {
			t.Errorf("%s: AcquireLease = %v, want held %v", tc.name, err, tc.wantHeld)
		}
		wantHolder := "me"
		if tc.wantHeld {
			wantHolder = tc.wantHolderOnFail
		}
		if diff := cmp.Diff([]any{wantHolder, tc.wantUntil}, []any{r.LeaseHolder, r.LeaseUntil}); diff != "" {
			t.Errorf("%s: lease (holder, until) (-want +got):\n%s", tc.name, diff)
		}
	}
	if err := AcquireLease(&Record{}, "", now, d); err == nil || errors.Is(err, ErrLeaseHeld) {
		t.Errorf("AcquireLease with no holder = %v, want a refusal", err)
	}
}

func TestReleaseLease(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	r := &Record{LeaseHolder: "d-1", LeaseUntil: now.Add(time.Minute)}
	ReleaseLease(r)
	if r.Leased(now) || r.LeaseHolder != "" || !r.LeaseUntil.IsZero() {
		t.Errorf("after ReleaseLease: holder %q until %v", r.LeaseHolder, r.LeaseUntil)
	}
	if err := AcquireLease(r, "d-2", now, time.Minute); err != nil {
		t.Errorf("AcquireLease after ReleaseLease: %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	want := &Record{
		Key: "C1:p1", Customer: "C1", ProcessID: "p1", ProcessName: "customers/C1/certificateProvisioningProcesses/p1",
		State: StateReceived, CreatedAt: now, UpdatedAt: now, History: []Change{{To: StateReceived, At: now}}, Attempts: 1,
	}
	if diff := cmp.Diff(want, New("C1", "p1", "customers/C1/certificateProvisioningProcesses/p1", now)); diff != "" {
		t.Errorf("New (-want +got):\n%s", diff)
	}
}
