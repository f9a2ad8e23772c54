package progress

import (
	"errors"
	"fmt"
	"time"
)

// ErrLeaseHeld says another delivery holds a live lease on the record.
var ErrLeaseHeld = errors.New("another delivery holds the lease")

// Leased reports whether r's lease is live at now (held by anyone).
func (r *Record) Leased(now time.Time) bool { return now.Before(r.LeaseUntil) }

// AcquireLease gives holder the lease on r until now+d. It refuses, with an
// error wrapping ErrLeaseHeld, while another holder's lease is live; a lease
// with no holder (written by an earlier release) counts as another's until it
// expires. The holder renews its own live lease. holder must not be empty.
// Call it inside a store transaction (Transition's mutate), so that two
// deliveries cannot both acquire.
func AcquireLease(r *Record, holder string, now time.Time, d time.Duration) error {
	if holder == "" {
		return errors.New("progress: a lease needs a holder")
	}
	if r.Leased(now) && r.LeaseHolder != holder {
		who := r.LeaseHolder
		if who == "" {
			who = "an unknown delivery"
		}
		return fmt.Errorf("%w: %s until %s", ErrLeaseHeld, who, r.LeaseUntil.Format(time.RFC3339Nano))
	}
	r.LeaseUntil, r.LeaseHolder = now.Add(d), holder
	return nil
}

// ReleaseLease ends r's lease, whoever holds it: the step the lease guarded
// is over (the record moves on, or its call ended and the next delivery may
// act at once).
func ReleaseLease(r *Record) {
	r.LeaseUntil, r.LeaseHolder = time.Time{}, ""
}
