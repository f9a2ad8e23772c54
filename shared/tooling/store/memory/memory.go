// Package memory is the in-process progress store of the local run, the
// benchmarks and the fault campaign. It has the Firestore store's semantics
// (serialised read-modify-write updates, ErrExists, ErrNotFound, copies in and
// out, times kept to the microsecond as Firestore keeps them) and counts reads
// and writes at the interface (store.Stats), so per-enrollment costs can be
// measured. Fault hooks let a test fail an operation before it happens, or
// after it committed (a crash or lost response after the write).
package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
)

// Stats counts operations as Firestore would bill them (see store.Stats).
type Stats = store.Stats

// Fault is a fault hook: it is called with op "get", "create" or "update" and
// the record key; a non-nil error fails the operation.
//
// The error is returned as a *store.Error; it is transient unless the hook's
// error already holds a *store.Error, whose Transient is kept.
type Fault func(op, key string) error

// Store keeps records in memory. It is safe for concurrent use. Updates of one
// record are serialised by that record's lock; Gets never wait for an Update
// (they read the last committed version), as in Firestore.
type Store struct {
	mu   sync.RWMutex
	recs map[string]*entry

	before, after atomic.Pointer[Fault]

	reads, writes, txns, conflicts, aborted atomic.Int64

	// now is the clock of UpdatedAt; nil: time.Now.
	now atomic.Pointer[func() time.Time]
}

type entry struct {
	// reads and writes count the record's own operations (Counts).
	reads, writes atomic.Int64
	// lock serialises Updates of the record.
	lock sync.Mutex
	// rec is the committed record, normalised; never modified once stored.
	rec atomic.Pointer[progress.Record]
}

// New returns an empty store.
func New() *Store {
	return &Store{recs: map[string]*entry{}}
}

// SetClock makes now the clock that stamps UpdatedAt (nil: time.Now), for a
// run on a virtual clock: the sweep compares UpdatedAt with its own clock.
func (s *Store) SetClock(now func() time.Time) {
	if now == nil {
		s.now.Store(nil)
		return
	}
	s.now.Store(&now)
}

func (s *Store) clock() time.Time {
	if f := s.now.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

// SetFault installs f to run before every operation (nil removes it). An
// error from f fails the operation without effect; nothing is counted.
func (s *Store) SetFault(f Fault) { setHook(&s.before, f) }

// SetAfterCommitFault installs f to run after every successful write ("create"
// or "update", nil removes it). An error from f is returned although the write
// was committed and counted, as when a function crashes or loses the response
// after its write reached Firestore.
func (s *Store) SetAfterCommitFault(f Fault) { setHook(&s.after, f) }

func setHook(p *atomic.Pointer[Fault], f Fault) {
	if f == nil {
		p.Store(nil)
		return
	}
	p.Store(&f)
}

func (s *Store) fault(p *atomic.Pointer[Fault], op, key string) error {
	f := p.Load()
	if f == nil {
		return nil
	}
	err := (*f)(op, key)
	if err == nil {
		return nil
	}
	transient := true
	if se := (*store.Error)(nil); errors.As(err, &se) {
		transient = se.Transient
	}
	return &store.Error{Backend: "memory", Op: op, Key: key, Transient: transient, Err: err}
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	return Stats{
		Reads:        s.reads.Load(),
		Writes:       s.writes.Load(),
		Transactions: s.txns.Load(),
		Conflicts:    s.conflicts.Load(),
		Aborted:      s.aborted.Load(),
	}
}

func (s *Store) entry(key string) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.recs[key]
}

// Get returns a copy of the record.
func (s *Store) Get(ctx context.Context, key string) (*progress.Record, error) {
	if err := s.fault(&s.before, "get", key); err != nil {
		return nil, err
	}
	if err := store.CheckKey("memory", "get", key); err != nil {
		return nil, err
	}
	s.reads.Add(1)
	if e := s.entry(key); e != nil {
		e.reads.Add(1)
	}
	return s.Peek(ctx, key)
}

