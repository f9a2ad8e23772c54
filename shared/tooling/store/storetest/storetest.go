// Package storetest is the conformance suite every progress store passes (the
// memory store and the Firestore store on its emulator), so that the pipeline
// sees the same semantics in tests, in the local run and in production; and
// the store benchmarks, so their costs can be compared.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
)

// Store is the conformance target: the store interface the pipeline declares.
type Store interface {
	Get(ctx context.Context, key string) (*progress.Record, error)
	Create(ctx context.Context, rec *progress.Record) (*progress.Record, error)
	Update(ctx context.Context, key string, fn func(r *progress.Record) error) (*progress.Record, error)
	// Stale is the query of the stale-process sweep (pipeline.Store.Stale).
	Stale(ctx context.Context, states []progress.State, before time.Time, limit int) ([]*progress.Record, error)
}

// statser is implemented by stores that count their operations.
type statser interface{ Stats() store.Stats }

// Run runs the conformance suite as subtests of t. newStore returns an empty
// store for one subtest (for a shared backend: one whose keys no other
// subtest sees).
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"CreateDefaults", testCreateDefaults},
		{"CreateExists", testCreateExists},
		{"GetMissing", testGetMissing},
		{"UpdateMissing", testUpdateMissing},
		{"Update", testUpdate},
		{"UpdateKeepsCallerUpdatedAt", testUpdateKeepsCallerUpdatedAt},
		{"UpdateFnError", testUpdateFnError},
		{"InvalidKey", testInvalidKey},
		{"TransitionStateMismatch", testTransitionStateMismatch},
		{"TransitionTerminal", testTransitionTerminal},
		{"ConcurrentTransitions", testConcurrentTransitions},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"Stats", testStats},
		{"Stale", testStale},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var (
	// base has nanoseconds and a zone, both of which a store must normalise.
	zone = time.FixedZone("IST", 5*3600+1800)
	base = time.Date(2026, 3, 14, 15, 9, 26, 535897932, zone)
)

// Full returns a record for key with every field set (times with nanoseconds,
// in a zone other than UTC). The suite checks that no field is left zero, so
// a field added to progress.Record must be added here.
func Full(key string) *progress.Record {
	exp := base.Add(30 * 24 * time.Hour)
	return &progress.Record{
		Key:                  key,
		Customer:             "C0abc123",
		ProcessID:            "proc-1",
		ProcessName:          "customers/C0abc123/certificateProvisioningProcesses/proc-1",
		State:                progress.StateSigned,
		Version:              7, // Create resets it to 1
		CreatedAt:            base,
		UpdatedAt:            base.Add(time.Second + 1),
		History:              []progress.Change{{From: progress.StateReceived, To: progress.StateClaimed, At: base.Add(1)}, {From: progress.StateClaimed, To: progress.StateSigned, At: base.Add(2*time.Second + 999)}},
		DeviceID:             "dev-5f1c",
		DeviceSerial:         "5CD1234XYZ",
		UserEmail:            "ada@example.com",
		CAConnectionRef:      "scep-main",
		ProfileRef:           "wifi",
		SPKI:                 []byte{0x30, 0x59, 0x30, 0x13, 0x06, 0x07},
		KeyType:              "EC-P256",
		SignatureAlgorithm:   "SIGNATURE_ALGORITHM_ECDSA_SHA256",
		SignData:             []byte{0x30, 0x82, 0x01, 0x0a, 0x00, 0xff},
		SignDataCalls:        1,
		OperationName:        "operations/op-1",
		ProcessStart:         base.Add(-time.Minute + 7),
		Deadline:             base.Add(time.Hour + 3),
		PollCount:            4,
		NextPollAt:           base.Add(time.Minute + 5),
		SignedAt:             base.Add(2*time.Minute + 6),
		CSR:                  []byte{0x30, 0x82, 0x02, 0x00, 0x01},
		ChallengeExpiresAt:   base.Add(time.Hour + 7),
		RequestID:            "0f3c6a7e-1b2d-4e5f-8a9b-0c1d2e3f4a5b",
		IssueAttempts:        2,
		CertificatePEM:       "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		IssuedAt:             base.Add(3*time.Minute + 8),
		CertificateSerial:    "1234ABCD",
		CertificateSubject:   "CN=5CD1234XYZ",
		CertificateNotBefore: base.Add(3*time.Minute + 9),
		CertificateNotAfter:  base.Add(720*time.Hour + 10),
		CADuration:           1234567891 * time.Nanosecond,
		UploadedAt:           base.Add(4*time.Minute + 9),
		LeaseUntil:           base.Add(5*time.Minute + 10),
		LeaseHolder:          "issue-7f3a",
		Attempts:             3,
		Sweeps:               1,
		ReportHandoffs:       2,
		LastError:            "ca: transient: try later",
		FailureMessage:       "the CA refused the request",
		FailureReported:      true,
		ExpireAt:             &exp,
	}
}

