// Package store holds what the progress stores (store/firestore, store/memory)
// share: the error type that says whether a store failure is worth retrying,
// the operation counters, and the normalisation of a record to what Firestore
// keeps, so that every store returns exactly what it will later read back.
//
// A store call fails in one of four ways, and callers tell them apart so:
//
//   - progress.ErrNotFound / progress.ErrExists (wrapped): the record is missing
//     or already there. errors.Is.
//   - the error returned by an Update's fn, returned as it is (errors.Is / As
//     see it, e.g. *progress.StateError from progress.Transition).
//   - *Error: the store itself failed. Error.Transient (or Transient(err)) says
//     whether the same call may succeed later (unavailable backend, contention,
//     deadline) and so should be retried (for the pipeline: answer non-2xx so the
//     queue redelivers), or whether it is permanent (permission, invalid data,
//     a document that does not decode) and retrying will not help.
package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// Error is a failure of a store's backend (not ErrNotFound, ErrExists, or the
// error of an Update's fn).
type Error struct {
	// Backend names the store: "firestore" or "memory".
	Backend string
	// Op is "get", "create" or "update".
	Op  string
	Key string
	// Transient is true when the same call may succeed if retried later.
	Transient bool
	Err       error
}

func (e *Error) Error() string {
	kind := "permanent"
	if e.Transient {
		kind = "transient"
	}
	return fmt.Sprintf("%s store %s %s (%s): %v", e.Backend, e.Op, e.Key, kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether err contains a store *Error that is transient:
// retrying the same call later may succeed. It is false for nil, for
// ErrNotFound/ErrExists, for fn errors and for permanent store failures.
func Transient(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Transient
}

// Stats counts a store's operations the way Firestore bills them, so the
// memory and Firestore stores can be compared:
//
//   - Reads: documents read. Get is one read (also when the record is missing);
//     every attempt of an Update transaction is one read.
//   - Writes: documents written (committed). A Create that finds the key taken,
//     or an Update whose fn fails, writes nothing.
//   - Transactions: Update calls.
//   - Conflicts: contention met by Updates. Firestore: transaction attempts
//     beyond the first (fn ran again). Memory: Updates that had to wait for
//     another Update of the same record.
//   - Aborted: Updates that wrote nothing (fn error, missing record, failure).
//
// An operation refused by a memory store fault hook before it started counts
// nothing.
type Stats struct {
	Reads        int64 `json:"reads"`
	Writes       int64 `json:"writes"`
	Transactions int64 `json:"transactions"`
	Conflicts    int64 `json:"conflicts"`
	Aborted      int64 `json:"aborted"`
}

// Sub returns s minus o, field by field (the operations between two snapshots).
func (s Stats) Sub(o Stats) Stats {
	return Stats{
		Reads:        s.Reads - o.Reads,
		Writes:       s.Writes - o.Writes,
		Transactions: s.Transactions - o.Transactions,
		Conflicts:    s.Conflicts - o.Conflicts,
		Aborted:      s.Aborted - o.Aborted,
	}
}

// Normalize brings r to the form Firestore returns it in, in place, so a
// record compares equal (go-cmp, reflect.DeepEqual) before and after a round
// trip: times in UTC truncated to microseconds (Firestore's precision), zero
// times as time.Time{}, empty byte slices and an empty history as nil. A nil
// ExpireAt stays nil.
func Normalize(r *progress.Record) {
	for _, t := range []*time.Time{
		&r.CreatedAt, &r.UpdatedAt, &r.ProcessStart, &r.Deadline, &r.NextPollAt, &r.SignedAt,
		&r.ChallengeExpiresAt, &r.IssuedAt, &r.UploadedAt, &r.LeaseUntil,
		&r.CertificateNotBefore, &r.CertificateNotAfter,
	} {
		normTime(t)
	}
	if r.ExpireAt != nil {
		normTime(r.ExpireAt)
	}
	if len(r.History) == 0 {
		r.History = nil
	}
	for i := range r.History {
		normTime(&r.History[i].At)
	}
	for _, b := range []*[]byte{&r.SPKI, &r.SignData, &r.CSR} {
		if len(*b) == 0 {
			*b = nil
		}
	}
}

func normTime(t *time.Time) {
	if t.IsZero() {
		*t = time.Time{}
		return
	}
	*t = t.UTC().Truncate(time.Microsecond)
}

// CheckKey returns a permanent *Error when key cannot be a Firestore document
// id: empty, containing '/', "." or "..", of the reserved form __*__, or longer
// than 1,500 bytes. Stores check keys so that all of them refuse the same ones.
func CheckKey(backend, op, key string) error {
	var why string
	switch {
	case key == "":
		why = "empty key"
	case strings.Contains(key, "/"):
		why = "key contains '/'"
	case key == "." || key == "..":
		why = "key is . or .."
	case len(key) >= 4 && strings.HasPrefix(key, "__") && strings.HasSuffix(key, "__"):
		why = "key of the reserved form __*__"
	case len(key) > 1500:
		why = "key longer than 1500 bytes"
	default:
		return nil
	}
	return &Error{Backend: backend, Op: op, Key: key, Err: errors.New(why)}
}
