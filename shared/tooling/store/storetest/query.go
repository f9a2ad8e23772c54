package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
)

// Querier is a store with the operator CLI's queries (certprov list, find,
// status): the Firestore store, and the memory store that the local run
// leaves for the CLI (local -keep).
type Querier interface {
	Store
	List(ctx context.Context, f store.Filter, limit int) ([]*progress.Record, error)
	ByProcessID(ctx context.Context, processID string, limit int) ([]*progress.Record, error)
}

// RunQueries checks List and ByProcessID on an empty store: the filters,
// newest-first order with ties broken by key, pages after a cursor, and the
// limits.
func RunQueries(t *testing.T, s Querier) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for i, r := range []struct {
		customer, id, profile string
		state                 progress.State
		device, serial, user  string
	}{
		{"C1", "p1", "wifi", progress.StateUploaded, "d1", "S1", ""},
		{"C1", "p2", "wifi", progress.StateFailed, "d1", "S1", "ada@example.com"},
		{"C2", "p3", "vpn", progress.StateFailed, "", "", "ada@example.com"},
		{"C2", "p1", "vpn", progress.StatePolling, "d2", "S2", ""},
		{"C3", "p4", "vpn", progress.StatePolling, "d1", "S1", ""},
		{"C3", "p5", "vpn", progress.StatePolling, "", "", ""}, // a record of an earlier release
	} {
		at := t0.Add(time.Duration(min(i, 4)) * time.Hour) // p4 and p5 at the same time
		if _, err := s.Create(ctx, &progress.Record{Key: progress.Key(r.customer, r.id), Customer: r.customer, ProcessID: r.id,
			ProfileRef: r.profile, State: r.state, CreatedAt: at, UpdatedAt: at,
			DeviceID: r.device, DeviceSerial: r.serial, UserEmail: r.user}); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(recs []*progress.Record) []string {
		out := []string{}
		for _, r := range recs {
			out = append(out, r.Key)
		}
		return out
	}
	tests := []struct {
		name  string
		f     store.Filter
		limit int
		want  []string
	}{
		{"all, newest first", store.Filter{}, 10, []string{"C3:p5", "C3:p4", "C2:p1", "C2:p3", "C1:p2", "C1:p1"}},
		{"bounded", store.Filter{}, 3, []string{"C3:p5", "C3:p4", "C2:p1"}},
		{"by state", store.Filter{State: progress.StateFailed}, 10, []string{"C2:p3", "C1:p2"}},
		{"by customer", store.Filter{Customer: "C1"}, 10, []string{"C1:p2", "C1:p1"}},
		{"by profile and state", store.Filter{ProfileRef: "vpn", State: progress.StateFailed}, 10, []string{"C2:p3"}},
		{"by state, next page", store.Filter{State: progress.StatePolling, After: &store.Cursor{CreatedAt: t0.Add(4 * time.Hour), Key: "C3:p4"}}, 10, []string{"C2:p1"}},
		{"since", store.Filter{Since: t0.Add(90 * time.Minute)}, 10, []string{"C3:p5", "C3:p4", "C2:p1", "C2:p3"}},
		{"none", store.Filter{Customer: "C9"}, 10, []string{}},
		{"by device", store.Filter{DeviceID: "d1"}, 10, []string{"C3:p4", "C1:p2", "C1:p1"}},
		{"by device, since", store.Filter{DeviceID: "d1", Since: t0.Add(30 * time.Minute)}, 10, []string{"C3:p4", "C1:p2"}},
		{"by device, bounded", store.Filter{DeviceID: "d1"}, 1, []string{"C3:p4"}},
		{"by serial", store.Filter{DeviceSerial: "S2"}, 10, []string{"C2:p1"}},
		{"by user", store.Filter{UserEmail: "ada@example.com"}, 10, []string{"C2:p3", "C1:p2"}},
		{"by user and state", store.Filter{UserEmail: "ada@example.com", State: progress.StateFailed, Customer: "C1"}, 10, []string{"C1:p2"}},
		{"next page", store.Filter{After: &store.Cursor{CreatedAt: t0.Add(2 * time.Hour), Key: "C2:p3"}}, 10, []string{"C1:p2", "C1:p1"}},
		{"next page, same time", store.Filter{After: &store.Cursor{CreatedAt: t0.Add(4 * time.Hour), Key: "C3:p5"}}, 10, []string{"C3:p4", "C2:p1", "C2:p3", "C1:p2", "C1:p1"}},
	}
	for _, tc := range tests {
		got, err := s.List(ctx, tc.f, tc.limit)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, keys(got)); diff != "" {
			t.Errorf("%s: List (-want +got):\n%s", tc.name, diff)
		}
	}
	got, err := s.ByProcessID(ctx, "p1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"C2:p1", "C1:p1"}, keys(got)); diff != "" {
		t.Errorf("ByProcessID (-want +got):\n%s", diff)
	}
	if _, err := s.List(ctx, store.Filter{}, 0); err == nil {
		t.Error("List with limit 0: no error")
	}
	if _, err := s.List(ctx, store.Filter{}, store.MaxQueryLimit+1); err == nil {
		t.Error("List over MaxQueryLimit: no error")
	}
}
