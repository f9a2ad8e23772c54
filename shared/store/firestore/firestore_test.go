package firestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gfirestore "cloud.google.com/go/firestore"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/storetest"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	envOnce sync.Once
	seq     atomic.Int64
	// project keeps this test binary's documents apart from other binaries
	// sharing an emulator.
	project = fmt.Sprintf("store-test-%d", os.Getpid())
)

// client returns a client for the emulator, opened through Open with
// FIRESTORE_EMULATOR_HOST set (as the functions run against it). When t ends
// it is closed and the project wiped (tests here run one at a time).
func client(t testing.TB) *gfirestore.Client {
	t.Helper()
	addr := testenv.Firestore(t)
	envOnce.Do(func() { os.Setenv("FIRESTORE_EMULATOR_HOST", addr) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := firestore.Open(ctx, project, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		testenv.WipeFirestore(t, addr, project)
	})
	return c
}

// collection is a collection name of its own for t.
func collection(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("progress-%d-%s", seq.Add(1), name)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return firestore.New(client(t), collection(t))
	})
}

// TestStoredDocument checks the document's field names and types as other
// tools (the console, TTL policy, queries) see them.
func TestStoredDocument(t *testing.T) {
	c := client(t)
	coll := collection(t)
	s := firestore.New(c, coll)
	ctx := context.Background()
	rec := storetest.Full(progress.Key("C9", "p-doc"))
	if _, err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	snap, err := c.Collection(coll).Doc(rec.Key).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := snap.Data()
	if _, ok := data["key"]; ok {
		t.Errorf("document has a key field; the key is the document id")
	}
	if _, ok := data["Key"]; ok {
		t.Errorf("document has a Key field; the key is the document id")
	}
	if got, ok := data["expireAt"].(time.Time); !ok || !got.Equal(rec.ExpireAt.Truncate(time.Microsecond)) {
		t.Errorf("expireAt = %#v, want a timestamp %v (the TTL field)", data["expireAt"], *rec.ExpireAt)
	}
	if got, ok := data["caDuration"].(int64); !ok || got != int64(rec.CADuration) {
		t.Errorf("caDuration = %#v, want int64 %d", data["caDuration"], int64(rec.CADuration))
	}
	if got, ok := data["spki"].([]byte); !ok || !cmp.Equal(got, rec.SPKI) {
		t.Errorf("spki = %#v, want bytes %x", data["spki"], rec.SPKI)
	}
	if got, ok := data["version"].(int64); !ok || got != 1 {
		t.Errorf("version = %#v, want int64 1", data["version"])
	}

	// A record that is not terminal has a null expireAt (no TTL).
	key := progress.Key("C9", "p-live")
	if _, err := s.Create(ctx, &progress.Record{Key: key, State: progress.StateReceived}); err != nil {
		t.Fatal(err)
	}
	snap, err = c.Collection(coll).Doc(key).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := snap.Data()["expireAt"]; !ok || v != nil {
		t.Errorf("expireAt of a live record = %#v (present %v), want null", v, ok)
	}
}

// TestUndecodable: a document the store cannot read is a permanent failure.
func TestUndecodable(t *testing.T) {
	c := client(t)
	coll := collection(t)
	s := firestore.New(c, coll)
	ctx := context.Background()
	for id, data := range map[string]map[string]any{
		"C1:wrong-type":  {"version": "one", "state": "RECEIVED"},
		"C1:no-version":  {"state": "RECEIVED"},
		"C1:bad-history": {"version": 1, "history": "x"},
	} {
		if _, err := c.Collection(coll).Doc(id).Set(ctx, data); err != nil {
			t.Fatal(err)
		}
		_, errGet := s.Get(ctx, id)
		_, errUpdate := s.Update(ctx, id, func(*progress.Record) error { return nil })
		for op, err := range map[string]error{"Get": errGet, "Update": errUpdate} {
			var se *store.Error
			if !errors.As(err, &se) || se.Transient {
				t.Errorf("%s(%s): err = %v, want a permanent *store.Error", op, id, err)
			}
			t.Logf("%s: %v", op, err)
		}
	}
}

