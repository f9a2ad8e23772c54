package inventory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Firestore keeps the inventory in one Firestore collection. It is safe for
// concurrent use.
type Firestore struct {
	coll *firestore.CollectionRef
	c    *firestore.Client
}

// NewFirestore returns the inventory on client's collection (the caller keeps
// and closes client).
func NewFirestore(client *firestore.Client, collection string) *Firestore {
	if collection == "" {
		collection = DefaultCollection
	}
	return &Firestore{c: client, coll: client.Collection(collection)}
}

func norm(e *Entry) {
	for _, t := range []*time.Time{&e.NotBefore, &e.NotAfter, &e.RecordedAt, &e.ExpireAt} {
		*t = t.UTC().Truncate(time.Microsecond)
	}
	if e.Revocation != nil {
		e.Revocation.At = e.Revocation.At.UTC().Truncate(time.Microsecond)
	}
}

// Record creates e's document, or keeps the one there: an entry is written
// once, whatever the retries. It reports whether it created it.
func (f *Firestore) Record(ctx context.Context, e Entry) (bool, error) {
	norm(&e)
	_, err := f.coll.Doc(e.ID).Create(ctx, e)
	if status.Code(err) == codes.AlreadyExists {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inventory: create %s: %w", e.ID, err)
	}
	return true, nil
}

// Get reads one entry by id; ErrNotFound when there is none.
func (f *Firestore) Get(ctx context.Context, id string) (*Entry, error) {
	snap, err := f.coll.Doc(id).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: get %s: %w", id, err)
	}
	return decode(snap)
}

func decode(snap *firestore.DocumentSnapshot) (*Entry, error) {
	var e Entry
	if err := snap.DataTo(&e); err != nil {
		return nil, fmt.Errorf("inventory: decode %s: %w", snap.Ref.ID, err)
	}
	e.ID = snap.Ref.ID
	norm(&e)
	return &e, nil
}

// List returns up to limit entries (0: all) matching flt, sorted as Sort
// does. One field of the filter goes to Firestore (serial, device, user,
// CA, or the not-after bound, in that order of preference: single-field
// indexes only); the rest is applied to what it returns.
func (f *Firestore) List(ctx context.Context, flt Filter, limit int) ([]*Entry, error) {
	q := f.coll.Query
	switch {
	case flt.Serial != "":
		n, err := ParseSerial(flt.Serial)
		if err != nil {
			return nil, err
		}
		q = q.Where("serial", "==", Serial(n))
	case flt.DeviceID != "":
		q = q.Where("deviceId", "==", flt.DeviceID)
	case flt.UserEmail != "":
		q = q.Where("userEmail", "==", flt.UserEmail)
	case flt.CARef != "":
		q = q.Where("caConnectionRef", "==", flt.CARef)
	case !flt.ExpiringBefore.IsZero():
		q = q.Where("notAfter", "<", flt.ExpiringBefore)
	}
	it := q.Documents(ctx)
	defer it.Stop()
	var out []*Entry
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("inventory: list: %w", err)
		}
		e, err := decode(snap)
		if err != nil {
			return nil, err
		}
		if flt.Match(e) {
			out = append(out, e)
		}
	}
	Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// MarkRevoked records r on entry id, in a transaction, unless the entry is
// already revoked (or reported): it returns the entry as it stands and
// whether this call recorded r. A report-only revocation is replaced by a
// real one.
func (f *Firestore) MarkRevoked(ctx context.Context, id string, r Revocation) (*Entry, bool, error) {
	ref := f.coll.Doc(id)
	var out *Entry
	var changed bool
	err := f.c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		changed = false
		snap, err := tx.Get(ref)
		if status.Code(err) == codes.NotFound {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		e, err := decode(snap)
		if err != nil {
			return err
		}
		out = e
		if !shouldRecord(e.Revocation, r) {
			return nil
		}
		r.At = r.At.UTC().Truncate(time.Microsecond)
		e.Revocation = &r
		changed = true
		return tx.Update(ref, []firestore.Update{{Path: "revocation", Value: r}})
	})
	if errors.Is(err, ErrNotFound) {
		return nil, false, ErrNotFound
	}
	if err != nil {
		return nil, false, fmt.Errorf("inventory: mark %s revoked: %w", id, err)
	}
	return out, changed, nil
}

// shouldRecord reports whether r replaces what an entry holds: nothing, or a
// report-only revocation that a real one supersedes.
func shouldRecord(have *Revocation, r Revocation) bool {
	return have == nil || (have.ReportedOnly && !r.ReportedOnly)
}
