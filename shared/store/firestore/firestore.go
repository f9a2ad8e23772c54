// Package firestore keeps progress records in Cloud Firestore: one document
// per process in one collection, keyed by progress.Key, every update a
// read-modify-write in a transaction, so that two deliveries of the same
// message cannot both advance a process.
//
// Records are stored as Firestore keeps them (store.Normalize: UTC times to
// the microsecond), so what Create and Update return equals what Get reads
// back later. Backend failures are *store.Error, classified transient or
// permanent by their gRPC code (see Transient).
package firestore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
)

// Stats counts operations as Firestore bills them (see store.Stats).
type Stats = store.Stats

// DefaultMaxAttempts is how many times Update tries its transaction when it
// meets contention (the client library's default). Transactions on one
// document serialise; a delivery that loses a race finds the record moved on
// and stops, so contention is short-lived.
const DefaultMaxAttempts = firestore.DefaultTransactionMaxAttempts

// Store is a progress store on one Firestore collection. It is safe for
// concurrent use.
type Store struct {
	client      *firestore.Client
	coll        *firestore.CollectionRef
	maxAttempts int

	reads, writes, txns, conflicts, aborted atomic.Int64
}

// Option configures a Store.
type Option func(*Store)

// MaxAttempts sets how many times Update tries its transaction on contention
// (n < 1: DefaultMaxAttempts). When all fail, Update returns a transient
// *store.Error (code Aborted).
func MaxAttempts(n int) Option {
	return func(s *Store) {
		if n < 1 {
			n = DefaultMaxAttempts
		}
		s.maxAttempts = n
	}
}

// New returns a store on client's collection. The caller keeps ownership of
// client (and closes it).
func New(client *firestore.Client, collection string, opts ...Option) *Store {
	s := &Store{client: client, coll: client.Collection(collection), maxAttempts: DefaultMaxAttempts}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Open returns a Firestore client for database ("" or "(default)": the
// default database) of project. When FIRESTORE_EMULATOR_HOST is set the
// client library talks to that emulator, without credentials.
func Open(ctx context.Context, project, database string, opts ...option.ClientOption) (*firestore.Client, error) {
	if database == "" {
		database = firestore.DefaultDatabaseID
	}
	c, err := firestore.NewClientWithDatabase(ctx, project, database, opts...)
	if err != nil {
		return nil, fmt.Errorf("firestore client for project %s database %s: %w", project, database, err)
	}
	return c, nil
}

// Stats returns the counters (operations made through this store).
func (s *Store) Stats() Stats {
	return Stats{
		Reads:        s.reads.Load(),
		Writes:       s.writes.Load(),
		Transactions: s.txns.Load(),
		Conflicts:    s.conflicts.Load(),
		Aborted:      s.aborted.Load(),
	}
}

// Transient reports whether err is worth retrying: a *store.Error marked
// transient, or an error carrying one of the gRPC codes Unavailable,
// DeadlineExceeded, Aborted, ResourceExhausted or Internal, or
// context.DeadlineExceeded. Canceled is not transient: the caller gave up.
// Every backend error this package returns is a *store.Error whose Transient
// field was set by this classification, so callers can use store.Transient.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var se *store.Error
	if errors.As(err, &se) {
		return se.Transient
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted, codes.Internal:
		return true
	}
	return false
}

func fail(op, key string, err error) error {
	return &store.Error{Backend: "firestore", Op: op, Key: key, Transient: Transient(err), Err: err}
}

// decode reads a document into a record; a document that does not decode is a
// permanent failure.
func decode(op string, snap *firestore.DocumentSnapshot) (*progress.Record, error) {
	var r progress.Record
	if err := snap.DataTo(&r); err != nil {
		return nil, &store.Error{Backend: "firestore", Op: op, Key: snap.Ref.ID, Err: fmt.Errorf("decode document: %w", err)}
	}
	if r.Version < 1 {
		return nil, &store.Error{Backend: "firestore", Op: op, Key: snap.Ref.ID, Err: errors.New("decode document: no version")}
	}
	r.Key = snap.Ref.ID
	store.Normalize(&r)
	return &r, nil
}

// Get reads one record. A missing document gives progress.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (*progress.Record, error) {
	if err := store.CheckKey("firestore", "get", key); err != nil {
		return nil, err
	}
	s.reads.Add(1)
	snap, err := s.coll.Doc(key).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("firestore get %s: %w", key, progress.ErrNotFound)
	}
	if err != nil {
		return nil, fail("get", key, err)
	}
	return decode("get", snap)
}

