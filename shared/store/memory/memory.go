// Package memory is the in-process progress store of the local run, the
// benchmarks and the fault campaign. It has the Firestore store's semantics
// (compare-and-set updates, ErrExists, ErrNotFound, copies in and out) and
// counts reads and writes at the interface, so per-enrollment costs can be
// measured.
package memory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// Stats counts operations as Firestore would bill them: a Get is one read, a
// Create one write, an Update one read plus one write when it writes.
type Stats struct {
	Reads        int64 `json:"reads"`
	Writes       int64 `json:"writes"`
	Transactions int64 `json:"transactions"`
	Aborted      int64 `json:"aborted"`
}

// Fault is consulted before each operation ("get", "create", "update"); a
// non-nil error fails the operation without effect.
type Fault func(op, key string) error

// Store keeps records in memory. It is safe for concurrent use.
type Store struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
	recs  map[string]*progress.Record
	fault atomic.Pointer[Fault]

	reads, writes, txns, aborted atomic.Int64
}

// New returns an empty store.
func New() *Store {
	return &Store{locks: map[string]*sync.Mutex{}, recs: map[string]*progress.Record{}}
}

// SetFault installs f (nil removes it).
func (s *Store) SetFault(f Fault) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&f)
}

func (s *Store) check(op, key string) error {
	if f := s.fault.Load(); f != nil {
		if err := (*f)(op, key); err != nil {
			return fmt.Errorf("memory store %s %s: %w", op, key, err)
		}
	}
	return nil
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	return Stats{Reads: s.reads.Load(), Writes: s.writes.Load(), Transactions: s.txns.Load(), Aborted: s.aborted.Load()}
}

func (s *Store) lock(key string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[key]
	if !ok {
		l = &sync.Mutex{}
		s.locks[key] = l
	}
	return l
}

// Get returns a copy of the record.
func (s *Store) Get(ctx context.Context, key string) (*progress.Record, error) {
	if err := s.check("get", key); err != nil {
		return nil, err
	}
	s.reads.Add(1)
	return s.Peek(ctx, key)
}

// Peek is Get without counting or faults: for observers such as a progress
// display, which production does not have.
func (s *Store) Peek(_ context.Context, key string) (*progress.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[key]
	if !ok {
		return nil, fmt.Errorf("memory store get %s: %w", key, progress.ErrNotFound)
	}
	return r.Clone(), nil
}

// Create stores rec under rec.Key with Version 1, or fails with ErrExists.
func (s *Store) Create(_ context.Context, rec *progress.Record) (*progress.Record, error) {
	if err := s.check("create", rec.Key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[rec.Key]; ok {
		return nil, fmt.Errorf("memory store create %s: %w", rec.Key, progress.ErrExists)
	}
	c := rec.Clone()
	c.Version = 1
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = time.Now().UTC()
	}
	s.recs[rec.Key] = c
	s.writes.Add(1)
	return c.Clone(), nil
}

// Update applies fn to a copy of the record under the record's lock and
// stores it with Version+1, unless fn fails.
func (s *Store) Update(ctx context.Context, key string, fn func(r *progress.Record) error) (*progress.Record, error) {
	if err := s.check("update", key); err != nil {
		return nil, err
	}
	l := s.lock(key)
	l.Lock()
	defer l.Unlock()
	s.txns.Add(1)
	s.reads.Add(1)
	cur, err := s.Peek(ctx, key)
	if err != nil {
		s.aborted.Add(1)
		return nil, fmt.Errorf("memory store update %s: %w", key, progress.ErrNotFound)
	}
	before := cur.UpdatedAt
	if err := fn(cur); err != nil {
		s.aborted.Add(1)
		return nil, err
	}
	cur.Key = key
	cur.Version++
	if cur.UpdatedAt.Equal(before) {
		cur.UpdatedAt = time.Now().UTC()
	}
	s.mu.Lock()
	s.recs[key] = cur.Clone()
	s.mu.Unlock()
	s.writes.Add(1)
	return cur, nil
}

// Len is the number of records.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}
