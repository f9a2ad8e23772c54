// Package storetest is the conformance suite every progress store passes: the
// in-memory one of the local run and the Firestore one of production run the
// same cases, so results from one hold for the other.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// Store is what the pipeline needs of a store.
type Store interface {
	Get(ctx context.Context, key string) (*progress.Record, error)
	Create(ctx context.Context, rec *progress.Record) (*progress.Record, error)
	Update(ctx context.Context, key string, fn func(r *progress.Record) error) (*progress.Record, error)
}

var seq struct {
	sync.Mutex
	n int
}

func uniqueKey(t *testing.T) string {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return fmt.Sprintf("C0conf:%d-%d", time.Now().UnixNano(), seq.n)
}

// full is a record with every field set, at microsecond precision.
func full(key string) *progress.Record {
	at := time.Date(2026, 11, 22, 10, 11, 12, 123456000, time.UTC)
	exp := at.Add(720 * time.Hour)
	return &progress.Record{
		Key: key, Customer: "C0conf", ProcessID: "p", ProcessName: "customers/C0conf/certificateProvisioningProcesses/p",
		State: progress.StateIssued, CreatedAt: at, UpdatedAt: at,
		History:         []progress.Change{{To: progress.StateReceived, At: at}, {From: progress.StateReceived, To: progress.StateClaimed, At: at.Add(time.Second)}},
		CAConnectionRef: "ca", ProfileRef: "profile", SPKI: []byte{0x30, 0x01, 0x02}, KeyType: "EC-P256",
		SignatureAlgorithm: "SIGNATURE_ALGORITHM_ECDSA_SHA256", SignData: []byte("cri"), SignDataCalls: 1,
		OperationName: "op", Deadline: at.Add(time.Hour), PollCount: 3, NextPollAt: at.Add(time.Minute),
		SignedAt: at.Add(2 * time.Minute), ChallengeExpiresAt: at.Add(time.Hour), CSR: []byte("csr"), RequestID: "rid",
		IssueAttempts: 2, CertificatePEM: "-----BEGIN CERTIFICATE-----", IssuedAt: at.Add(3 * time.Minute),
		CADuration: 1500 * time.Millisecond, UploadedAt: at.Add(4 * time.Minute), LeaseUntil: at.Add(5 * time.Minute),
		Attempts: 4, LastError: "e", FailureMessage: "m", FailureReported: true, ExpireAt: &exp,
	}
}

// Run runs the suite; newStore returns an empty store for each case.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		rec := full(uniqueKey(t))
		created, err := s.Create(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, rec.Key)
		if err != nil {
			t.Fatal(err)
		}
		want := rec.Clone()
		want.Version = 1
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Get after Create (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(created, got); diff != "" {
			t.Errorf("Create's result differs from Get (-create +get):\n%s", diff)
		}
	})
	t.Run("NilExpireAtStaysNil", func(t *testing.T) {
		s := newStore(t)
		rec := full(uniqueKey(t))
		rec.ExpireAt = nil
		if _, err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, rec.Key)
		if err != nil || got.ExpireAt != nil {
			t.Errorf("ExpireAt = %v (err %v), want nil", got.ExpireAt, err)
		}
	})
	t.Run("CreateTwice", func(t *testing.T) {
		s := newStore(t)
		rec := full(uniqueKey(t))
		if _, err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, rec); !errors.Is(err, progress.ErrExists) {
			t.Errorf("second Create: %v, want ErrExists", err)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		k := uniqueKey(t)
		if _, err := s.Get(ctx, k); !errors.Is(err, progress.ErrNotFound) {
			t.Errorf("Get: %v, want ErrNotFound", err)
		}
		called := false
		if _, err := s.Update(ctx, k, func(*progress.Record) error { called = true; return nil }); !errors.Is(err, progress.ErrNotFound) || called {
			t.Errorf("Update: %v (fn called %v), want ErrNotFound without calling fn", err, called)
		}
	})
	t.Run("UpdateVersionsAndStamps", func(t *testing.T) {
		s := newStore(t)
		rec := full(uniqueKey(t))
		if _, err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		got, err := s.Update(ctx, rec.Key, func(r *progress.Record) error { r.PollCount = 9; return nil })
		if err != nil {
			t.Fatal(err)
		}
		again, _ := s.Get(ctx, rec.Key)
		if got.Version != 2 || again.Version != 2 || again.PollCount != 9 || !again.UpdatedAt.After(rec.UpdatedAt) {
			t.Errorf("after Update: version %d/%d pollCount %d updatedAt %v; want 2, 9 and a later time", got.Version, again.Version, again.PollCount, again.UpdatedAt)
		}
	})
	t.Run("FnErrorWritesNothing", func(t *testing.T) {
		s := newStore(t)
		rec := full(uniqueKey(t))
		if _, err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		if _, err := s.Update(ctx, rec.Key, func(r *progress.Record) error { r.PollCount = 99; return boom }); !errors.Is(err, boom) {
			t.Errorf("Update: %v, want the fn's error", err)
		}
		got, _ := s.Get(ctx, rec.Key)
		if got.PollCount != rec.PollCount || got.Version != 1 {
			t.Errorf("an aborted update wrote: pollCount %d version %d", got.PollCount, got.Version)
		}
	})
	t.Run("TransitionCompareAndSet", func(t *testing.T) {
		s := newStore(t)
		rec := full(uniqueKey(t))
		rec.State = progress.StateReceived
		rec.ExpireAt = nil
		if _, err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = progress.Transition(ctx, s, rec.Key, []progress.State{progress.StateReceived}, progress.StateClaimed, time.Now(), time.Hour, nil)
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			var se *progress.StateError
			switch {
			case err == nil:
				wins++
			case errors.As(err, &se):
				if se.Current.State != progress.StateClaimed {
					t.Errorf("loser saw state %s, want CLAIMED", se.Current.State)
				}
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if wins != 1 {
			t.Errorf("%d concurrent transitions from RECEIVED won, want exactly 1", wins)
		}
	})
	t.Run("NoLostUpdate", func(t *testing.T) {
		s := newStore(t)
		rec := full(uniqueKey(t))
		rec.PollCount = 0
		if _, err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		const n = 10
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Update(ctx, rec.Key, func(r *progress.Record) error { r.PollCount++; return nil }); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, _ := s.Get(ctx, rec.Key)
		if got.PollCount != n || got.Version != n+1 {
			t.Errorf("after %d concurrent increments: pollCount %d version %d", n, got.PollCount, got.Version)
		}
	})
	t.Run("TerminalSetsTTL", func(t *testing.T) {
		s := newStore(t)
		rec := full(uniqueKey(t))
		rec.State, rec.ExpireAt = progress.StateIssued, nil
		if _, err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
		if _, err := progress.Transition(ctx, s, rec.Key, []progress.State{progress.StateIssued}, progress.StateUploaded, now, time.Hour, nil); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, rec.Key)
		if got.ExpireAt == nil || !got.ExpireAt.Equal(now.Add(time.Hour)) {
			t.Errorf("expireAt = %v, want %v", got.ExpireAt, now.Add(time.Hour))
		}
	})
}