// TestUnavailable: a backend that does not answer gives a transient error.
func TestUnavailable(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// Point the client at a port where nothing listens. The emulator variable
	// is process-wide, so build the client without it.
	client(t) // make sure the shared variable is set before it is swapped
	t.Setenv("FIRESTORE_EMULATOR_HOST", fmt.Sprintf("127.0.0.1:%d", port))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := firestore.Open(ctx, "unavailable", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := firestore.New(c, "progress")
	call := func(f func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return f(ctx)
	}
	errGet := call(func(ctx context.Context) error { _, err := s.Get(ctx, "C1:p1"); return err })
	errCreate := call(func(ctx context.Context) error { _, err := s.Create(ctx, &progress.Record{Key: "C1:p1"}); return err })
	errUpdate := call(func(ctx context.Context) error {
		_, err := s.Update(ctx, "C1:p1", func(*progress.Record) error { return nil })
		return err
	})
	for op, err := range map[string]error{"Get": errGet, "Create": errCreate, "Update": errUpdate} {
		if !store.Transient(err) {
			t.Errorf("%s against a closed port: err = %v, want transient", op, err)
		}
		t.Logf("%s: %v", op, err)
	}
}

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{status.Error(codes.Unavailable, "x"), true},
		{status.Error(codes.DeadlineExceeded, "x"), true},
		{status.Error(codes.Aborted, "x"), true},
		{status.Error(codes.ResourceExhausted, "x"), true},
		{status.Error(codes.Internal, "x"), true},
		{fmt.Errorf("wrapped: %w", status.Error(codes.Unavailable, "x")), true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{status.Error(codes.Canceled, "x"), false},
		{status.Error(codes.PermissionDenied, "x"), false},
		{status.Error(codes.InvalidArgument, "x"), false},
		{status.Error(codes.NotFound, "x"), false},
		{progress.ErrNotFound, false},
		{errors.New("plain"), false},
		{&store.Error{Transient: true, Err: errors.New("x")}, true},
		{fmt.Errorf("w: %w", &store.Error{Transient: false, Err: status.Error(codes.Unavailable, "x")}), false},
	} {
		if got := firestore.Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestContentionExhausted: with one attempt allowed, Updates that lose a race
// fail with a transient error and write nothing; with the default they all
// succeed (checked by the conformance suite).
func TestContentionExhausted(t *testing.T) {
	c := client(t)
	s := firestore.New(c, collection(t), firestore.MaxAttempts(1))
	ctx := context.Background()
	key := progress.Key("C1", "p-contention")
	if _, err := s.Create(ctx, &progress.Record{Key: key, State: progress.StatePolling}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var (
		wg            sync.WaitGroup
		ok, transient atomic.Int64
		start         = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-start
			_, err := s.Update(ctx, key, func(r *progress.Record) error {
				r.PollCount++
				return nil
			})
			switch {
			case err == nil:
				ok.Add(1)
			case store.Transient(err):
				transient.Add(1)
			default:
				t.Errorf("Update: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if int64(got.PollCount) != ok.Load() || ok.Load()+transient.Load() != n {
		t.Errorf("PollCount %d after %d successful and %d transient failures of %d Updates; want PollCount = successes", got.PollCount, ok.Load(), transient.Load(), n)
	}
	t.Logf("%d of %d Updates succeeded with one attempt, %d transient failures; stats %+v", ok.Load(), n, transient.Load(), s.Stats())
}

func BenchmarkTransition(b *testing.B) {
	storetest.BenchmarkTransition(b, firestore.New(client(b), collection(b)))
}

func BenchmarkTransitionParallel(b *testing.B) {
	storetest.BenchmarkTransitionParallel(b, firestore.New(client(b), collection(b)))
}
