// Package rollout is the rollout benchmark: a burst of processes, as when an
// administrator pushes a new certificate profile to an organization, run
// through the whole adapter in one process (shared/tooling/simulation) under
// an API quota and a CA issuance rate, once paced (the claim queue and the
// queues' dispatch rates from the quota, shared/pipeline/quota.go) and once
// as before pacing, with the same clients. It reports, for each, how the
// processes ended (failures by cause), signData per process, the 429s, the
// completion time against the quota floor (the API requests served divided
// by the quota), time to certificate and the peak of processes in flight,
// and draws both on one plot (plot.go).
package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// Options describe a rollout.
type Options struct {
	// Processes start evenly over Window.
	Processes int
	Window    time.Duration
	// QuotaPerMinute is the API's quota; CAPerSecond the CA's issuance rate
	// (per CA connection; 0: none).
	QuotaPerMinute int
	CAPerSecond    int
	// Runs is how many times each mode runs (seeds Seed, Seed+1, ...); the
	// report gives each run and the medians.
	Runs int
	Seed uint64
	// TimeScale divides the client delays and the quota's window (on the
	// real clock); 1 on the virtual clock.
	TimeScale float64
	// RealClock runs on the real clock (TimeScale makes it take minutes);
	// default the virtual clock, on which the run takes the CPU time it
	// needs and every figure is in real (unscaled) time.
	RealClock bool
	// Unpaced also runs the same rollout without pacing; default true in
	// the local run.
	Unpaced bool
	// SampleEvery is the timeline's step (clock time); default about 1/150
	// of the rollout's expected length, at least Window/6 and a second.
	SampleEvery time.Duration
	// Timeout bounds each run in clock time; default 24h.
	Timeout time.Duration
	// Progress, when set, gets a line per run.
	Progress io.Writer
	// Base, when set, adjusts the simulation's options of every run.
	Base func(o *simulation.Options)
}

// Report is the benchmark's result. JSON names are the -report contract.
type Report struct {
	Processes      int     `json:"processes"`
	WindowSeconds  float64 `json:"window_seconds"`
	QuotaPerMinute int     `json:"api_quota_per_minute"`
	CAPerSecond    int     `json:"ca_issuance_per_second"`
	TimeScale      float64 `json:"time_scale"`
	VirtualClock   bool    `json:"virtual_clock"`
	// Paced and Unpaced are the medians of their runs (per figure).
	Paced   *Result `json:"paced"`
	Unpaced *Result `json:"unpaced,omitempty"`
	// Runs are every run, in order.
	Runs []*Result `json:"runs"`
}

// Result is one run's figures (or, in Report.Paced/Unpaced, their medians).
// Times are seconds of real time (clock time times TimeScale).
type Result struct {
	Mode      string `json:"mode"` // "paced" or "unpaced"
	Seed      uint64 `json:"seed,omitempty"`
	Uploaded  int    `json:"uploaded"`
	Failed    int    `json:"failed"`
	Elsewhere int    `json:"claimed_elsewhere"`
	// Unfinished processes had not ended when the run timed out.
	Unfinished int `json:"unfinished"`
	// FailedByCause counts the failures by cause: "quota" (a 429 decided
	// it; must be 0), "deadline", "other".
	FailedByCause map[string]int `json:"failed_by_cause"`
	// SignDataOnce counts processes asked to sign exactly once; SignDataNot
	// the others (must be 0).
	SignDataOnce int `json:"signdata_exactly_once"`
	SignDataNot  int `json:"signdata_not_once"`
	// APICalls were served within the quota, Exhausted answered 429.
	APICalls    int `json:"api_calls_served"`
	Exhausted   int `json:"api_429s"`
	CAThrottled int `json:"ca_throttled"`
	// CompletionSeconds is from the first process's start to the last one's
	// end; FloorSeconds is APICalls divided by the quota (per second): no
	// adapter finishes sooner; Ratio is the first over the second.
	CompletionSeconds float64 `json:"completion_seconds"`
	FloorSeconds      float64 `json:"floor_seconds"`
	Ratio             float64 `json:"completion_over_floor"`
	// TimeToCertificate is from a process's start to its upload, seconds.
	TimeToCertificate simulation.Percentiles `json:"time_to_certificate_s"`
	PeakInFlight      int                    `json:"peak_in_flight"`
	PubSubDeliveries  int64                  `json:"pubsub_deliveries"`
	DeadLettered      int64                  `json:"pubsub_dead_lettered"`
	TaskDispatches    int                    `json:"task_dispatches"`
	WallSeconds       float64                `json:"wall_seconds"`
	Violations        []string               `json:"violations,omitempty"`
	// Timeline and CallsPerMinute (served, 429) are for the plot; medians
	// keep the first run's.
	Timeline       []simulation.Sample `json:"timeline,omitempty"`
	CallsPerMinute []int               `json:"api_calls_per_minute,omitempty"`
	QuotaPerMinute []int               `json:"api_429s_per_minute,omitempty"`
	windowSeconds  float64
}

