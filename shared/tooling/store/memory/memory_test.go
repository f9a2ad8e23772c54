package memory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return memory.New() })
}

func TestFaultBefore(t *testing.T) {
	ctx := context.Background()
	errDown := errors.New("backend down")
	for _, tc := range []struct {
		name      string
		fault     error
		transient bool
	}{
		{"plain error is transient", errDown, true},
		{"store.Error keeps its class", &store.Error{Backend: "test", Err: errDown}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := memory.New()
			key := progress.Key("C1", "p1")
			if _, err := s.Create(ctx, &progress.Record{Key: key, State: progress.StateReceived}); err != nil {
				t.Fatal(err)
			}
			var calls []string
			s.SetFault(func(op, k string) error {
				calls = append(calls, op+" "+k)
				return tc.fault
			})
			before := s.Stats()
			fnCalled := false
			_, errGet := s.Get(ctx, key)
			_, errCreate := s.Create(ctx, &progress.Record{Key: progress.Key("C1", "p2")})
			_, errUpdate := s.Update(ctx, key, func(*progress.Record) error { fnCalled = true; return nil })
			for op, err := range map[string]error{"get": errGet, "create": errCreate, "update": errUpdate} {
				var se *store.Error
				if !errors.As(err, &se) || se.Op != op || !errors.Is(err, errDown) || store.Transient(err) != tc.transient {
					t.Errorf("%s: err = %v; want a *store.Error for %s wrapping %v, transient %v", op, err, op, errDown, tc.transient)
				}
			}
			if fnCalled {
				t.Errorf("Update ran fn although the fault refused it")
			}
			want := []string{"get C1:p1", "create C1:p2", "update C1:p1"}
			if diff := cmp.Diff(want, calls); diff != "" {
				t.Errorf("fault calls (-want +got):\n%s", diff)
			}
			// Peek (for observers) is neither faulted nor counted.
			if got, err := s.Peek(ctx, key); err != nil || got.Version != 1 {
				t.Errorf("Peek during the fault = %+v, %v; want the record", got, err)
			}
			if diff := cmp.Diff(store.Stats{}, s.Stats().Sub(before)); diff != "" {
				t.Errorf("refused operations or Peek counted (-want +got):\n%s", diff)
			}
			s.SetFault(nil)
			if _, err := s.Get(ctx, progress.Key("C1", "p2")); !errors.Is(err, progress.ErrNotFound) {
				t.Errorf("refused Create stored the record: Get err = %v", err)
			}
			if got, err := s.Get(ctx, key); err != nil || got.Version != 1 {
				t.Errorf("after refused Update: Get = %+v, %v; want Version 1", got, err)
			}
		})
	}
}

