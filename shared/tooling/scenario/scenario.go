// Package scenario declares the flags that describe a simulated enrollment
// run, once, for the two commands that run one: functions/cmd/local (in
// process) and functions/cmd/standins (on the local stand-ins of the cloud).
// The same command line describes the same clients, faults and schedule in
// both, so their reports compare.
package scenario

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// LocalDeadline is the poll deadline of a run on this machine unless
// POLL_DEADLINE or -deadline says otherwise: production's 24 hours would keep
// a run with silent clients going for a day.
const LocalDeadline = 15 * time.Minute

// Load is what -load sets, in this order, for the flags not given
// explicitly: the load benchmark's mix (80% of the clients sign in 1-5 s, 15%
// in 30 s-10 min, 5% never) at 250 arrivals per second, time-scaled by 60.
var Load = []struct{ Flag, Value string }{
	{"clients", "10000"}, {"slow", "0.15"}, {"silent", "0.05"},
	{"time-scale", "60"}, {"deadline", "30m"}, {"arrival", "250"},
}

// SlowAtCheckIns is -slow-delay's value for slow clients that sign at the
// documented check-ins (simulation.Options.SlowAtCheckIns).
const SlowAtCheckIns = "checkins"

// Scenario is a parsed scenario: the flags' values.
type Scenario struct {
	Clients                        int
	Report                         string
	Slow, Silent, Wrong, Elsewhere float64
	ErrorRate, LostRate            float64
	FastDelay, SlowDelay           string
	TimeScale                      float64
	Deadline                       time.Duration
	Arrival                        float64
	Seed                           uint64
	Logs, Quiet                    bool
	Load                           bool
	CPUByFunction                  bool

	fs *flag.FlagSet
}

// Flags declares the scenario flags on fs; the Scenario holds their values
// once fs is parsed.
func Flags(fs *flag.FlagSet) *Scenario {
	s := &Scenario{fs: fs}
	fs.IntVar(&s.Clients, "clients", 100, "number of simulated clients to enroll")
	fs.StringVar(&s.Report, "report", "", "write the JSON report to this file")
	fs.Float64Var(&s.Slow, "slow", 0, "share of slow clients, which missed the push and sign as -slow-delay says")
	fs.Float64Var(&s.Silent, "silent", 0, "share of silent clients, which never sign (failed at the poll deadline)")
	fs.Float64Var(&s.Wrong, "wrong", 0, "share of clients that sign wrongly (failed: signature does not verify)")
	fs.Float64Var(&s.Elsewhere, "elsewhere", 0, "share of processes already claimed by another adapter")
	fs.Float64Var(&s.ErrorRate, "api-error-rate", 0, "share of API requests answered 429/503 before acting")
	fs.Float64Var(&s.LostRate, "api-lost-rate", 0, "share of API requests that act but answer 503 (a timeout after the work)")
	fs.StringVar(&s.FastDelay, "fast-delay", "1s-5s", "when online clients sign, a range MIN-MAX")
	fs.StringVar(&s.SlowDelay, "slow-delay", SlowAtCheckIns, "when slow clients sign: "+SlowAtCheckIns+" (at a documented check-in, 30 s, 2 min or 8 min after the process's start, a third each, each up to a tenth early), or a range MIN-MAX after signData (uniform)")
	fs.Float64Var(&s.TimeScale, "time-scale", 1, "divide every client delay and the poll schedule by this factor")
	fs.DurationVar(&s.Deadline, "deadline", 0, fmt.Sprintf("poll deadline, after which silent clients are failed (default: POLL_DEADLINE, or %s on this machine; production's default is 24h)", LocalDeadline))
	fs.Float64Var(&s.Arrival, "arrival", 0, "new clients per second (0: all at once)")
	fs.Uint64Var(&s.Seed, "seed", 1, "random seed of the client mix and the faults")
	fs.BoolVar(&s.Logs, "logs", false, "print the adapter's JSON logs to stderr")
	fs.BoolVar(&s.Quiet, "quiet", false, "no progress lines")
	var load []string
	for _, l := range Load {
		load = append(load, "-"+l.Flag+" "+l.Value)
	}
	fs.BoolVar(&s.Load, "load", false, "the load benchmark: defaults become "+strings.Join(load, " ")+" (80% sign in 1-5 s, 15% miss the push and sign at a check-in 30 s, 2 min or 8 min after the start, 5% never); flags given explicitly win")
	fs.BoolVar(&s.CPUByFunction, "cpu-by-function", false, "sample a CPU profile to split this process's CPU by function")
	return s
}

