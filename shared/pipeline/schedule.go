package pipeline

import (
	"math"
	"time"
)

// Defaults of the pipeline's settings: what a zero field of Pipeline means,
// and the defaults of their environment variables (shared/config declares
// them with these values; its tests hold the two together).
const (
	// DefaultMaxAttempts is the task queues' default max attempts.
	DefaultMaxAttempts = 10
	// DefaultTTL is how long finished records are kept by default.
	DefaultTTL = 30 * 24 * time.Hour
	// DefaultLease is how long a step with an external side effect (a claim,
	// signData, the CA, an upload) keeps other deliveries away while its call
	// is in flight.
	DefaultLease = 2 * time.Minute
)

// DefaultPoll is the default poll schedule (see the README's Performance section
// for the measurement that chose it).
var DefaultPoll = PollSchedule{
	Initial:      2 * time.Second,
	Multiplier:   1.5,
	Max:          10 * time.Second,
	Jitter:       0.2,
	LateAfter:    10 * time.Minute,
	LateInterval: 5 * time.Minute,
	Deadline:     24 * time.Hour,
}

// PollSchedule says when the poller asks for the signature again: Initial after
// signData, then each delay times Multiplier up to Max, each randomised by
// ±Jitter (a fraction); once LateAfter has passed since signData, every
// LateInterval (±Jitter); until Deadline after signData. A client that has
// not signed within minutes is asleep or offline: polling it often costs
// calls and gains little. LateAfter 0 keeps the first phase to the end.
type PollSchedule struct {
	Initial      time.Duration
	Multiplier   float64
	Max          time.Duration
	Jitter       float64
	LateAfter    time.Duration
	LateInterval time.Duration
	Deadline     time.Duration
}

// Delay is the wait before poll n (0-based) when elapsed has passed since
// signData, for a uniform draw u in [0,1) that applies the jitter.
func (s PollSchedule) Delay(n int, elapsed time.Duration, u float64) time.Duration {
	d := float64(s.Initial) * math.Pow(s.Multiplier, float64(n))
	if d > float64(s.Max) {
		d = float64(s.Max)
	}
	if s.LateAfter > 0 && s.LateInterval > 0 && elapsed >= s.LateAfter {
		d = float64(s.LateInterval)
	}
	return time.Duration(d * (1 + s.Jitter*(2*u-1)))
}

// PollsUntil is how many polls a client that never signs costs until d, on
// average (the jitter's mean).
func (s PollSchedule) PollsUntil(d time.Duration) int {
	var t time.Duration
	for n := 0; ; n++ {
		t += s.Delay(n, t, 0.5)
		if t >= d || n >= 10_000_000 {
			return n + 1 // the poll at the deadline itself
		}
	}
}

// QuietestGap is the longest wait between two polls, jitter included: a live
// process's record changes at least this often.
func (s PollSchedule) QuietestGap() time.Duration {
	d := s.Max
	if s.LateAfter > 0 && s.LateInterval > d {
		d = s.LateInterval
	}
	return time.Duration(float64(d) * (1 + s.Jitter))
}

// Scale divides the schedule's durations by f (for time-scaled runs).
func (s PollSchedule) Scale(f float64) PollSchedule {
	div := func(d time.Duration) time.Duration { return time.Duration(float64(d) / f) }
	s.Initial, s.Max, s.LateAfter, s.LateInterval, s.Deadline = div(s.Initial), div(s.Max), div(s.LateAfter), div(s.LateInterval), div(s.Deadline)
	return s
}