func TestFaultAfterCommit(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	crash := errors.New("crashed after the write")
	s.SetAfterCommitFault(func(op, key string) error { return crash })
	key := progress.Key("C1", "p1")

	if _, err := s.Create(ctx, &progress.Record{Key: key, State: progress.StateReceived}); !errors.Is(err, crash) || !store.Transient(err) {
		t.Fatalf("Create: err = %v, want transient %v", err, crash)
	}
	_, err := progress.Transition(ctx, s, key, []progress.State{progress.StateReceived}, progress.StateClaimed, time.Now(), time.Hour, nil)
	if !errors.Is(err, crash) {
		t.Fatalf("Transition: err = %v, want %v", err, crash)
	}
	// A failed Update (fn error) commits nothing, so the hook does not run.
	if _, err := s.Update(ctx, key, func(*progress.Record) error { return progress.ErrExists }); !errors.Is(err, progress.ErrExists) {
		t.Errorf("Update with fn error: err = %v, want fn's error", err)
	}
	s.SetAfterCommitFault(nil)

	// The writes happened: the redelivery finds the record moved on.
	got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != progress.StateClaimed || got.Version != 2 {
		t.Errorf("after the crashes: State %s Version %d; want CLAIMED 2", got.State, got.Version)
	}
	_, err = progress.Transition(ctx, s, key, []progress.State{progress.StateReceived}, progress.StateClaimed, time.Now(), time.Hour, nil)
	var se *progress.StateError
	if !errors.As(err, &se) {
		t.Errorf("redelivered Transition: err = %v, want *progress.StateError", err)
	}
	if diff := cmp.Diff(store.Stats{Reads: 4, Writes: 2, Transactions: 3, Aborted: 2}, s.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestConflictsCounted: Updates that wait for another Update of the same
// record count as conflicts; Updates of other records do not wait.
func TestConflictsCounted(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	for _, k := range []string{"a", "b"} {
		if _, err := s.Create(ctx, &progress.Record{Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := s.Update(ctx, "a", func(*progress.Record) error {
			close(inside)
			<-release
			return nil
		})
		done <- err
	}()
	<-inside
	// Another record and reads are not blocked by the Update in progress.
	if _, err := s.Update(ctx, "b", func(*progress.Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "a"); err != nil || got.Version != 1 {
		t.Fatalf("Get during Update = %+v, %v; want the committed Version 1", got, err)
	}
	if c := s.Stats().Conflicts; c != 0 {
		t.Errorf("Conflicts = %d before any contention, want 0", c)
	}
	go func() {
		_, err := s.Update(ctx, "a", func(*progress.Record) error { return nil })
		done <- err
	}()
	// The second Update of "a" counts its conflict before it blocks; wait for
	// that (no wall-clock assumption), then let the first finish.
	for s.Stats().Conflicts == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, "a")
	if err != nil || got.Version != 3 {
		t.Fatalf("Get = %+v, %v; want Version 3", got, err)
	}
	if c := s.Stats().Conflicts; c != 1 {
		t.Errorf("Conflicts = %d, want 1", c)
	}
}

// TestScale: tens of thousands of records created and advanced concurrently.
func TestScale(t *testing.T) {
	const (
		records = 50_000
		workers = 8
	)
	if testing.Short() {
		t.Skip("scale test")
	}
	ctx := context.Background()
	s := memory.New()
	key := func(i int) string { return progress.Key("C1", fmt.Sprintf("p%d", i)) }
	run := func(f func(i int) error) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < records; i += workers {
					if err := f(i); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	now := time.Now()
	run(func(i int) error {
		_, err := s.Create(ctx, &progress.Record{Key: key(i), State: progress.StateReceived, SPKI: make([]byte, 91)})
		return err
	})
	// Two goroutines race for every record, meeting it from opposite ends of
	// their work lists: each record moves exactly once.
	var (
		wg   sync.WaitGroup
		wins atomic.Int64
	)
	for g := range 2 {
		for w := range workers {
			wg.Go(func() {
				for i := w; i < records; i += workers {
					k := key(i)
					if g == 1 {
						k = key(records - 1 - i)
					}
					_, err := progress.Transition(ctx, s, k, []progress.State{progress.StateReceived}, progress.StateClaimed, now, time.Hour, nil)
					var se *progress.StateError
					switch {
					case err == nil:
						wins.Add(1)
					case !errors.As(err, &se):
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if s.Len() != records {
		t.Errorf("Len = %d, want %d", s.Len(), records)
	}
	if wins.Load() != records {
		t.Errorf("%d transitions won, want %d", wins.Load(), records)
	}
	for i := 0; i < records; i += 997 {
		got, err := s.Get(ctx, key(i))
		if err != nil || got.State != progress.StateClaimed || got.Version != 2 {
			t.Fatalf("Get(%s) = %+v, %v; want CLAIMED Version 2", key(i), got, err)
		}
	}
	if st := s.Stats(); st.Writes != 2*records || st.Transactions != 2*records || st.Aborted != records {
		t.Errorf("Stats = %+v; want %d writes, %d transactions, %d aborted", st, 2*records, 2*records, records)
	}
}

func BenchmarkTransition(b *testing.B) {
	storetest.BenchmarkTransition(b, memory.New())
}

func BenchmarkTransitionParallel(b *testing.B) {
	storetest.BenchmarkTransitionParallel(b, memory.New())
}

func TestQueries(t *testing.T) { storetest.RunQueries(t, memory.New()) }

func TestSaveLoad(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	for _, key := range []string{"C1:p1", "C1:p2"} {
		if _, err := s.Create(ctx, storetest.Full(key)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update(ctx, "C1:p2", func(r *progress.Record) error { r.PollCount++; return nil }); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(&buf); err != nil {
		t.Fatal(err)
	}
	loaded, err := memory.Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"C1:p1", "C1:p2"} {
		want, _ := s.Peek(ctx, key)
		got, err := loaded.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s after Save and Load (-saved +loaded):\n%s", key, diff)
		}
	}
	for _, tc := range []struct{ name, in, want string }{
		{"not JSON", "{", "load a memory store"},
		{"unknown field", `{"records":[],"extra":1}`, "unknown field"},
		{"bad key", `{"records":[{"key":"a/b"}]}`, "record 0"},
		{"twice", `{"records":[{"key":"C:p"},{"key":"C:p"}]}`, "key C:p twice"},
		{"null", `{"records":[null]}`, "record 0 is null"},
	} {
		if _, err := memory.Load(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

// TestCountsPerRecord: each record's reads and writes are counted apart
// (the load benchmark's cost per kind of client).
func TestCountsPerRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := memory.New()
	now := time.Now()
	a, b := progress.New("C1", "a", "n/a", now), progress.New("C1", "b", "n/b", now)
	for _, r := range []*progress.Record{a, b} {
		if _, err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, a.Key, func(*progress.Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key           string
		reads, writes int64
	}{{a.Key, 2, 2}, {b.Key, 0, 1}, {"C1:none", 0, 0}} {
		if r, w := s.Counts(tc.key); r != tc.reads || w != tc.writes {
			t.Errorf("Counts(%s) = %d reads, %d writes; want %d, %d", tc.key, r, w, tc.reads, tc.writes)
		}
	}
}
