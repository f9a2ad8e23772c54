package pipeline_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// The poller follows the two-phase schedule: fast while a client may still
// answer soon, then every LateInterval; the polls land when the schedule says,
// and a client that answers late is still found on the next late poll.
func TestPollsFollowTheSchedule(t *testing.T) {
	t.Parallel()
	sched := pipeline.PollSchedule{Initial: 2 * time.Second, Multiplier: 1.5, Max: 10 * time.Second, LateAfter: 10 * time.Minute, LateInterval: 5 * time.Minute, Deadline: time.Hour}
	tests := []struct {
		name      string
		spec      cpemulator.ClientSpec
		wantPolls int
		uploaded  bool
	}{
		{"silent to the deadline", cpemulator.ClientSpec{Behaviour: cpemulator.Silent}, sched.PollsUntil(time.Hour), false},
		// 2+3+4.5+6.75 = 16.25 s, then 10 s polls to 10 min: poll 63 at 606.25 s;
		// late polls at 906.25, 1206.25: the signature of 17 min is found at 1206.25 s.
		{"signs after 17 minutes", cpemulator.ClientSpec{SignDelay: 17 * time.Minute}, 65, true},
		// The last late poll is at 3306.25 s; the poll at the deadline finds it.
		{"signs 2 minutes before the deadline", cpemulator.ClientSpec{SignDelay: 58 * time.Minute}, sched.PollsUntil(time.Hour), true},
		{"signs after 3 seconds", cpemulator.ClientSpec{SignDelay: 3 * time.Second}, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, name := runPolls(t, sched, tc.spec, 0)
			if tc.uploaded {
				h.wantUploaded(name)
			} else {
				h.wantFailed(name, "did not answer")
			}
			if got := h.snap(name).Requests[cpemulator.MethodOperationsGet]; got != tc.wantPolls {
				t.Errorf("operations.get %d times, want %d", got, tc.wantPolls)
			}
		})
	}
}

// With the default schedule, a client that missed the push is found by the
// poll just after its check-in, counted from the process's start (not from
// signData), and costs a handful of polls instead of one every 10 s.
func TestPollsAfterCheckIns(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff(cpemulator.DocumentedCheckIns, pipeline.ClientCheckIns); diff != "" {
		t.Errorf("the schedule's check-ins are not the client's (api.md) (-client +schedule):\n%s", diff)
	}
	sched := pipeline.DefaultPoll
	sched.Deadline = time.Hour
	tests := []struct {
		name      string
		spec      cpemulator.ClientSpec
		claimAt   time.Duration // after the process's start
		wantPolls int
		seenAt    time.Duration // after the process's start; 0: failed
	}{
		{"answers the push in 3 s", cpemulator.ClientSpec{SignDelay: 3 * time.Second}, 0, 2, 5 * time.Second},
		// Polls at 2, 5, 9.5, 16.25 s, then 35 s.
		{"checks in at 30 s", cpemulator.ClientSpec{CheckIns: []time.Duration{30 * time.Second}}, 0, 5, 35 * time.Second},
		{"checks in a tenth early", cpemulator.ClientSpec{CheckIns: []time.Duration{27 * time.Second}}, 0, 5, 35 * time.Second},
		{"checks in at 2 min", cpemulator.ClientSpec{CheckIns: []time.Duration{2 * time.Minute}}, 0, 6, 125 * time.Second},
		{"checks in at 8 min", cpemulator.ClientSpec{CheckIns: []time.Duration{8 * time.Minute}}, 0, 7, 485 * time.Second},
		// Claimed 100 s after the start: polls at 102, 105, 109.5, 116.25 s,
		// then just after the 2 min check-in.
		{"claimed 100 s late, checks in at 2 min", cpemulator.ClientSpec{CheckIns: []time.Duration{30 * time.Second, 2 * time.Minute}}, 100 * time.Second, 5, 125 * time.Second},
		{"never", cpemulator.ClientSpec{Behaviour: cpemulator.Silent}, 0, sched.PollsUntil(time.Hour), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, name := runPolls(t, sched, tc.spec, tc.claimAt)
			if tc.seenAt == 0 {
				h.wantFailed(name, "did not answer")
			} else {
				h.wantUploaded(name)
				if got := h.record(name).SignedAt.Sub(h.snap(name).Created).Round(time.Millisecond); got != tc.seenAt { // the API gives the start in µs
					t.Errorf("signature seen %s after the start, want %s", got, tc.seenAt)
				}
			}
			if got := h.snap(name).Requests[cpemulator.MethodOperationsGet]; got != tc.wantPolls {
				t.Errorf("operations.get %d times, want %d", got, tc.wantPolls)
			}
		})
	}
}

// runPolls claims one client's process claimAt after its start under sched,
// with the jitter at its middle, and runs it to its end.
func runPolls(t *testing.T, sched pipeline.PollSchedule, spec cpemulator.ClientSpec, claimAt time.Duration) (*harness, string) {
	t.Helper()
	h := newHarness(t, cpemulator.Options{})
	h.p.Schedule = sched
	h.p.Jitter = func() float64 { return 0.5 }
	name, note := h.add(spec)
	h.clk.advance(claimAt)
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	h.drain()
	return h, name
}
