package cpemulator

import (
	"net/http"
	"sync"
	"time"
)

// quota is the emulator's per-project request quota (Options.QuotaPerMinute):
// one budget per window across all methods of the API, as Google's API quotas
// count "queries per minute per project". Windows are fixed, from the first
// request. A request over the budget is answered 429 RESOURCE_EXHAUSTED
// without acting and does not spend the budget.
type quota struct {
	limit  int
	window time.Duration

	mu      sync.Mutex
	start   time.Time // of the first window
	windows []QuotaWindow
}

// QuotaWindow is what one quota window saw: the requests served (within the
// budget) and those answered 429 because the budget was spent.
type QuotaWindow struct {
	Served    int `json:"served"`
	Exhausted int `json:"exhausted"`
}

// QuotaStats is the quota's configuration and what each window saw, in order.
type QuotaStats struct {
	PerWindow int           `json:"per_window"`
	Window    time.Duration `json:"window_ns"`
	Start     time.Time     `json:"start"`
	Windows   []QuotaWindow `json:"windows"`
	// Exhausted adds up the 429s of every window.
	Exhausted int `json:"exhausted"`
}

// take spends one request of the window of now; false when it is spent.
func (q *quota) take(now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.start.IsZero() {
		q.start = now
	}
	i := max(int(now.Sub(q.start)/q.window), 0)
	for len(q.windows) <= i {
		q.windows = append(q.windows, QuotaWindow{})
	}
	w := &q.windows[i]
	if w.Served >= q.limit {
		w.Exhausted++
		return false
	}
	w.Served++
	return true
}

func (q *quota) stats() QuotaStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := QuotaStats{PerWindow: q.limit, Window: q.window, Start: q.start, Windows: append([]QuotaWindow(nil), q.windows...)}
	for _, w := range q.windows {
		s.Exhausted += w.Exhausted
	}
	return s
}

// Quota returns what the quota saw (Options.QuotaPerMinute); false when the
// emulator has none.
func (e *Emulator) Quota() (QuotaStats, bool) {
	if e.quota == nil {
		return QuotaStats{}, false
	}
	return e.quota.stats(), true
}

// errQuota is the answer to a request over the quota, as Google's APIs word it.
func errQuota() *apiError {
	return &apiError{HTTP: http.StatusTooManyRequests, Status: "RESOURCE_EXHAUSTED",
		Message: "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'chromemanagement.googleapis.com' (emulated)."}
}

// Keys returns the customer and id of every process, in creation order,
// without the cost of a snapshot: for a run's timeline.
func (e *Emulator) Keys() (customers, ids []string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	customers, ids = make([]string, len(e.order)), make([]string, len(e.order))
	for i, p := range e.order {
		customers[i], ids[i] = p.customer, p.id
	}
	return customers, ids
}