// normalized is what a store keeps of r: r with Version v and every time
// (found by reflection, so a new time field is covered) in UTC to the
// microsecond. It is written independently of store.Normalize on purpose.
func normalized(r *progress.Record, v int64) *progress.Record {
	c := r.Clone()
	c.Version = v
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		case reflect.Struct:
			if t, ok := v.Interface().(time.Time); ok {
				if !t.IsZero() {
					v.Set(reflect.ValueOf(t.UTC().Truncate(time.Microsecond)))
				}
				return
			}
			for i := 0; i < v.NumField(); i++ {
				walk(v.Field(i))
			}
		}
	}
	walk(reflect.ValueOf(c))
	return c
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func mustCreate(t testing.TB, s Store, r *progress.Record) *progress.Record {
	t.Helper()
	got, err := s.Create(ctx(t), r)
	if err != nil {
		t.Fatalf("Create(%s): %v", r.Key, err)
	}
	return got
}

func mustGet(t testing.TB, s Store, key string) *progress.Record {
	t.Helper()
	got, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return got
}

func testRoundTrip(t *testing.T, s Store) {
	in := Full(progress.Key("C0abc123", "proc-1"))
	v := reflect.ValueOf(in).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Type().Field(i); f.Name != "Version" && v.Field(i).IsZero() {
			t.Fatalf("storetest.Full leaves Record.%s zero: set it so the round trip covers it", f.Name)
		}
	}
	orig := in.Clone()
	want := normalized(in, 1)

	created := mustCreate(t, s, in)
	if diff := cmp.Diff(orig, in); diff != "" {
		t.Errorf("Create changed its argument (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("Create returned (-want +got):\n%s", diff)
	}
	got := mustGet(t, s, in.Key)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get after Create (-want +got):\n%s", diff)
	}
	if got.ExpireAt == in.ExpireAt || got.ExpireAt == created.ExpireAt {
		t.Errorf("Get returned the caller's ExpireAt pointer")
	}
	if got.CADuration != 1234567891*time.Nanosecond {
		t.Errorf("CADuration = %d, want 1234567891 (nanoseconds survive)", got.CADuration)
	}

	// What the store returned and what it was given are copies.
	in.SPKI[0], in.History[0].To, *in.ExpireAt = 0, progress.StateFailed, time.Time{}
	created.SPKI[0], created.History[0].To, created.CSR[0] = 0, progress.StateFailed, 0
	got.SignData[0], got.History[1].At = 0, time.Time{}
	if diff := cmp.Diff(want, mustGet(t, s, in.Key)); diff != "" {
		t.Errorf("record changed through a returned or given copy (-want +got):\n%s", diff)
	}
}

