package pipeline

import (
	"testing"
	"time"
)

func TestPollDelay(t *testing.T) {
	t.Parallel()
	s := PollSchedule{Initial: 2 * time.Second, Multiplier: 1.5, Max: 10 * time.Second, Jitter: 0.2, LateAfter: 10 * time.Minute, LateInterval: 5 * time.Minute, Deadline: 24 * time.Hour}
	tests := []struct {
		name    string
		n       int
		elapsed time.Duration
		u       float64
		want    time.Duration
	}{
		{"first poll, mean jitter", 0, 0, 0.5, 2 * time.Second},
		{"first poll, least jitter", 0, 0, 0, 1600 * time.Millisecond},
		{"first poll, most jitter", 0, 0, 1, 2400 * time.Millisecond},
		{"grows by the multiplier", 2, 5 * time.Second, 0.5, 4500 * time.Millisecond},
		{"capped at Max", 10, 2 * time.Minute, 0.5, 10 * time.Second},
		{"late phase", 60, 10 * time.Minute, 0.5, 5 * time.Minute},
		{"late phase jittered", 60, time.Hour, 0, 4 * time.Minute},
	}
	for _, tc := range tests {
		if got := s.Delay(tc.n, tc.elapsed, tc.u); got != tc.want {
			t.Errorf("%s: Delay(%d, %s, %g) = %s, want %s", tc.name, tc.n, tc.elapsed, tc.u, got, tc.want)
		}
	}
	one := s
	one.LateAfter = 0
	if got := one.Delay(500, 20*time.Hour, 0.5); got != 10*time.Second {
		t.Errorf("LateAfter 0 keeps the first phase: got %s", got)
	}
}

func TestPollsUntil(t *testing.T) {
	t.Parallel()
	fixed := PollSchedule{Initial: 10 * time.Second, Multiplier: 1, Max: 10 * time.Second, Deadline: time.Hour}
	if got := fixed.PollsUntil(time.Hour); got != 360 {
		t.Errorf("fixed 10s for an hour: %d polls, want 360", got)
	}
	// 2, 3, 4.5, 6.75 s, then every 10 s to 10 min (63 polls), then every 5 min (286).
	late := DefaultPoll
	got := late.PollsUntil(24 * time.Hour)
	if got < 345 || got > 352 {
		t.Errorf("default schedule to 24h: %d polls, want about 349", got)
	}
	if all := late.Scale(60); all.PollsUntil(24*time.Hour/60) != got {
		t.Errorf("scaling the schedule changes its poll count: %d != %d", all.PollsUntil(24*time.Hour/60), got)
	}
}
