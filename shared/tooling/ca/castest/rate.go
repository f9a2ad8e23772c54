package castest

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rateLimit is SetRate's limit: at most perSecond CreateCertificate per
// second per CA pool (the fake's pools have one issuing CA each), as CAS
// limits an Enterprise-tier CA to 7 per second.
type rateLimit struct {
	perSecond int
	now       func() time.Time
	second    map[string]time.Time // by pool: the second counted
	n         map[string]int
	refused   int
}

// SetRate limits CreateCertificate to perSecond new certificates per second
// per CA pool on now's clock (nil: the real one; 0 turns the limit off). The
// rest are answered RESOURCE_EXHAUSTED, as CAS answers a CA over its quota;
// a repeated request_id is answered without counting.
func (f *Fake) SetRate(perSecond int, now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if perSecond <= 0 {
		f.rate = nil
		return
	}
	if now == nil {
		now = time.Now
	}
	f.rate = &rateLimit{perSecond: perSecond, now: now, second: map[string]time.Time{}, n: map[string]int{}}
}

// Throttled is how many CreateCertificate requests SetRate's limit refused.
func (f *Fake) Throttled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rate == nil {
		return 0
	}
	return f.rate.refused
}

// take spends one issuance of pool's current second. f.mu is held.
func (r *rateLimit) take(pool string) error {
	sec := r.now().Truncate(time.Second)
	if !sec.Equal(r.second[pool]) {
		r.second[pool], r.n[pool] = sec, 0
	}
	if r.n[pool] >= r.perSecond {
		r.refused++
		return status.Errorf(codes.ResourceExhausted, "Quota exceeded for quota metric 'CreateCertificate requests' and limit 'CreateCertificate requests per second per CA' (castest: %d).", r.perSecond)
	}
	r.n[pool]++
	return nil
}