func testCreateDefaults(t *testing.T, s Store) {
	in := &progress.Record{Key: progress.Key("C1", "p-defaults"), Customer: "C1", ProcessID: "p-defaults", State: progress.StateReceived, Version: 9, History: []progress.Change{}, SPKI: []byte{}}
	before := time.Now().UTC().Truncate(time.Microsecond)
	created := mustCreate(t, s, in)
	after := time.Now().UTC()
	if created.Version != 1 {
		t.Errorf("Version = %d, want 1", created.Version)
	}
	if created.UpdatedAt.Before(before) || created.UpdatedAt.After(after) {
		t.Errorf("UpdatedAt = %v, want the time of Create, in [%v, %v]", created.UpdatedAt, before, after)
	}
	want := &progress.Record{Key: in.Key, Customer: "C1", ProcessID: "p-defaults", State: progress.StateReceived, Version: 1, UpdatedAt: created.UpdatedAt}
	// Exact: empty slices come back nil, zero times zero, ExpireAt nil.
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("Create returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustGet(t, s, in.Key)); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
}

func testCreateExists(t *testing.T, s Store) {
	key := progress.Key("C1", "p-exists")
	first := mustCreate(t, s, &progress.Record{Key: key, State: progress.StateReceived, Attempts: 1})
	_, err := s.Create(ctx(t), &progress.Record{Key: key, State: progress.StateClaimed, Attempts: 2})
	if !errors.Is(err, progress.ErrExists) {
		t.Fatalf("second Create: err = %v, want ErrExists", err)
	}
	if store.Transient(err) {
		t.Errorf("store.Transient(%v) = true, want false", err)
	}
	if diff := cmp.Diff(first, mustGet(t, s, key)); diff != "" {
		t.Errorf("record after the refused Create (-want +got):\n%s", diff)
	}
}

func testGetMissing(t *testing.T, s Store) {
	rec, err := s.Get(ctx(t), progress.Key("C1", "nobody"))
	if !errors.Is(err, progress.ErrNotFound) || rec != nil {
		t.Fatalf("Get(missing) = %v, %v; want nil, ErrNotFound", rec, err)
	}
	if store.Transient(err) {
		t.Errorf("store.Transient(%v) = true, want false", err)
	}
}

func testUpdateMissing(t *testing.T, s Store) {
	called := false
	rec, err := s.Update(ctx(t), progress.Key("C1", "nobody"), func(r *progress.Record) error {
		called = true
		return nil
	})
	if !errors.Is(err, progress.ErrNotFound) || rec != nil {
		t.Fatalf("Update(missing) = %v, %v; want nil, ErrNotFound", rec, err)
	}
	if called {
		t.Errorf("Update(missing) called fn")
	}
	if _, err := s.Get(ctx(t), progress.Key("C1", "nobody")); !errors.Is(err, progress.ErrNotFound) {
		t.Errorf("Get after Update(missing): err = %v, want ErrNotFound (Update must not create)", err)
	}
}

func testUpdate(t *testing.T, s Store) {
	key := progress.Key("C1", "p-update")
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	created := mustCreate(t, s, &progress.Record{Key: key, State: progress.StateReceived, CreatedAt: old, UpdatedAt: old})

	before := time.Now().UTC().Truncate(time.Microsecond)
	var seen *progress.Record
	got, err := s.Update(ctx(t), key, func(r *progress.Record) error {
		seen = r.Clone()
		r.Attempts++
		r.LastError = "x"
		r.SignData = []byte{1, 2, 3}
		r.NextPollAt = base
		return nil
	})
	after := time.Now().UTC()
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if diff := cmp.Diff(created, seen); diff != "" {
		t.Errorf("fn saw (-stored +seen):\n%s", diff)
	}
	if got.Version != 2 {
		t.Errorf("Version = %d, want 2", got.Version)
	}
	if got.UpdatedAt.Before(before) || got.UpdatedAt.After(after) {
		t.Errorf("UpdatedAt = %v, want the time of Update, in [%v, %v]", got.UpdatedAt, before, after)
	}
	want := &progress.Record{Key: key, State: progress.StateReceived, Version: 2, CreatedAt: old, UpdatedAt: got.UpdatedAt, Attempts: 1, LastError: "x", SignData: []byte{1, 2, 3}, NextPollAt: base.UTC().Truncate(time.Microsecond)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Update returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustGet(t, s, key)); diff != "" {
		t.Errorf("Get after Update (-want +got):\n%s", diff)
	}
	got.SignData[0] = 9
	if diff := cmp.Diff(want, mustGet(t, s, key)); diff != "" {
		t.Errorf("record changed through Update's result (-want +got):\n%s", diff)
	}
}

// testUpdateKeepsCallerUpdatedAt: a pipeline with an injected clock sets
// UpdatedAt itself; the store keeps it.
func testUpdateKeepsCallerUpdatedAt(t *testing.T, s Store) {
	key := progress.Key("C1", "p-clock")
	mustCreate(t, s, &progress.Record{Key: key, State: progress.StateReceived, UpdatedAt: base})
	at := base.Add(time.Hour + 123)
	got, err := s.Update(ctx(t), key, func(r *progress.Record) error { r.UpdatedAt = at; return nil })
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if want := at.UTC().Truncate(time.Microsecond); !got.UpdatedAt.Equal(want) || !mustGet(t, s, key).UpdatedAt.Equal(want) {
		t.Errorf("UpdatedAt = %v, want fn's %v", got.UpdatedAt, want)
	}
}

type customError struct{ code int }

func (e *customError) Error() string { return fmt.Sprintf("custom %d", e.code) }

func testUpdateFnError(t *testing.T, s Store) {
	sentinel := errors.New("nothing to do")
	for _, tc := range []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"sentinel", sentinel, func(err error) bool { return errors.Is(err, sentinel) }},
		{"wrapped sentinel", fmt.Errorf("step: %w", sentinel), func(err error) bool { return errors.Is(err, sentinel) }},
		{"typed", &customError{7}, func(err error) bool {
			var ce *customError
			return errors.As(err, &ce) && ce.code == 7
		}},
		{"context", context.Canceled, func(err error) bool { return errors.Is(err, context.Canceled) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := progress.Key("C1", "p-fnerr-"+strings.ReplaceAll(tc.name, " ", "-"))
			created := mustCreate(t, s, &progress.Record{Key: key, State: progress.StateReceived, Attempts: 5})
			rec, err := s.Update(ctx(t), key, func(r *progress.Record) error {
				r.Attempts = 99
				r.State = progress.StateFailed
				r.CSR = []byte{1}
				return tc.err
			})
			if rec != nil || !tc.check(err) {
				t.Fatalf("Update = %v, %v; want nil and fn's error %v", rec, err, tc.err)
			}
			if diff := cmp.Diff(created, mustGet(t, s, key)); diff != "" {
				t.Errorf("fn's error still wrote (-want +got):\n%s", diff)
			}
		})
	}
}

