package progress

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type oneRecord struct{ r *Record }

func (o *oneRecord) Update(_ context.Context, _ string, fn func(r *Record) error) (*Record, error) {
	c := o.r.Clone()
	if err := fn(c); err != nil {
		return nil, err
	}
	c.Version++
	o.r = c
	return c.Clone(), nil
}

func TestTransition(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		from      []State
		to        State
		wantErr   bool
		wantState State
		wantTTL   bool
	}{
		{"allowed", []State{StateReceived}, StateClaimed, false, StateClaimed, false},
		{"wrong state", []State{StatePolling}, StateSigned, true, StateReceived, false},
		{"terminal sets TTL", []State{StateReceived}, StateClaimedElsewhere, false, StateClaimedElsewhere, true},
	}
	for _, tc := range tests {
		s := &oneRecord{r: &Record{Key: "c:p", State: StateReceived, LeaseUntil: now, LeaseHolder: "d-1"}}
		got, err := Transition(context.Background(), s, "c:p", tc.from, tc.to, now, time.Hour, nil)
		var se *StateError
		if tc.wantErr {
			if !errors.As(err, &se) || se.Current.State != StateReceived {
				t.Errorf("%s: %v, want a StateError with the current record", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := []Change{{From: StateReceived, To: tc.to, At: now}}
		if diff := cmp.Diff(want, got.History); diff != "" || got.State != tc.wantState {
			t.Errorf("%s: state %s, history (-want +got):\n%s", tc.name, got.State, diff)
		}
		if tc.wantTTL != (got.ExpireAt != nil) || (tc.wantTTL && (!got.ExpireAt.Equal(now.Add(time.Hour)) || !got.LeaseUntil.IsZero() || got.LeaseHolder != "")) {
			t.Errorf("%s: expireAt %v lease until %v held by %q", tc.name, got.ExpireAt, got.LeaseUntil, got.LeaseHolder)
		}
	}
}

func TestCloneIsDeep(t *testing.T) {
	t.Parallel()
	exp := time.Now()
	r := &Record{SignData: []byte{1}, CSR: []byte{2}, SPKI: []byte{3}, History: []Change{{To: StateReceived}}, ExpireAt: &exp}
	c := r.Clone()
	c.SignData[0], c.CSR[0], c.SPKI[0], c.History[0].To = 9, 9, 9, StateFailed
	*c.ExpireAt = exp.Add(time.Hour)
	if r.SignData[0] != 1 || r.CSR[0] != 2 || r.SPKI[0] != 3 || r.History[0].To != StateReceived || !r.ExpireAt.Equal(exp) {
		t.Error("Clone shares memory with the original")
	}
	for s, terminal := range map[State]bool{StateUploaded: true, StateFailed: true, StateClaimedElsewhere: true, StateFailing: false, StateIssued: false} {
		if s.Terminal() != terminal {
			t.Errorf("%s.Terminal() = %v", s, !terminal)
		}
	}
}

func TestTransitionPath(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		start   State
		from    []State
		path    []State
		want    []Change
		wantErr error
	}{
		{"claim and signing intent in one write", StateReceived, []State{StateReceived}, []State{StateClaimed, StateSigning},
			[]Change{{From: StateReceived, To: StateClaimed, At: now}, {From: StateClaimed, To: StateSigning, At: now}}, nil},
		{"operation and signature from SIGNING", StateSigning, []State{StateSigning, StatePolling}, []State{StatePolling, StateSigned},
			[]Change{{From: StateSigning, To: StatePolling, At: now}, {From: StatePolling, To: StateSigned, At: now}}, nil},
		{"a re-entry on the way is no change", StatePolling, []State{StateSigning, StatePolling}, []State{StatePolling, StateSigned},
			[]Change{{From: StatePolling, To: StateSigned, At: now}}, nil},
		{"an edge not in the machine writes nothing", StateReceived, []State{StateReceived}, []State{StateClaimed, StateSigned}, nil, ErrNotInMachine},
		{"an empty path", StateReceived, []State{StateReceived}, nil, nil, ErrNotInMachine},
	}
	for _, tc := range tests {
		s := &oneRecord{r: &Record{Key: "c:p", State: tc.start}}
		got, err := TransitionPath(context.Background(), s, "c:p", tc.from, tc.path, now, time.Hour, nil)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) || s.r.Version != 0 {
				t.Errorf("%s: %v (version %d), want %v and nothing written", tc.name, err, s.r.Version, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, got.History); diff != "" || got.State != tc.path[len(tc.path)-1] || got.Version != 1 {
			t.Errorf("%s: state %s version %d, history (-want +got):\n%s", tc.name, got.State, got.Version, diff)
		}
	}
}