// Stale returns up to limit records whose state is one of states and whose
// updatedAt is before before, oldest first: the query of the stale-process
// sweep. In Firestore it needs the composite index (state, updatedAt) that
// terraform creates; the emulator needs none. It costs one read per record
// returned, and one when none is.
func (s *Store) Stale(ctx context.Context, states []progress.State, before time.Time, limit int) ([]*progress.Record, error) {
	if limit <= 0 || len(states) == 0 || len(states) > 30 {
		return nil, &store.Error{Backend: "firestore", Op: "stale", Err: fmt.Errorf("limit %d and %d states: want a positive limit and 1 to 30 states", limit, len(states))}
	}
	in := make([]string, len(states))
	for i, st := range states {
		in[i] = string(st)
	}
	q := s.coll.Where("state", "in", in).Where("updatedAt", "<", before).OrderBy("updatedAt", firestore.Asc).Limit(limit)
	snaps, err := q.Documents(ctx).GetAll()
	s.reads.Add(int64(max(len(snaps), 1)))
	if err != nil {
		return nil, fail("stale", "", err)
	}
	out := make([]*progress.Record, 0, len(snaps))
	for _, snap := range snaps {
		r, err := decode("stale", snap)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Create writes a copy of rec under rec.Key with Version 1 (and UpdatedAt now
// if it is zero); an existing document gives progress.ErrExists. It returns the
// record as stored.
func (s *Store) Create(ctx context.Context, rec *progress.Record) (*progress.Record, error) {
	if err := store.CheckKey("firestore", "create", rec.Key); err != nil {
		return nil, err
	}
	c := rec.Clone()
	c.Version = 1
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = time.Now().UTC()
	}
	store.Normalize(c)
	_, err := s.coll.Doc(c.Key).Create(ctx, c)
	if status.Code(err) == codes.AlreadyExists {
		return nil, fmt.Errorf("firestore create %s: %w", c.Key, progress.ErrExists)
	}
	if err != nil {
		return nil, fail("create", c.Key, err)
	}
	s.writes.Add(1)
	return c, nil
}

// Update reads the record in a transaction, applies fn and writes it back with
// Version+1 and UpdatedAt set to now (unless fn changed UpdatedAt itself: an
// injected clock wins). An error from fn rolls the transaction back and is
// returned as it is. On contention the transaction is retried (up to
// MaxAttempts), so fn may run more than once, each time on a fresh read.
// A missing document gives progress.ErrNotFound.
func (s *Store) Update(ctx context.Context, key string, fn func(r *progress.Record) error) (*progress.Record, error) {
	if err := store.CheckKey("firestore", "update", key); err != nil {
		return nil, err
	}
	ref := s.coll.Doc(key)
	var (
		out      *progress.Record
		attempts int
	)
	s.txns.Add(1)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		attempts++
		if attempts > 1 {
			s.conflicts.Add(1)
		}
		s.reads.Add(1)
		snap, err := tx.Get(ref)
		if status.Code(err) == codes.NotFound {
			return errNotFound
		}
		if err != nil {
			return err
		}
		r, err := decode("update", snap)
		if err != nil {
			return err
		}
		before := r.UpdatedAt
		if err := fn(r); err != nil {
			return &fnError{err}
		}
		r.Key = key
		r.Version++
		if r.UpdatedAt.Equal(before) {
			r.UpdatedAt = time.Now().UTC()
		}
		store.Normalize(r)
		out = r
		return tx.Set(ref, r)
	}, firestore.MaxAttempts(s.maxAttempts))
	if err != nil {
		s.aborted.Add(1)
		var fe *fnError
		var se *store.Error
		switch {
		case errors.As(err, &fe):
			return nil, fe.err
		case errors.Is(err, errNotFound):
			return nil, fmt.Errorf("firestore update %s: %w", key, progress.ErrNotFound)
		case errors.As(err, &se):
			return nil, err
		default:
			return nil, fail("update", key, err)
		}
	}
	s.writes.Add(1)
	return out.Clone(), nil
}

// errNotFound leaves the transaction when the document is missing.
var errNotFound = errors.New("document not found")

// fnError carries the caller's error out of the transaction. It deliberately
// has no Unwrap: the client library retries a transaction whose function
// returns an Aborted gRPC status, and fn's error must never cause that.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
