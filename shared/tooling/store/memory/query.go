package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
)

// List returns up to limit records that match f, newest (CreatedAt) first,
// ties by key descending, after f.After: the Firestore store's List, so the
// operator CLI reads a local run's records (local -keep) as it reads
// Firestore. Like a Firestore query it costs one read per record returned,
// and one when none is.
func (s *Store) List(_ context.Context, f store.Filter, limit int) ([]*progress.Record, error) {
	return s.query("list", limit, f.After, func(r *progress.Record) bool {
		for _, eq := range []struct{ field, want string }{
			{string(r.State), string(f.State)}, {r.Customer, f.Customer}, {r.ProfileRef, f.ProfileRef},
			{r.DeviceID, f.DeviceID}, {r.DeviceSerial, f.DeviceSerial}, {r.UserEmail, f.UserEmail},
		} {
			if eq.want != "" && eq.field != eq.want {
				return false
			}
		}
		return f.Since.IsZero() || !r.CreatedAt.Before(f.Since)
	})
}

// ByProcessID returns up to limit records of the process id (one per
// customer that has it), newest first.
func (s *Store) ByProcessID(_ context.Context, processID string, limit int) ([]*progress.Record, error) {
	if processID == "" {
		return nil, &store.Error{Backend: "memory", Op: "by-process-id", Err: fmt.Errorf("empty process id")}
	}
	return s.query("by-process-id", limit, nil, func(r *progress.Record) bool { return r.ProcessID == processID })
}

func (s *Store) query(op string, limit int, after *store.Cursor, match func(*progress.Record) bool) ([]*progress.Record, error) {
	if limit <= 0 || limit > store.MaxQueryLimit {
		return nil, &store.Error{Backend: "memory", Op: op, Err: fmt.Errorf("limit %d: want 1 to %d", limit, store.MaxQueryLimit)}
	}
	out := s.all(match)
	slices.SortFunc(out, newestFirst)
	if after != nil {
		pos := &progress.Record{CreatedAt: after.CreatedAt, Key: after.Key}
		out = slices.DeleteFunc(out, func(r *progress.Record) bool { return newestFirst(r, pos) <= 0 })
	}
	if len(out) > limit {
		out = out[:limit]
	}
	s.reads.Add(int64(max(len(out), 1)))
	return out, nil
}

// newestFirst orders by CreatedAt descending, then key descending, as the
// Firestore store's index does.
func newestFirst(a, b *progress.Record) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.Key, a.Key)
}

// all returns copies of the records that match.
func (s *Store) all(match func(*progress.Record) bool) []*progress.Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*progress.Record
	for _, e := range s.recs {
		if r := e.rec.Load(); match(r) {
			out = append(out, r.Clone())
		}
	}
	return out
}

// file is the JSON form of a saved store.
type file struct {
	Records []*progress.Record `json:"records"`
}

// Save writes every record as JSON, oldest first: what the local run leaves
// for the operator CLI (local -keep FILE, certprov --records FILE).
func (s *Store) Save(w io.Writer) error {
	recs := s.all(func(*progress.Record) bool { return true })
	slices.SortFunc(recs, func(a, b *progress.Record) int { return newestFirst(b, a) })
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(file{Records: recs}); err != nil {
		return fmt.Errorf("save the memory store: %w", err)
	}
	return nil
}

// Load returns a store holding the records Save wrote. Records keep their
// versions and times.
func Load(r io.Reader) (*Store, error) {
	var f file
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("load a memory store: %w", err)
	}
	s := New()
	for i, rec := range f.Records {
		if rec == nil {
			return nil, fmt.Errorf("load a memory store: record %d is null", i)
		}
		if err := store.CheckKey("memory", "load", rec.Key); err != nil {
			return nil, fmt.Errorf("load a memory store: record %d: %w", i, err)
		}
		if _, dup := s.recs[rec.Key]; dup {
			return nil, fmt.Errorf("load a memory store: record %d: key %s twice", i, rec.Key)
		}
		c := rec.Clone()
		store.Normalize(c)
		e := &entry{}
		e.rec.Store(c)
		s.recs[c.Key] = e
	}
	return s, nil
}
