package simulation

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/cpemulator"
)

// ScheduleSpec names a poll schedule to compare, in real time. Shape.Poll is
// a schedule the pipeline runs itself; with Shape.LateAfter set the run
// moves the poll tasks (see Shape).
type ScheduleSpec struct {
	Name  string
	Shape Shape
}

// String describes the schedule.
func (s ScheduleSpec) String() string {
	p := s.Shape.Poll
	d := ""
	if p.Multiplier == 1 || p.Initial == p.Max {
		d = fmt.Sprintf("every %s", p.Max)
	} else {
		d = fmt.Sprintf("%s x%g to %s", p.Initial, p.Multiplier, p.Max)
	}
	if p.Jitter > 0 {
		d += fmt.Sprintf(" ±%g%%", p.Jitter*100)
	}
	if s.Shape.LateAfter > 0 {
		d += fmt.Sprintf(", after %s every %s", s.Shape.LateAfter, s.Shape.LateMax)
	}
	return d
}

// Schedules are the schedules the local run compares: the default, a fixed
// 10-second interval and alternatives.
func Schedules() []ScheduleSpec {
	d := config.DefaultPoll
	fixed := config.PollSchedule{Initial: 10 * time.Second, Multiplier: 1, Max: 10 * time.Second, Deadline: d.Deadline}
	fast := config.PollSchedule{Initial: time.Second, Multiplier: 1.5, Max: 10 * time.Second, Jitter: 0.2, Deadline: d.Deadline}
	return []ScheduleSpec{
		{Name: "default", Shape: Shape{Poll: d}},
		{Name: "fixed-10s", Shape: Shape{Poll: fixed}},
		{Name: "fast-cap-10s", Shape: Shape{Poll: fast}},
		{Name: "two-phase", Shape: Shape{Poll: fast, LateAfter: 10 * time.Minute, LateMax: 5 * time.Minute}},
	}
}

// ScheduleResult is one row of the comparison. Latencies are unscaled.
type ScheduleResult struct {
	Name              string      `json:"name"`
	Schedule          string      `json:"schedule"`
	AddedLatency      Percentiles `json:"added_latency_ms"`
	TimeToCertificate Percentiles `json:"time_to_certificate_ms"`
	// OperationsGet per enrollment over the run (its deadline: RunDeadline).
	OperationsGet float64 `json:"operations_get_per_enrollment"`
	// OperationsGetSigned per client that signed (online and slow).
	OperationsGetSigned float64 `json:"operations_get_per_signed_client"`
	// SilentPolls is what a client that never signs costs until Deadline
	// (computed from the schedule); OperationsGetAtDeadline is the run's
	// per-enrollment figure with its silent clients costing that.
	RunDeadline             string   `json:"run_deadline"`
	Deadline                string   `json:"deadline"`
	SilentPolls             int      `json:"silent_polls_at_deadline"`
	OperationsGetAtDeadline float64  `json:"operations_get_per_enrollment_at_deadline"`
	Outcomes                Outcomes `json:"outcomes"`
	OK                      bool     `json:"ok"`
}

// CompareSchedules runs o once per schedule, with the same seed and so the
// same clients and delays. o's delays and schedule deadline are already
// divided by o.TimeScale; the specs are in real time and scaled here.
// deadline is the production poll deadline the silent clients' cost is
// extrapolated to. Each run's report is passed to each (may be nil).
func CompareSchedules(ctx context.Context, o Options, specs []ScheduleSpec, deadline time.Duration, progress io.Writer, each func(ScheduleSpec, *Report)) ([]ScheduleResult, error) {
	scale := o.TimeScale
	if scale <= 0 {
		scale = 1
	}
	runDeadline := o.Schedule.Deadline
	var out []ScheduleResult
	for _, s := range specs {
		oi := o
		oi.Schedule = ScaleSchedule(s.Shape.Poll, scale)
		oi.Schedule.Deadline = runDeadline
		oi.Shape = nil
		if s.Shape.LateAfter > 0 {
			sh := Shape{Poll: oi.Schedule, LateAfter: time.Duration(float64(s.Shape.LateAfter) / scale), LateMax: time.Duration(float64(s.Shape.LateMax) / scale)}
			oi.Shape = &sh
		}
		if progress != nil {
			fmt.Fprintf(progress, "schedule %s (%s)\n", s.Name, s)
		}
		r, err := Run(ctx, oi)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: %w", s.Name, err)
		}
		if each != nil {
			each(s, r)
		}
		res := ScheduleResult{
			Name: s.Name, Schedule: s.String(),
			AddedLatency: r.AddedLatencyUnscaled, TimeToCertificate: r.TimeToCertificateUnscaled,
			OperationsGet: r.PerEnrollment.APICalls[cpemulator.MethodOperationsGet],
			RunDeadline:   time.Duration(float64(runDeadline) * scale).String(),
			Deadline:      deadline.String(),
			Outcomes:      r.Outcomes, OK: r.OK(),
		}
		sh := s.Shape
		res.SilentPolls = sh.PollsUntil(deadline)
		var signed, signedOps, total float64
		for sc, c := range r.PerScenario {
			ops := c.APICalls[cpemulator.MethodOperationsGet] * float64(c.Clients)
			switch sc {
			case Online, Slow:
				signed += float64(c.Clients)
				signedOps += ops
				total += ops
			case Silent:
				total += float64(c.Clients) * float64(res.SilentPolls)
			default:
				total += ops
			}
		}
		if signed > 0 {
			res.OperationsGetSigned = signedOps / signed
		}
		if r.Clients > 0 {
			res.OperationsGetAtDeadline = total / float64(r.Clients)
		}
		out = append(out, res)
	}
	return out, nil
}

// ScaleSchedule divides a schedule's durations by f (the multiplier and the
// jitter are unchanged).
func ScaleSchedule(s config.PollSchedule, f float64) config.PollSchedule {
	s.Initial = time.Duration(float64(s.Initial) / f)
	s.Max = time.Duration(float64(s.Max) / f)
	s.Deadline = time.Duration(float64(s.Deadline) / f)
	return s
}
