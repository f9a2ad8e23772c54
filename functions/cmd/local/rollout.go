package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chromeos-certprov/adapter/shared/tooling/rollout"
	"github.com/chromeos-certprov/adapter/shared/tooling/scenario"
)

// rolloutFlags are the rollout benchmark's flags.
type rolloutFlags struct {
	rollout   int
	window    time.Duration
	quota     int
	caRate    int
	runs      int
	unpaced   bool
	realClock bool
	plot      string
}

func (l *rolloutFlags) declare(fs *flag.FlagSet) {
	fs.IntVar(&l.rollout, "rollout", 0, "the rollout benchmark: this many processes start within -rollout-window, under -api-quota-per-minute, paced and as without pacing (other client flags are ignored)")
	fs.DurationVar(&l.window, "rollout-window", time.Minute, "the rollout's processes start evenly within this time")
	fs.IntVar(&l.quota, "api-quota-per-minute", 2400, "the API emulator's quota: requests per minute across all methods (429 RESOURCE_EXHAUSTED beyond)")
	fs.IntVar(&l.caRate, "ca-issuance-per-second", 7, "the development CA's issuance rate per CA connection (Google CAS Enterprise: 7 CreateCertificate per second); 0: none")
	fs.IntVar(&l.runs, "rollout-runs", 1, "runs of each mode (seeds -seed, -seed+1, ...); the report's figures are their medians")
	fs.BoolVar(&l.unpaced, "rollout-unpaced", true, "also run the rollout without pacing, with the same clients")
	fs.BoolVar(&l.realClock, "rollout-real-clock", false, "run the rollout on the real clock, sped up by -time-scale (default: the virtual clock, on which it takes the CPU time it needs and reports real time)")
	fs.StringVar(&l.plot, "plot", "", "write the rollout's plot (SVG, or PNG by the extension)")
}

func runRollout(ctx context.Context, l *localFlags, sc *scenario.Scenario, stdout, stderr io.Writer) (int, error) {
	o := rollout.Options{
		Processes: l.rollout, Window: l.window, QuotaPerMinute: l.quota, CAPerSecond: l.caRate,
		Runs: l.runs, Seed: sc.Seed, TimeScale: sc.TimeScale, RealClock: l.realClock, Unpaced: l.unpaced,
	}
	if !sc.Quiet {
		o.Progress = stderr
	}
	r, err := rollout.Run(ctx, o)
	if err != nil {
		return 1, err
	}
	rollout.Print(stdout, r)
	if sc.Report != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(sc.Report, append(b, '\n'), 0o644); err != nil {
			return 1, fmt.Errorf("-report: %w", err)
		}
	}
	if l.plot != "" {
		if err := rollout.Plot(r, l.plot); err != nil {
			return 1, fmt.Errorf("-plot: %w", err)
		}
	}
	if p := r.Paced; p.FailedByCause["quota"] > 0 || p.SignDataNot > 0 || p.Unfinished > 0 || len(p.Violations) > 0 {
		return 1, fmt.Errorf("paced rollout: %d failed by quota, %d processes not asked to sign exactly once, %d unfinished, %d violations",
			p.FailedByCause["quota"], p.SignDataNot, p.Unfinished, len(p.Violations))
	}
	return 0, nil
}