func (o *Options) defaults() error {
	if o.Processes <= 0 || o.Window < 0 || o.QuotaPerMinute <= 0 {
		return errors.New("rollout: want processes > 0, a window >= 0 and a quota > 0")
	}
	if o.Runs <= 0 {
		o.Runs = 1
	}
	if o.TimeScale <= 0 || !o.RealClock {
		o.TimeScale = 1
	}
	if o.SampleEvery <= 0 {
		// About 150 samples over the rollout's expected length (6
		// requests per process at the quota): each reads every record.
		expected := time.Duration(float64(o.Processes) * pipeline.CallsPerEnrollment / float64(o.QuotaPerMinute) * float64(time.Minute) / o.TimeScale)
		o.SampleEvery = max(o.Window/6, expected/150, time.Duration(float64(time.Second)/o.TimeScale))
	}
	if o.Timeout <= 0 {
		o.Timeout = 24 * time.Hour
	}
	return nil
}

// Run runs the rollout, paced and (with Unpaced) unpaced, Runs times each.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := &Report{Processes: o.Processes, WindowSeconds: o.Window.Seconds(), QuotaPerMinute: o.QuotaPerMinute,
		CAPerSecond: o.CAPerSecond, TimeScale: o.TimeScale, VirtualClock: !o.RealClock}
	modes := []bool{true}
	if o.Unpaced {
		modes = append(modes, false)
	}
	byMode := map[bool][]*Result{}
	for i := range o.Runs {
		for _, paced := range modes {
			res, err := runOnce(ctx, o, paced, o.Seed+uint64(i))
			if err != nil {
				return nil, err
			}
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "%s seed %d: uploaded %d, failed %d (quota %d), 429s %d, completion %.0fs, floor %.0fs (x%.2f), wall %.1fs\n",
					res.Mode, res.Seed, res.Uploaded, res.Failed, res.FailedByCause["quota"], res.Exhausted, res.CompletionSeconds, res.FloorSeconds, res.Ratio, res.WallSeconds)
			}
			r.Runs = append(r.Runs, res)
			byMode[paced] = append(byMode[paced], res)
		}
	}
	r.Paced = medians(byMode[true])
	if o.Unpaced {
		r.Unpaced = medians(byMode[false])
	}
	return r, nil
}

