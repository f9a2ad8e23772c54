package castest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/status"
)

// SetRate answers RESOURCE_EXHAUSTED beyond its rate per second; a repeated
// request_id does not count, and the next second issues again.
func TestRate(t *testing.T) {
	ctx := context.Background()
	c, f := client(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.SetRate(2, func() time.Time { return now })
	csr := pemCSR(t, "a")
	rid := func(i int) string { return fmt.Sprintf("7d444840-9dc0-11d1-b245-5ffdce74fa%02d", i) }
	var got []string
	for _, id := range []int{1, 2, 3, 1} {
		_, err := c.CreateCertificate(ctx, create(fmt.Sprintf("c%d", id), rid(id), csr))
		got = append(got, status.Code(err).String())
	}
	now = now.Add(time.Second)
	_, err := c.CreateCertificate(ctx, create("c3", rid(3), csr))
	got = append(got, status.Code(err).String())
	want := []string{"OK", "OK", "ResourceExhausted", "OK", "OK"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("codes (-want +got):\n%s", diff)
	}
	if f.Throttled() != 1 || f.Issued() != 3 {
		t.Errorf("throttled %d, issued %d; want 1 and 3", f.Throttled(), f.Issued())
	}
}
