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
	// Before the check-ins: 2, 3, 4.5, 6.75 s, then every 10 s to 10 min
	// (63 polls), then every 5 min (286).
	before := DefaultPoll
	before.FastFor = 0
	if got := before.PollsUntil(24 * time.Hour); got < 345 || got > 352 {
		t.Errorf("schedule without check-ins to 24h: %d polls, want about 349", got)
	}
	// At 2, 5, 9.5 and 16.25 s; after the check-ins at 35, 125 and 485 s;
	// at 845 s (485 s plus the longest gap, 6 min); then every 5 min to 24 h
	// (285) and at the deadline.
	late := DefaultPoll
	got := late.PollsUntil(24 * time.Hour)
	if got != 294 {
		t.Errorf("default schedule to 24h: %d polls, want 294", got)
	}
	if all := late.Scale(60); all.PollsUntil(24*time.Hour/60) != got {
		t.Errorf("scaling the schedule changes its poll count: %d != %d", all.PollsUntil(24*time.Hour/60), got)
	}
}

func TestPollNext(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	s := DefaultPoll
	noCheckIns := s
	noCheckIns.FastFor = 0
	tests := []struct {
		name         string
		s            PollSchedule
		n            int
		start, since time.Time
		now          time.Time
		want         time.Time
	}{
		{"first poll", s, 0, start, at(time.Second), at(time.Second), at(3 * time.Second)},
		{"first phase, capped at Max", s, 3, start, start, at(9500 * time.Millisecond), at(16250 * time.Millisecond)},
		{"after the first phase: the 30 s check-in", s, 4, start, start, at(16250 * time.Millisecond), at(35 * time.Second)},
		{"then the 2 min check-in", s, 5, start, start, at(35 * time.Second), at(125 * time.Second)},
		{"then the 8 min check-in, 6 min later", s, 6, start, start, at(125 * time.Second), at(485 * time.Second)},
		{"no check-in left: the longest gap", s, 7, start, start, at(485 * time.Second), at(845 * time.Second)},
		{"late phase", s, 8, start, start, at(845 * time.Second), at(1145 * time.Second)},
		{"signData 100 s after the start: the check-in counts from the start", s, 4, start, at(100 * time.Second), at(112 * time.Second), at(125 * time.Second)},
		{"signData 9 min after the start: no check-in before the late phase", s, 4, start, at(9 * time.Minute), at(9*time.Minute + 20*time.Second), at(15*time.Minute + 20*time.Second)},
		{"start unknown: counts from signData", s, 4, time.Time{}, at(time.Minute), at(time.Minute + 16*time.Second), at(time.Minute + 35*time.Second)},
		{"FastFor 0: the first phase until LateAfter", noCheckIns, 4, start, start, at(16250 * time.Millisecond), at(26250 * time.Millisecond)},
	}
	for _, tc := range tests {
		if got := tc.s.Next(tc.n, tc.start, tc.since, tc.now, 0.5); !got.Equal(tc.want) {
			t.Errorf("%s: Next = %s after the start, want %s", tc.name, got.Sub(start), tc.want.Sub(start))
		}
	}
	if got, want := s.QuietestGap(), 6*time.Minute; got != want {
		t.Errorf("QuietestGap = %s, want %s (no gap of Next is longer)", got, want)
	}
}