func runOnce(ctx context.Context, o Options, paced bool, seed uint64) (*Result, error) {
	so := simulation.Options{
		Clients:        o.Processes,
		FastDelay:      simulation.Range{Min: time.Second, Max: 5 * time.Second}.Scale(o.TimeScale),
		Seed:           seed,
		TimeScale:      o.TimeScale,
		QuotaPerMinute: o.QuotaPerMinute,
		CAPerSecond:    o.CAPerSecond,
		Pace:           paced,
		SampleEvery:    o.SampleEvery,
		Timeout:        time.Duration(float64(o.Timeout) / o.TimeScale),
		// Production's backoffs (terraform: claim_retry_backoff,
		// tasks_retry_backoff) and lease, scaled.
		PubSubBackoff:  simulation.Range{Min: 10 * time.Second, Max: 600 * time.Second}.Scale(o.TimeScale),
		TaskMinBackoff: time.Duration(float64(2*time.Second) / o.TimeScale),
		TaskMaxBackoff: time.Duration(float64(300*time.Second) / o.TimeScale),
		Lease:          time.Duration(float64(2*time.Minute) / o.TimeScale),
		// The hourly sweep re-drives what a dropped task left behind.
		SweepAfter: time.Duration(float64(time.Hour) / o.TimeScale),
		SweepEvery: time.Duration(float64(time.Hour) / o.TimeScale),
	}
	if o.Processes > 1 && o.Window > 0 {
		so.Arrival = float64(o.Processes-1) / (o.Window.Seconds() / o.TimeScale)
	}
	if o.Base != nil {
		o.Base(&so)
	}
	if !o.RealClock {
		v := clock.NewVirtual(time.Now().UTC().Truncate(time.Second))
		v.Quantum = time.Millisecond
		defer v.Stop()
		so.Clock = v
	}
	w, err := simulation.Execute(ctx, &so)
	if err != nil {
		return nil, err
	}
	return measure(ctx, w, &so, o, paced, seed), nil
}

// measure reads a finished run's figures.
func measure(ctx context.Context, w *simulation.World, so *simulation.Options, o Options, paced bool, seed uint64) *Result {
	scale := o.TimeScale
	rep := w.Report(so)
	res := &Result{Mode: "unpaced", Seed: seed, FailedByCause: map[string]int{"quota": 0}, windowSeconds: 60 / scale}
	if paced {
		res.Mode = "paced"
	}
	res.Uploaded, res.Failed = rep.Outcomes.Uploaded, rep.Outcomes.Failed
	res.Elsewhere, res.Unfinished = rep.Outcomes.ClaimedElsewhere, rep.Outcomes.Unfinished
	res.Violations = append(append(res.Violations, rep.Violations...), rep.Unexpected...)
	res.PubSubDeliveries, res.DeadLettered = rep.PubSub.Deliveries, rep.PubSub.DeadLettered
	res.TaskDispatches = rep.Tasks.Dispatched
	res.WallSeconds = w.Wall().Seconds()
	emu := w.Emulator()
	var first, last time.Time
	var ttc []float64
	for _, c := range w.Clients() {
		snap, ok := emu.Process(c.Name)
		if !ok {
			continue
		}
		if snap.SignDataCalls == 1 {
			res.SignDataOnce++
		} else if c.Scenario != simulation.Elsewhere {
			res.SignDataNot++
		}
		if first.IsZero() || snap.Created.Before(first) {
			first = snap.Created
		}
		rec, err := w.Store().Peek(ctx, c.Key)
		if err != nil {
			continue
		}
		if rec.State.Terminal() && rec.UpdatedAt.After(last) {
			last = rec.UpdatedAt
		}
		switch rec.State {
		case progress.StateUploaded:
			ttc = append(ttc, rec.UploadedAt.Sub(snap.Created).Seconds()*scale)
		case progress.StateFailed, progress.StateFailing:
			res.FailedByCause[cause(rec.LastError)]++
		}
	}
	if !last.IsZero() {
		res.CompletionSeconds = last.Sub(first).Seconds() * scale
	}
	res.TimeToCertificate = percentiles(ttc)
	if q, ok := emu.Quota(); ok {
		for _, win := range q.Windows {
			res.APICalls += win.Served
			res.Exhausted += win.Exhausted
			res.CallsPerMinute = append(res.CallsPerMinute, win.Served)
			res.QuotaPerMinute = append(res.QuotaPerMinute, win.Exhausted)
		}
	}
	res.FloorSeconds = float64(res.APICalls) / float64(o.QuotaPerMinute) * 60
	if res.FloorSeconds > 0 {
		res.Ratio = res.CompletionSeconds / res.FloorSeconds
	}
	res.Timeline = w.Timeline()
	for i := range res.Timeline {
		res.Timeline[i].At = time.Duration(float64(res.Timeline[i].At) * scale)
		res.PeakInFlight = max(res.PeakInFlight, res.Timeline[i].InFlight)
	}
	res.CAThrottled = w.CAThrottled()
	return res
}