// Counts returns the reads and writes of one record so far (its Gets,
// Creates and Updates; not the sweep's queries).
func (s *Store) Counts(key string) (reads, writes int64) {
	if e := s.entry(key); e != nil {
		return e.reads.Load(), e.writes.Load()
	}
	return 0, 0
}

// Peek is Get without counting or faults: for observers such as a progress
// display, which production does not have.
func (s *Store) Peek(_ context.Context, key string) (*progress.Record, error) {
	e := s.entry(key)
	if e == nil {
		return nil, fmt.Errorf("memory store get %s: %w", key, progress.ErrNotFound)
	}
	return e.rec.Load().Clone(), nil
}

// Create stores a copy of rec under rec.Key with Version 1 (and UpdatedAt now
// if it is zero), or fails with ErrExists. It returns the record as stored.
func (s *Store) Create(_ context.Context, rec *progress.Record) (*progress.Record, error) {
	if err := s.fault(&s.before, "create", rec.Key); err != nil {
		return nil, err
	}
	if err := store.CheckKey("memory", "create", rec.Key); err != nil {
		return nil, err
	}
	c := rec.Clone()
	c.Version = 1
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = s.clock().UTC()
	}
	store.Normalize(c)
	e := &entry{}
	e.rec.Store(c)
	s.mu.Lock()
	if _, ok := s.recs[c.Key]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("memory store create %s: %w", c.Key, progress.ErrExists)
	}
	s.recs[c.Key] = e
	s.mu.Unlock()
	s.writes.Add(1)
	e.writes.Add(1)
	if err := s.fault(&s.after, "create", c.Key); err != nil {
		return nil, err
	}
	return c.Clone(), nil
}

// Update applies fn to a copy of the record while holding the record's lock
// and, if fn returns nil, stores it with Version+1 and UpdatedAt set to now
// (unless fn changed UpdatedAt itself: an injected clock wins). An error from
// fn is returned as it is and nothing is written. fn runs exactly once.
func (s *Store) Update(_ context.Context, key string, fn func(r *progress.Record) error) (*progress.Record, error) {
	if err := s.fault(&s.before, "update", key); err != nil {
		return nil, err
	}
	if err := store.CheckKey("memory", "update", key); err != nil {
		return nil, err
	}
	s.txns.Add(1)
	s.reads.Add(1)
	e := s.entry(key)
	if e == nil {
		s.aborted.Add(1)
		return nil, fmt.Errorf("memory store update %s: %w", key, progress.ErrNotFound)
	}
	e.reads.Add(1)
	if !e.lock.TryLock() {
		s.conflicts.Add(1)
		e.lock.Lock()
	}
	defer e.lock.Unlock()
	cur := e.rec.Load().Clone()
	before := cur.UpdatedAt
	if err := fn(cur); err != nil {
		s.aborted.Add(1)
		return nil, err
	}
	cur.Key = key
	cur.Version++
	if cur.UpdatedAt.Equal(before) {
		cur.UpdatedAt = s.clock().UTC()
	}
	store.Normalize(cur)
	e.rec.Store(cur.Clone())
	s.writes.Add(1)
	e.writes.Add(1)
	if err := s.fault(&s.after, "update", key); err != nil {
		return nil, err
	}
	return cur, nil
}

// Stale returns up to limit records whose state is one of states and whose
// UpdatedAt is before before, oldest first: the query of the stale-process
// sweep. Like a Firestore query it costs one read per record returned, and
// one when none is.
func (s *Store) Stale(_ context.Context, states []progress.State, before time.Time, limit int) ([]*progress.Record, error) {
	if limit <= 0 {
		return nil, &store.Error{Backend: "memory", Op: "stale", Err: fmt.Errorf("limit %d: must be positive", limit)}
	}
	s.mu.RLock()
	var out []*progress.Record
	for _, e := range s.recs {
		r := e.rec.Load()
		if slices.Contains(states, r.State) && r.UpdatedAt.Before(before) {
			out = append(out, r.Clone())
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b *progress.Record) int {
		if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	s.reads.Add(int64(max(len(out), 1)))
	return out, nil
}

// Len is the number of records.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.recs)
}
