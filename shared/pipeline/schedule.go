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
// for the measurements that chose it).
var DefaultPoll = PollSchedule{
	Initial:       2 * time.Second,
	Multiplier:    1.5,
	Max:           10 * time.Second,
	Jitter:        0.2,
	FastFor:       10 * time.Second,
	CheckIns:      ClientCheckIns,
	CheckInMargin: 5 * time.Second,
	LateAfter:     10 * time.Minute,
	LateInterval:  5 * time.Minute,
	Deadline:      24 * time.Hour,
}

// ClientCheckIns are when a ChromeOS client that missed the push of its
// signData asks for its next instruction, counted from the process's start
// (about 30 s, 2 min and 8 min; Chromium's back-off may bring each up to a
// tenth earlier), before it falls back to every 8 hours.
var ClientCheckIns = []time.Duration{30 * time.Second, 2 * time.Minute, 8 * time.Minute}

// PollSchedule says when the poller asks for the signature again: Initial after
// signData, then each delay times Multiplier up to Max, each randomised by
// ±Jitter (a fraction); once LateAfter has passed since signData, every
// LateInterval (±Jitter); until Deadline after signData. A client that has
// not signed within minutes is asleep or offline: polling it often costs
// calls and gains little. LateAfter 0 keeps the first phase to the end.
//
// FastFor, when set, ends the first phase that long after signData: a client
// online when asked answers within seconds (the push wakes it), and one that
// missed the push answers only when it checks in. Until LateAfter the poller
// then asks CheckInMargin after each of the client's CheckIns (counted from
// the process's start), and at least every LateInterval (+Jitter), so that
// the longest gap between polls stays QuietestGap.
type PollSchedule struct {
	Initial       time.Duration
	Multiplier    float64
	Max           time.Duration
	Jitter        float64
	FastFor       time.Duration
	CheckIns      []time.Duration
	CheckInMargin time.Duration
	LateAfter     time.Duration
	LateInterval  time.Duration
	Deadline      time.Duration
}

// Next is when poll n (0-based) comes, asked at now, for a process that
// started at start (zero: unknown, taken as since) and whose signData was
// asked for at since; u is a uniform draw in [0,1) that applies the jitter.
// The caller caps it at the deadline.
func (s PollSchedule) Next(n int, start, since, now time.Time, u float64) time.Time {
	elapsed := now.Sub(since)
	if s.FastFor <= 0 || elapsed < s.FastFor || (s.LateAfter > 0 && elapsed >= s.LateAfter) {
		return now.Add(s.Delay(n, elapsed, u))
	}
	if start.IsZero() {
		start = since
	}
	at := now.Add(s.checkInGap())
	for _, c := range s.CheckIns {
		if t := start.Add(c + s.CheckInMargin); t.After(now) {
			if t.Before(at) {
				at = t
			}
			break
		}
	}
	return at
}

// checkInGap is the longest the poller waits between the first phase and
// LateAfter when no check-in comes sooner: the late phase's longest gap.
func (s PollSchedule) checkInGap() time.Duration {
	d := s.LateInterval
	if d <= 0 {
		d = s.Max
	}
	return time.Duration(float64(d) * (1 + s.Jitter))
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
// average (the jitter's mean), its process having started as signData was
// asked for.
func (s PollSchedule) PollsUntil(d time.Duration) int {
	var since time.Time // any fixed instant
	now := since
	for n := 0; ; n++ {
		now = s.Next(n, since, since, now, 0.5)
		if now.Sub(since) >= d || n >= 10_000_000 {
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
	s.FastFor, s.CheckInMargin = div(s.FastFor), div(s.CheckInMargin)
	if s.CheckIns != nil {
		c := make([]time.Duration, len(s.CheckIns))
		for i, d := range s.CheckIns {
			c[i] = div(d)
		}
		s.CheckIns = c
	}
	return s
}