func testInvalidKey(t *testing.T, s Store) {
	for _, key := range []string{"", "a/b", "..", "__x__"} {
		noop := func(*progress.Record) error { return nil }
		errs := map[string]error{}
		_, errs["Create"] = s.Create(ctx(t), &progress.Record{Key: key, State: progress.StateReceived})
		_, errs["Get"] = s.Get(ctx(t), key)
		_, errs["Update"] = s.Update(ctx(t), key, noop)
		for op, err := range errs {
			var se *store.Error
			if !errors.As(err, &se) || se.Transient {
				t.Errorf("%s(%q): err = %v, want a permanent *store.Error", op, key, err)
			}
		}
	}
}

func testTransitionStateMismatch(t *testing.T, s Store) {
	key := progress.Key("C1", "p-mismatch")
	created := mustCreate(t, s, &progress.Record{Key: key, State: progress.StateClaimed})
	mutated := false
	rec, err := progress.Transition(ctx(t), s, key, []progress.State{progress.StateReceived}, progress.StateClaimed, base, time.Hour, func(r *progress.Record) error {
		mutated = true
		return nil
	})
	var se *progress.StateError
	if !errors.As(err, &se) || rec != nil {
		t.Fatalf("Transition from RECEIVED of a CLAIMED record = %v, %v; want *progress.StateError", rec, err)
	}
	if mutated {
		t.Errorf("mutate ran although the state did not match")
	}
	if diff := cmp.Diff(created, se.Current); diff != "" {
		t.Errorf("StateError.Current (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(created, mustGet(t, s, key)); diff != "" {
		t.Errorf("record changed (-want +got):\n%s", diff)
	}
}

func testTransitionTerminal(t *testing.T, s Store) {
	key := progress.Key("C1", "p-terminal")
	mustCreate(t, s, &progress.Record{Key: key, State: progress.StateIssued, LeaseUntil: base.Add(time.Minute)})
	now := base.Add(time.Hour)
	const ttl = 30 * 24 * time.Hour
	got, err := progress.Transition(ctx(t), s, key, []progress.State{progress.StateIssued}, progress.StateUploaded, now, ttl, func(r *progress.Record) error {
		r.UploadedAt = now
		return nil
	})
	if err != nil {
		t.Fatalf("Transition: %v", err)
	}
	wantExp := now.Add(ttl).UTC().Truncate(time.Microsecond)
	if got.ExpireAt == nil || !got.ExpireAt.Equal(wantExp) {
		t.Errorf("ExpireAt = %v, want %v", got.ExpireAt, wantExp)
	}
	want := &progress.Record{
		Key: key, State: progress.StateUploaded, Version: 2, UpdatedAt: got.UpdatedAt,
		History:    []progress.Change{{From: progress.StateIssued, To: progress.StateUploaded, At: now.UTC().Truncate(time.Microsecond)}},
		UploadedAt: now.UTC().Truncate(time.Microsecond), ExpireAt: &wantExp,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Transition returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustGet(t, s, key)); diff != "" {
		t.Errorf("Get after Transition (-want +got):\n%s", diff)
	}
}

// retry calls f until it returns an error that is not store.Transient, as the
// queue redelivers a task whose handler met a transient store failure; it
// returns the last error and the number of transient failures.
func retry(f func() error) (error, int) {
	var err error
	for n := 0; n < 20; n++ {
		if err = f(); !store.Transient(err) {
			return err, n
		}
	}
	return err, 20
}

func testConcurrentTransitions(t *testing.T, s Store) {
	const n = 8
	key := progress.Key("C1", "p-race")
	mustCreate(t, s, &progress.Record{Key: key, State: progress.StateReceived})
	var (
		wg              sync.WaitGroup
		wins, stateErrs atomic.Int64
		transient       atomic.Int64
		errs            = make(chan error, n)
		start           = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			err, tr := retry(func() error {
				_, err := progress.Transition(ctx(t), s, key, []progress.State{progress.StateReceived}, progress.StateClaimed, base, time.Hour, func(r *progress.Record) error {
					r.OperationName = fmt.Sprintf("winner-%d", i)
					return nil
				})
				return err
			})
			transient.Add(int64(tr))
			var se *progress.StateError
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &se) && se.Current.State == progress.StateClaimed:
				stateErrs.Add(1)
			default:
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Transition: unexpected error %v", err)
	}
	if wins.Load() != 1 || stateErrs.Load() != n-1 {
		t.Errorf("%d goroutines moving RECEIVED->CLAIMED: %d won, %d got StateError; want 1 and %d", n, wins.Load(), stateErrs.Load(), n-1)
	}
	got := mustGet(t, s, key)
	if got.Version != 2 || got.State != progress.StateClaimed || len(got.History) != 1 {
		t.Errorf("after the race: Version %d, State %s, %d history entries; want 2, CLAIMED, 1", got.Version, got.State, len(got.History))
	}
	logStats(t, s, transient.Load())
}

