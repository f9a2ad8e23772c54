package firestore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
)

func TestListAndByProcessID(t *testing.T) {
	s := firestore.New(client(t), collection(t))
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
		f     firestore.Filter
		limit int
		want  []string
	}{
		{"all, newest first", firestore.Filter{}, 10, []string{"C3:p5", "C3:p4", "C2:p1", "C2:p3", "C1:p2", "C1:p1"}},
		{"bounded", firestore.Filter{}, 3, []string{"C3:p5", "C3:p4", "C2:p1"}},
		{"by state", firestore.Filter{State: progress.StateFailed}, 10, []string{"C2:p3", "C1:p2"}},
		{"by customer", firestore.Filter{Customer: "C1"}, 10, []string{"C1:p2", "C1:p1"}},
		{"by profile and state", firestore.Filter{ProfileRef: "vpn", State: progress.StateFailed}, 10, []string{"C2:p3"}},
		{"by state, next page", firestore.Filter{State: progress.StatePolling, After: &firestore.Cursor{CreatedAt: t0.Add(4 * time.Hour), Key: "C3:p4"}}, 10, []string{"C2:p1"}},
		{"since", firestore.Filter{Since: t0.Add(90 * time.Minute)}, 10, []string{"C3:p5", "C3:p4", "C2:p1", "C2:p3"}},
		{"none", firestore.Filter{Customer: "C9"}, 10, []string{}},
		{"by device", firestore.Filter{DeviceID: "d1"}, 10, []string{"C3:p4", "C1:p2", "C1:p1"}},
		{"by device, since", firestore.Filter{DeviceID: "d1", Since: t0.Add(30 * time.Minute)}, 10, []string{"C3:p4", "C1:p2"}},
		{"by device, bounded", firestore.Filter{DeviceID: "d1"}, 1, []string{"C3:p4"}},
		{"by serial", firestore.Filter{DeviceSerial: "S2"}, 10, []string{"C2:p1"}},
		{"by user", firestore.Filter{UserEmail: "ada@example.com"}, 10, []string{"C2:p3", "C1:p2"}},
		{"by user and state", firestore.Filter{UserEmail: "ada@example.com", State: progress.StateFailed, Customer: "C1"}, 10, []string{"C1:p2"}},
		{"next page", firestore.Filter{After: &firestore.Cursor{CreatedAt: t0.Add(2 * time.Hour), Key: "C2:p3"}}, 10, []string{"C1:p2", "C1:p1"}},
		{"next page, same time", firestore.Filter{After: &firestore.Cursor{CreatedAt: t0.Add(4 * time.Hour), Key: "C3:p5"}}, 10, []string{"C3:p4", "C2:p1", "C2:p3", "C1:p2", "C1:p1"}},
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
	if _, err := s.List(ctx, firestore.Filter{}, 0); err == nil {
		t.Error("List with limit 0: no error")
	}
	if _, err := s.List(ctx, firestore.Filter{}, firestore.MaxQueryLimit+1); err == nil {
		t.Error("List over MaxQueryLimit: no error")
	}
}