// Options checks the parsed scenario and turns it into a run's options: with
// -load, the flags not given explicitly take the load benchmark's values
// first. env reads the poll schedule (POLL_*); progress, unless -quiet, gets a
// status line every second.
func (s *Scenario) Options(env config.Lookup, progress io.Writer) (simulation.Options, error) {
	if s.Load {
		set := map[string]bool{}
		s.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, l := range Load {
			if !set[l.Flag] {
				if err := s.fs.Set(l.Flag, l.Value); err != nil {
					return simulation.Options{}, fmt.Errorf("-load: %w", err)
				}
			}
		}
	}
	var errs []error
	if s.Clients <= 0 {
		errs = append(errs, fmt.Errorf("-clients %d: want a positive number", s.Clients))
	}
	for _, share := range []struct {
		name string
		v    float64
	}{{"slow", s.Slow}, {"silent", s.Silent}, {"wrong", s.Wrong}, {"elsewhere", s.Elsewhere}, {"api-error-rate", s.ErrorRate}, {"api-lost-rate", s.LostRate}} {
		if share.v < 0 || share.v > 1 {
			errs = append(errs, fmt.Errorf("-%s %g: want a share from 0 to 1", share.name, share.v))
		}
	}
	if s.Slow+s.Silent+s.Wrong+s.Elsewhere > 1 {
		errs = append(errs, errors.New("-slow, -silent, -wrong and -elsewhere add up to more than 1"))
	}
	if s.TimeScale <= 0 {
		errs = append(errs, fmt.Errorf("-time-scale %g: want a positive factor", s.TimeScale))
	}
	if s.Deadline < 0 {
		errs = append(errs, fmt.Errorf("-deadline %s: want a positive duration", s.Deadline))
	}
	if s.Arrival < 0 {
		errs = append(errs, fmt.Errorf("-arrival %g: want 0 or more", s.Arrival))
	}
	fast, err := ParseRange(s.FastDelay)
	if err != nil {
		errs = append(errs, fmt.Errorf("-fast-delay: %w", err))
	}
	var slow simulation.Range
	if s.SlowDelay != SlowAtCheckIns {
		if slow, err = ParseRange(s.SlowDelay); err != nil {
			errs = append(errs, fmt.Errorf("-slow-delay: %w (or %s)", err, SlowAtCheckIns))
		}
	}
	sched, err := config.LoadPoll(env)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return simulation.Options{}, err
	}
	if s.Deadline > 0 {
		sched.Deadline = s.Deadline
	} else if v, _ := env("POLL_DEADLINE"); v == "" {
		sched.Deadline = LocalDeadline
	}
	o := simulation.Options{
		Clients: s.Clients, Slow: s.Slow, Silent: s.Silent, Wrong: s.Wrong, Elsewhere: s.Elsewhere,
		ErrorRate: s.ErrorRate, LostRate: s.LostRate,
		FastDelay: fast.Scale(s.TimeScale), SlowDelay: slow.Scale(s.TimeScale), SlowAtCheckIns: s.SlowDelay == SlowAtCheckIns && s.Slow > 0,
		Schedule: sched.Scale(s.TimeScale), TimeScale: s.TimeScale,
		Arrival: s.Arrival, Seed: s.Seed,
		ProgressEvery: time.Second,
		CPUByFunction: s.CPUByFunction,
	}
	if !s.Quiet {
		o.Progress = progress
	}
	return o, nil
}

// ParseRange reads a duration range MIN-MAX, or one duration for both.
func ParseRange(s string) (simulation.Range, error) {
	a, b := s, s
	// The separator is the first '-' after the first character.
	if i := strings.IndexByte(s[min(1, len(s)):], '-'); i >= 0 {
		a, b = s[:i+1], s[i+2:]
	}
	lo, err1 := time.ParseDuration(a)
	hi, err2 := time.ParseDuration(b)
	if err1 != nil || err2 != nil || lo < 0 || hi < lo {
		return simulation.Range{}, fmt.Errorf("%q is not a range such as 1s-5s", s)
	}
	return simulation.Range{Min: lo, Max: hi}, nil
}
