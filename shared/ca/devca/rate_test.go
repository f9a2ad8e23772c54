package devca

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// SetRate issues at most its rate per second; the rest are throttled as
// transient, a repeated request id is answered without counting, and the
// next second issues again.
func TestIssuanceRate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := New(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.SetRate(2, func() time.Time { return now })
	csr, _ := newCSR(t, "device-1")
	issue := func(id string) string {
		_, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: id})
		switch {
		case err == nil:
			return "issued"
		case ca.KindOf(err) == ca.Transient:
			return "throttled"
		default:
			return fmt.Sprint(err)
		}
	}
	var got []string
	for _, id := range []string{"r1", "r2", "r3", "r1"} {
		got = append(got, issue(id))
	}
	now = now.Add(time.Second)
	got = append(got, issue("r3"))
	want := []string{"issued", "issued", "throttled", "issued", "issued"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if c.Throttled() != 1 || c.Issued() != 3 {
		t.Errorf("throttled %d, issued %d; want 1 and 3", c.Throttled(), c.Issued())
	}
}