func testConcurrentIncrements(t *testing.T, s Store) {
	const n = 16
	key := progress.Key("C1", "p-counter")
	mustCreate(t, s, &progress.Record{Key: key, State: progress.StatePolling})
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		seen      []int
		transient atomic.Int64
		start     = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-start
			var rec *progress.Record
			err, tr := retry(func() error {
				var err error
				rec, err = s.Update(ctx(t), key, func(r *progress.Record) error {
					r.PollCount++
					return nil
				})
				return err
			})
			transient.Add(int64(tr))
			if err != nil {
				t.Errorf("Update: %v", err)
				return
			}
			mu.Lock()
			seen = append(seen, rec.PollCount)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	got := mustGet(t, s, key)
	if got.PollCount != n || got.Version != n+1 {
		t.Errorf("after %d concurrent increments: PollCount %d, Version %d; want %d, %d", n, got.PollCount, got.Version, n, n+1)
	}
	// Each update saw a different value: none was lost or applied twice.
	slices.Sort(seen)
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("values returned by the updates (-want +got):\n%s", diff)
	}
	logStats(t, s, transient.Load())
}

func testStats(t *testing.T, s Store) {
	st, ok := s.(statser)
	if !ok {
		t.Skip("store does not count operations (no Stats() store.Stats)")
	}
	key := progress.Key("C1", "p-stats")
	noop := func(*progress.Record) error { return nil }
	fail := func(*progress.Record) error { return errors.New("no") }
	for _, step := range []struct {
		name string
		do   func() error
		want store.Stats
	}{
		{"create", func() error {
			_, err := s.Create(ctx(t), &progress.Record{Key: key, State: progress.StateReceived})
			return err
		}, store.Stats{Writes: 1}},
		{"create existing", func() error {
			_, err := s.Create(ctx(t), &progress.Record{Key: key})
			return ignore(err, progress.ErrExists)
		}, store.Stats{}},
		{"get", func() error { _, err := s.Get(ctx(t), key); return err }, store.Stats{Reads: 1}},
		{"get missing", func() error { _, err := s.Get(ctx(t), key+"x"); return ignore(err, progress.ErrNotFound) }, store.Stats{Reads: 1}},
		{"update", func() error { _, err := s.Update(ctx(t), key, noop); return err }, store.Stats{Reads: 1, Writes: 1, Transactions: 1}},
		{"update fn error", func() error { _, err := s.Update(ctx(t), key, fail); return ignore(err, nil) }, store.Stats{Reads: 1, Transactions: 1, Aborted: 1}},
		{"update missing", func() error { _, err := s.Update(ctx(t), key+"x", noop); return ignore(err, progress.ErrNotFound) }, store.Stats{Reads: 1, Transactions: 1, Aborted: 1}},
	} {
		before := st.Stats()
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if diff := cmp.Diff(step.want, st.Stats().Sub(before)); diff != "" {
			t.Errorf("%s: counted (-want +got):\n%s", step.name, diff)
		}
	}
}

