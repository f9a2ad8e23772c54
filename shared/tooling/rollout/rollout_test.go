package rollout

import (
	"context"
	"os"
	"testing"
	"time"
)

// A small rollout under a small quota, paced and unpaced: paced, every
// process is uploaded, none failed by quota, each asked to sign exactly once,
// no invariant broken. Timings are reported, not asserted.
func TestSmallRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("a rollout of 400 processes")
	}
	const n, q = 400, 300
	r, err := Run(context.Background(), Options{Processes: n, Window: 10 * time.Second, QuotaPerMinute: q, CAPerSecond: 7, Seed: 1, Unpaced: true, Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Paced
	if p.Uploaded != n || p.FailedByCause["quota"] != 0 || p.SignDataOnce != n || p.SignDataNot != 0 || len(p.Violations) > 0 {
		t.Errorf("paced: uploaded %d, quota failures %d, signData once %d / not once %d, violations %q; want 400, 0, 400, 0, none",
			p.Uploaded, p.FailedByCause["quota"], p.SignDataOnce, p.SignDataNot, p.Violations)
	}
	for _, res := range r.Runs {
		t.Logf("%s: completion %.0fs, floor %.0fs (x%.2f), 429s %d, peak in flight %d, time to certificate p50 %.0fs p99 %.0fs",
			res.Mode, res.CompletionSeconds, res.FloorSeconds, res.Ratio, res.Exhausted, res.PeakInFlight, res.TimeToCertificate.P50, res.TimeToCertificate.P99)
	}
}
