// Package schedule compares poll schedules: it runs the same simulated
// clients once per schedule and reports, for each, the latency it adds and
// the operations.get calls it costs (the local run's -compare-schedules).
package schedule

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// Spec names a poll schedule to compare, in real time.
type Spec struct {
	Name string
	Poll pipeline.PollSchedule
}

// String describes the schedule.
func (s Spec) String() string {
	p := s.Poll
	d := ""
	if p.Multiplier == 1 || p.Initial == p.Max {
		d = fmt.Sprintf("every %s", p.Max)
	} else {
		d = fmt.Sprintf("%s x%g to %s", p.Initial, p.Multiplier, p.Max)
	}
	if p.Jitter > 0 {
		d += fmt.Sprintf(" ±%g%%", p.Jitter*100)
	}
	if p.FastFor > 0 && len(p.CheckIns) > 0 {
		var c []string
		for _, ci := range p.CheckIns {
			c = append(c, ci.String())
		}
		d += fmt.Sprintf(" for %s, then %s after the check-ins at %s", p.FastFor, p.CheckInMargin, strings.Join(c, ", "))
	}
	if p.LateAfter > 0 {
		d += fmt.Sprintf(", after %s every %s", p.LateAfter, p.LateInterval)
	}
	return d
}

// Specs are the schedules the local run compares: the default, the default
// without its check-in phase (the default before it), a fixed 10-second
// interval, the first phase of the default alone, and the first default (a
// single phase capped at a minute).
func Specs() []Spec {
	d := pipeline.DefaultPoll
	noCheckIns := d
	noCheckIns.FastFor = 0
	fixed := pipeline.PollSchedule{Initial: 10 * time.Second, Multiplier: 1, Max: 10 * time.Second, Deadline: d.Deadline}
	firstPhase := noCheckIns
	firstPhase.LateAfter, firstPhase.LateInterval = 0, 0
	previous := firstPhase
	previous.Max = time.Minute
	return []Spec{
		{Name: "default", Poll: d},
		{Name: "no-check-ins", Poll: noCheckIns},
		{Name: "fixed-10s", Poll: fixed},
		{Name: "one-phase-10s", Poll: firstPhase},
		{Name: "one-phase-60s", Poll: previous},
	}
}

// Compare runs o once per schedule, with the same seed and so the
// same clients and delays. o's delays and schedule deadline are already
// divided by o.TimeScale; the specs are in real time and scaled here.
// deadline is the production poll deadline the silent clients' cost is
// extrapolated to. Each run's report is passed to each (may be nil).
func Compare(ctx context.Context, o simulation.Options, specs []Spec, deadline time.Duration, progress io.Writer, each func(Spec, *simulation.Report)) ([]simulation.ScheduleResult, error) {
	scale := o.TimeScale
	if scale <= 0 {
		scale = 1
	}
	runDeadline := o.Schedule.Deadline
	var out []simulation.ScheduleResult
	for _, s := range specs {
		oi := o
		oi.Schedule = s.Poll.Scale(scale)
		oi.Schedule.Deadline = runDeadline
		if progress != nil {
			fmt.Fprintf(progress, "schedule %s (%s)\n", s.Name, s)
		}
		r, err := simulation.Run(ctx, oi)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: %w", s.Name, err)
		}
		if each != nil {
			each(s, r)
		}
		res := simulation.ScheduleResult{
			Name: s.Name, Schedule: s.String(),
			AddedLatency: r.AddedLatencyUnscaled, TimeToCertificate: r.TimeToCertificateUnscaled,
			OperationsGet: r.PerEnrollment.APICalls[cpemulator.MethodOperationsGet],
			RunDeadline:   time.Duration(float64(runDeadline) * scale).String(),
			Deadline:      deadline.String(),
			Outcomes:      r.Outcomes, OK: r.OK(),
		}
		res.SilentPolls = s.Poll.PollsUntil(deadline)
		var signed, signedOps, total float64
		for sc, c := range r.PerScenario {
			ops := c.APICalls[cpemulator.MethodOperationsGet] * float64(c.Clients)
			switch sc {
			case simulation.Online, simulation.Slow:
				signed += float64(c.Clients)
				signedOps += ops
				total += ops
			case simulation.Silent:
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