func testStale(t *testing.T, s Store) {
	// Whole seconds: the stores keep microseconds, and the query compares.
	t0 := base.Truncate(time.Second)
	open := []progress.State{progress.StateSigning, progress.StatePolling, progress.StateFailing}
	for _, r := range []struct {
		id    string
		state progress.State
		at    time.Duration // UpdatedAt after base
	}{
		{"polling-old", progress.StatePolling, 0},
		{"signing", progress.StateSigning, time.Minute},
		{"uploaded-old", progress.StateUploaded, 0},              // finished: never stale
		{"claimed-old", progress.StateClaimed, 0},                // not among the states asked for
		{"polling-recent", progress.StatePolling, 2 * time.Hour}, // updated since
		{"failing", progress.StateFailing, 30 * time.Minute},
	} {
		rec := &progress.Record{Key: progress.Key("C1", r.id), State: r.state, CreatedAt: t0, UpdatedAt: t0.Add(r.at)}
		if _, err := s.Create(ctx(t), rec); err != nil {
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
	for _, tc := range []struct {
		name   string
		before time.Time
		limit  int
		want   []string
	}{
		{"oldest first", t0.Add(time.Hour), 10, []string{progress.Key("C1", "polling-old"), progress.Key("C1", "signing"), progress.Key("C1", "failing")}},
		{"limited", t0.Add(time.Hour), 2, []string{progress.Key("C1", "polling-old"), progress.Key("C1", "signing")}},
		{"strictly before", t0.Add(time.Minute), 10, []string{progress.Key("C1", "polling-old")}},
		{"none", t0, 10, []string{}},
	} {
		got, err := s.Stale(ctx(t), open, tc.before, tc.limit)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, keys(got)); diff != "" {
			t.Errorf("%s: stale records (-want +got):\n%s", tc.name, diff)
		}
		for _, r := range got {
			if r.Version != 1 || r.CreatedAt.IsZero() {
				t.Errorf("%s: %s came back without its fields: %+v", tc.name, r.Key, r)
			}
		}
	}
	if _, err := s.Stale(ctx(t), open, t0.Add(time.Hour), 0); err == nil {
		t.Error("a limit of 0 was accepted")
	}
	if st, ok := s.(statser); ok {
		before := st.Stats()
		if _, err := s.Stale(ctx(t), open, t0.Add(time.Hour), 10); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stale(ctx(t), open, t0, 10); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(store.Stats{Reads: 3 + 1}, st.Stats().Sub(before)); diff != "" {
			t.Errorf("stale queries counted (-want +got; one read per record, one for an empty answer):\n%s", diff)
		}
	}
}

// ignore returns nil if err is target (or, for a nil target, any error), and
// otherwise an error saying what was wanted.
func ignore(err, target error) error {
	if err != nil && (target == nil || errors.Is(err, target)) {
		return nil
	}
	return fmt.Errorf("err = %v, want %v", err, target)
}

// BenchmarkTransition measures one progress.Transition (RECEIVED -> CLAIMED
// with a small mutation) per iteration, each on its own record, created
// beforehand outside the timer. For stores with counters it reports reads
// and writes per transition.
func BenchmarkTransition(b *testing.B, s Store) {
	keys := seed(b, s)
	b.ResetTimer()
	before := stats(s)
	for i := 0; i < b.N; i++ {
		if err := transition(s, keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	report(b, s, before)
}

// BenchmarkTransitionParallel is BenchmarkTransition from GOMAXPROCS
// goroutines (b.SetParallelism raises that), on distinct records.
func BenchmarkTransitionParallel(b *testing.B, s Store) {
	keys := seed(b, s)
	var next atomic.Int64
	b.ResetTimer()
	before := stats(s)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := transition(s, keys[next.Add(1)-1]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	report(b, s, before)
}

var benchRun atomic.Int64

func seed(b *testing.B, s Store) []string {
	b.Helper()
	run := benchRun.Add(1)
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = progress.Key("bench", fmt.Sprintf("r%d-%d", run, i))
		now := time.Now()
		if _, err := s.Create(context.Background(), &progress.Record{Key: keys[i], Customer: "bench", State: progress.StateReceived, CreatedAt: now, UpdatedAt: now, SPKI: make([]byte, 91)}); err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
	return keys
}

func transition(s Store, key string) error {
	now := time.Now()
	_, err := progress.Transition(context.Background(), s, key, []progress.State{progress.StateReceived}, progress.StateClaimed, now, time.Hour, func(r *progress.Record) error {
		r.Attempts++
		r.UpdatedAt = now
		return nil
	})
	return err
}

func stats(s Store) store.Stats {
	if st, ok := s.(statser); ok {
		return st.Stats()
	}
	return store.Stats{}
}

func report(b *testing.B, s Store, before store.Stats) {
	if _, ok := s.(statser); !ok || b.N == 0 {
		return
	}
	d := stats(s).Sub(before)
	b.ReportMetric(float64(d.Reads)/float64(b.N), "reads/op")
	b.ReportMetric(float64(d.Writes)/float64(b.N), "writes/op")
	b.ReportMetric(float64(d.Conflicts)/float64(b.N), "conflicts/op")
}

func logStats(t *testing.T, s Store, transient int64) {
	if st, ok := s.(statser); ok {
		t.Logf("%d transient store failures retried; store stats %+v", transient, st.Stats())
	} else {
		t.Logf("%d transient store failures retried", transient)
	}
}
