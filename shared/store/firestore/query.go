package firestore

import (
	"context"
	"fmt"

	"cloud.google.com/go/firestore"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
)

// ByProcessID returns up to limit records of the process id (one per customer
// that has it), newest first. It uses the single-field index of processId.
func (s *Store) ByProcessID(ctx context.Context, processID string, limit int) ([]*progress.Record, error) {
	if processID == "" {
		return nil, &store.Error{Backend: "firestore", Op: "by-process-id", Err: fmt.Errorf("empty process id")}
	}
	return s.query(ctx, "by-process-id", s.coll.Where("processId", "==", processID), nil, limit)
}

// List returns up to limit records that match f, newest (createdAt) first.
// In Firestore an equality filter with the order on createdAt needs the
// composite index (field, createdAt desc) of each filtered field that
// terraform creates; the emulator needs none. It costs one read per record
// returned, and one when none is.
func (s *Store) List(ctx context.Context, f store.Filter, limit int) ([]*progress.Record, error) {
	q := s.coll.Query
	if f.State != "" {
		q = q.Where("state", "==", string(f.State))
	}
	if f.Customer != "" {
		q = q.Where("customer", "==", f.Customer)
	}
	for _, eq := range []struct{ field, value string }{
		{"profileRef", f.ProfileRef}, {"deviceId", f.DeviceID}, {"deviceSerial", f.DeviceSerial}, {"userEmail", f.UserEmail},
	} {
		if eq.value != "" {
			q = q.Where(eq.field, "==", eq.value)
		}
	}
	if !f.Since.IsZero() {
		q = q.Where("createdAt", ">=", f.Since)
	}
	return s.query(ctx, "list", q, f.After, limit)
}

// query runs q newest first (ties by key, descending, as the index orders
// them), after the cursor when there is one.
func (s *Store) query(ctx context.Context, op string, q firestore.Query, after *store.Cursor, limit int) ([]*progress.Record, error) {
	if limit <= 0 || limit > store.MaxQueryLimit {
		return nil, &store.Error{Backend: "firestore", Op: op, Err: fmt.Errorf("limit %d: want 1 to %d", limit, store.MaxQueryLimit)}
	}
	q = q.OrderBy("createdAt", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc)
	if after != nil {
		q = q.StartAfter(after.CreatedAt, s.coll.Doc(after.Key))
	}
	snaps, err := q.Limit(limit).Documents(ctx).GetAll()
	s.reads.Add(int64(max(len(snaps), 1)))
	if err != nil {
		return nil, fail(op, "", err)
	}
	out := make([]*progress.Record, 0, len(snaps))
	for _, snap := range snaps {
		r, err := decode(op, snap)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