// cause classifies a failure by its recorded reason.
func cause(reason string) string {
	r := strings.ToLower(reason)
	switch {
	case strings.Contains(r, "429") || strings.Contains(r, "resource_exhausted") || strings.Contains(r, "quota"):
		return "quota"
	case strings.Contains(r, "deadline") || strings.Contains(r, "never signed"):
		return "deadline"
	}
	return "other"
}

func percentiles(v []float64) simulation.Percentiles {
	if len(v) == 0 {
		return simulation.Percentiles{}
	}
	slices.Sort(v)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(v)))) - 1
		return math.Round(v[min(max(i, 0), len(v)-1)]*10) / 10
	}
	return simulation.Percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99), N: len(v)}
}

// medians is a Result whose every figure is the median of rs's; the
// timeline and the calls per minute are the first run's.
func medians(rs []*Result) *Result {
	if len(rs) == 0 {
		return nil
	}
	if len(rs) == 1 {
		return rs[0]
	}
	m := &Result{Mode: rs[0].Mode, FailedByCause: map[string]int{}, Timeline: rs[0].Timeline,
		CallsPerMinute: rs[0].CallsPerMinute, QuotaPerMinute: rs[0].QuotaPerMinute, windowSeconds: rs[0].windowSeconds}
	mi := func(f func(*Result) int) int {
		return int(median(rs, func(r *Result) float64 { return float64(f(r)) }))
	}
	mf := func(f func(*Result) float64) float64 { return median(rs, f) }
	m.Uploaded = mi(func(r *Result) int { return r.Uploaded })
	m.Failed = mi(func(r *Result) int { return r.Failed })
	m.Elsewhere = mi(func(r *Result) int { return r.Elsewhere })
	m.Unfinished = mi(func(r *Result) int { return r.Unfinished })
	for _, r := range rs {
		for k := range r.FailedByCause {
			m.FailedByCause[k] = mi(func(r *Result) int { return r.FailedByCause[k] })
		}
		m.Violations = append(m.Violations, r.Violations...)
	}
	m.SignDataOnce = mi(func(r *Result) int { return r.SignDataOnce })
	m.SignDataNot = mi(func(r *Result) int { return r.SignDataNot })
	m.APICalls = mi(func(r *Result) int { return r.APICalls })
	m.Exhausted = mi(func(r *Result) int { return r.Exhausted })
	m.CAThrottled = mi(func(r *Result) int { return r.CAThrottled })
	m.CompletionSeconds = mf(func(r *Result) float64 { return r.CompletionSeconds })
	m.FloorSeconds = mf(func(r *Result) float64 { return r.FloorSeconds })
	m.Ratio = mf(func(r *Result) float64 { return r.Ratio })
	m.TimeToCertificate = simulation.Percentiles{
		P50: mf(func(r *Result) float64 { return r.TimeToCertificate.P50 }),
		P95: mf(func(r *Result) float64 { return r.TimeToCertificate.P95 }),
		P99: mf(func(r *Result) float64 { return r.TimeToCertificate.P99 }),
		N:   mi(func(r *Result) int { return r.TimeToCertificate.N }),
	}
	m.PeakInFlight = mi(func(r *Result) int { return r.PeakInFlight })
	m.PubSubDeliveries = int64(mi(func(r *Result) int { return int(r.PubSubDeliveries) }))
	m.DeadLettered = int64(mi(func(r *Result) int { return int(r.DeadLettered) }))
	m.TaskDispatches = mi(func(r *Result) int { return r.TaskDispatches })
	m.WallSeconds = mf(func(r *Result) float64 { return r.WallSeconds })
	return m
}

func median(rs []*Result, f func(*Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
