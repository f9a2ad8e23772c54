package cpemulator

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The quota serves QuotaPerMinute requests per window across all methods and
// answers the rest 429 RESOURCE_EXHAUSTED; the next window serves again, and
// Quota reports each window.
func TestQuota(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := New(Options{QuotaPerMinute: 2, Now: func() time.Time { return now }})
	call := func(method, path string) int {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code
	}
	const proc = "/v1/customers/C0/certificateProvisioningProcesses/p"
	got := []int{call(http.MethodGet, proc), call(http.MethodPost, proc+":claim"), call(http.MethodGet, proc)}
	now = now.Add(time.Minute)
	got = append(got, call(http.MethodGet, proc))
	want := []int{http.StatusNotFound, http.StatusNotFound, http.StatusTooManyRequests, http.StatusNotFound}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	q, ok := e.Quota()
	if !ok {
		t.Fatal("no quota")
	}
	if diff := cmp.Diff([]QuotaWindow{{Served: 2, Exhausted: 1}, {Served: 1}}, q.Windows); diff != "" || q.Exhausted != 1 {
		t.Errorf("windows (-want +got):\n%s; exhausted %d", diff, q.Exhausted)
	}
}
