package devca

import (
	"sync"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// rate is an issuance rate limit (SetRate): at most perSecond issuances in
// each second, as Google CAS limits CreateCertificate per CA (7 per second
// on the Enterprise tier); the rest are refused as throttled (transient).
type rate struct {
	mu        sync.Mutex
	perSecond int
	now       func() time.Time
	second    time.Time
	n         int
	refused   int
}

// SetRate limits issuance to perSecond certificates per second of now's
// clock (0: no limit). A request over it fails with a transient error, as
// CAS answers RESOURCE_EXHAUSTED; a request id issued before is answered
// from memory without counting.
func (c *Connector) SetRate(perSecond int, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if perSecond <= 0 {
		c.rate = nil
		return
	}
	c.rate = &rate{perSecond: perSecond, now: now}
}

// Throttled is how many issuances SetRate's limit refused.
func (c *Connector) Throttled() int {
	c.mu.Lock()
	r := c.rate
	c.mu.Unlock()
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// take spends one issuance of the current second, or returns the throttling
// error.
func (r *rate) take() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	sec := r.now().Truncate(time.Second)
	if !sec.Equal(r.second) {
		r.second, r.n = sec, 0
	}
	if r.n >= r.perSecond {
		r.refused++
		return &ca.Error{Kind: ca.Transient, Reason: "RESOURCE_EXHAUSTED: issuance rate of the development CA exceeded", Err: ca.ErrThrottled}
	}
	r.n++
	return nil
}
