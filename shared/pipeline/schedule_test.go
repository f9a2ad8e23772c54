package pipeline_test

import (
	"testing"
	"time"

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
			h := newHarness(t, cpemulator.Options{})
			h.p.Schedule = sched
			h.p.Jitter = func() float64 { return 0.5 }
			name, note := h.add(tc.spec)
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			h.drain()
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
