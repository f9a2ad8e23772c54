package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store/memory"
	"github.com/chromeos-certprov/adapter/shared/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) storetest.Store { return memory.New() })
}

func TestStatsAndFaults(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	rec := &progress.Record{Key: "c:p", State: progress.StateReceived}
	if _, err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	s.Get(ctx, "c:p")
	s.Update(ctx, "c:p", func(*progress.Record) error { return nil })
	s.Update(ctx, "c:p", func(*progress.Record) error { return errors.New("no") })
	if got, want := s.Stats(), (memory.Stats{Reads: 3, Writes: 2, Transactions: 2, Aborted: 1}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	boom := errors.New("store down")
	s.SetFault(func(op, _ string) error {
		if op == "update" {
			return boom
		}
		return nil
	})
	if _, err := s.Update(ctx, "c:p", func(*progress.Record) error { return nil }); !errors.Is(err, boom) {
		t.Errorf("Update with a fault: %v", err)
	}
	if _, err := s.Peek(ctx, "c:p"); err != nil || s.Stats().Reads != 3 {
		t.Errorf("Peek counted or failed: %v", err)
	}
}

func BenchmarkTransition(b *testing.B) {
	ctx := context.Background()
	s := memory.New()
	s.Create(ctx, &progress.Record{Key: "c:p", State: progress.StatePolling})
	now := time.Now()
	for b.Loop() {
		if _, err := progress.Transition(ctx, s, "c:p", []progress.State{progress.StatePolling}, progress.StatePolling, now, time.Hour, func(r *progress.Record) error {
			r.PollCount++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
