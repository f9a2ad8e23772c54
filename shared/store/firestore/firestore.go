// Package firestore keeps progress records in Cloud Firestore: one document
// per process, every update a read-modify-write in a transaction, so that two
// deliveries of the same message cannot both advance a process.
package firestore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// Store is a progress store on one Firestore collection.
type Store struct {
	client *firestore.Client
	coll   *firestore.CollectionRef

	reads, writes, txns atomic.Int64
}

// Stats counts billed operations.
type Stats struct {
	Reads        int64 `json:"reads"`
	Writes       int64 `json:"writes"`
	Transactions int64 `json:"transactions"`
}

// New returns a store on client's collection.
func New(client *firestore.Client, collection string) *Store {
	return &Store{client: client, coll: client.Collection(collection)}
}

// Stats returns the counters (reads and writes made through this store).
func (s *Store) Stats() Stats {
	return Stats{Reads: s.reads.Load(), Writes: s.writes.Load(), Transactions: s.txns.Load()}
}

// Firestore keeps microseconds: store times at that precision so a record
// reads back equal to what was written.
func normalize(r *progress.Record) {
	tr := func(t *time.Time) {
		if !t.IsZero() {
			*t = t.UTC().Truncate(time.Microsecond)
		}
	}
	for _, t := range []*time.Time{&r.CreatedAt, &r.UpdatedAt, &r.Deadline, &r.NextPollAt, &r.SignedAt, &r.ChallengeExpiresAt, &r.IssuedAt, &r.UploadedAt, &r.LeaseUntil} {
		tr(t)
	}
	if r.ExpireAt != nil {
		tr(r.ExpireAt)
	}
	for i := range r.History {
		tr(&r.History[i].At)
	}
}

func decode(snap *firestore.DocumentSnapshot) (*progress.Record, error) {
	var r progress.Record
	if err := snap.DataTo(&r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", snap.Ref.ID, err)
	}
	r.Key = snap.Ref.ID
	normalize(&r)
	if r.Version == 0 {
		return nil, fmt.Errorf("decode %s: document has no version", snap.Ref.ID)
	}
	return &r, nil
}

// Get reads one record.
func (s *Store) Get(ctx context.Context, key string) (*progress.Record, error) {
	s.reads.Add(1)
	snap, err := s.coll.Doc(key).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("firestore get %s: %w", key, progress.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("firestore get %s: %w", key, err)
	}
	return decode(snap)
}

// Create writes a new record with Version 1; an existing document gives ErrExists.
func (s *Store) Create(ctx context.Context, rec *progress.Record) (*progress.Record, error) {
	c := rec.Clone()
	c.Version = 1
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = time.Now().UTC()
	}
	normalize(c)
	s.writes.Add(1)
	_, err := s.coll.Doc(c.Key).Create(ctx, c)
	if status.Code(err) == codes.AlreadyExists {
		return nil, fmt.Errorf("firestore create %s: %w", c.Key, progress.ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("firestore create %s: %w", c.Key, err)
	}
	return c, nil
}

// Update reads the record in a transaction, applies fn and writes it back
// with Version+1. An error from fn aborts the transaction and is returned
// as it is. Contention is retried by the client library (fn may run again).
func (s *Store) Update(ctx context.Context, key string, fn func(r *progress.Record) error) (*progress.Record, error) {
	ref := s.coll.Doc(key)
	var out *progress.Record
	s.txns.Add(1)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		s.reads.Add(1)
		snap, err := tx.Get(ref)
		if status.Code(err) == codes.NotFound {
			return progress.ErrNotFound
		}
		if err != nil {
			return err
		}
		r, err := decode(snap)
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
		normalize(r)
		out = r
		return tx.Set(ref, r)
	})
	var fe *fnError
	if errors.As(err, &fe) {
		return nil, fe.err
	}
	if errors.Is(err, progress.ErrNotFound) {
		return nil, fmt.Errorf("firestore update %s: %w", key, progress.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("firestore update %s: %w", key, err)
	}
	s.writes.Add(1)
	return out.Clone(), nil
}

// fnError carries the caller's error out of the transaction untouched.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }
