package rollout

import (
	"fmt"
	"io"
	"maps"
	"slices"
)

// Print writes the report as a table, paced and unpaced side by side.
func Print(w io.Writer, r *Report) {
	clockName := "virtual clock"
	if !r.VirtualClock {
		clockName = fmt.Sprintf("real clock, time scale %g", r.TimeScale)
	}
	fmt.Fprintf(w, "\nrollout: %d processes within %.0fs, API quota %d/min, CA %d/s per connection (%s)\n",
		r.Processes, r.WindowSeconds, r.QuotaPerMinute, r.CAPerSecond, clockName)
	rs := []*Result{r.Paced}
	if r.Unpaced != nil {
		rs = append(rs, r.Unpaced)
	}
	row := func(name string, f func(*Result) string) {
		fmt.Fprintf(w, "%-34s", name)
		for _, res := range rs {
			fmt.Fprintf(w, " %22s", f(res))
		}
		fmt.Fprintln(w)
	}
	row("", func(res *Result) string { return res.Mode })
	row("uploaded", func(res *Result) string { return fmt.Sprint(res.Uploaded) })
	row("failed (by cause)", func(res *Result) string { return fmt.Sprintf("%d %s", res.Failed, causes(res.FailedByCause)) })
	row("unfinished", func(res *Result) string { return fmt.Sprint(res.Unfinished) })
	row("signData exactly once / not once", func(res *Result) string { return fmt.Sprintf("%d / %d", res.SignDataOnce, res.SignDataNot) })
	row("API requests served / 429s", func(res *Result) string { return fmt.Sprintf("%d / %d", res.APICalls, res.Exhausted) })
	row("CA throttled", func(res *Result) string { return fmt.Sprint(res.CAThrottled) })
	row("completion / quota floor", func(res *Result) string {
		return fmt.Sprintf("%.0fs / %.0fs", res.CompletionSeconds, res.FloorSeconds)
	})
	row("completion over floor", func(res *Result) string { return fmt.Sprintf("x%.2f", res.Ratio) })
	row("time to certificate p50/p95/p99", func(res *Result) string {
		p := res.TimeToCertificate
		return fmt.Sprintf("%.0f/%.0f/%.0fs", p.P50, p.P95, p.P99)
	})
	row("peak in flight (claimed, not ended)", func(res *Result) string { return fmt.Sprint(res.PeakInFlight) })
	row("Pub/Sub deliveries / dead-lettered", func(res *Result) string { return fmt.Sprintf("%d / %d", res.PubSubDeliveries, res.DeadLettered) })
	row("task dispatches", func(res *Result) string { return fmt.Sprint(res.TaskDispatches) })
	row("wall time", func(res *Result) string { return fmt.Sprintf("%.1fs", res.WallSeconds) })
	for _, res := range rs {
		for i, v := range res.Violations {
			if i == 10 {
				fmt.Fprintf(w, "... and %d more\n", len(res.Violations)-10)
				break
			}
			fmt.Fprintln(w, res.Mode, "VIOLATION", v)
		}
	}
}

func causes(m map[string]int) string {
	s := "("
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, m[k])
	}
	return s + ")"
}
