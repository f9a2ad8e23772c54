package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// With SetClock, UpdatedAt follows the run's clock (a virtual one runs ahead
// of the real time), so that the sweep, which compares it with its own clock,
// sees records as stale when they are.
func TestSetClockStampsUpdatedAt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := memory.New()
	s.SetClock(func() time.Time { return at })
	if _, err := s.Create(ctx, &progress.Record{Key: "C0:p", State: progress.StateReceived}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get(ctx, "C0:p")
	if err != nil {
		t.Fatal(err)
	}
	if !rec.UpdatedAt.Equal(at) {
		t.Errorf("created with UpdatedAt %v, want the clock's %v", rec.UpdatedAt, at)
	}
	at = at.Add(time.Hour)
	rec, err = s.Update(ctx, "C0:p", func(r *progress.Record) error { r.PollCount++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !rec.UpdatedAt.Equal(at) {
		t.Errorf("updated with UpdatedAt %v, want the clock's %v", rec.UpdatedAt, at)
	}
	stale, err := s.Stale(ctx, []progress.State{progress.StateReceived}, at.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 1 {
		t.Errorf("%d stale records a minute after the update on the clock, want 1", len(stale))
	}
	s.SetClock(nil) // back to time.Now
	rec, err = s.Update(ctx, "C0:p", func(r *progress.Record) error { r.PollCount++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(rec.UpdatedAt); d < 0 || d > time.Minute {
		t.Errorf("UpdatedAt %v after SetClock(nil), want about now", rec.UpdatedAt)
	}
}
