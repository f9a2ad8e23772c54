// Command local runs the whole adapter on this machine with no cloud account:
// an emulator of the Certificate Provisioning API with simulated clients that
// really sign, the three functions, a task dispatcher, a store and a CA. It
// enrolls the clients, shows progress, prints a summary and exits non-zero if
// any process did not end as its scenario expects.
//
//	go run ./functions/cmd/local -clients 200 -report r.json
//
// With -rollout it runs the rollout benchmark instead (shared/tooling/rollout):
//
//	go run ./functions/cmd/local -rollout 50000 -rollout-window 60s -api-quota-per-minute 2400 -report rollout.json -plot rollout.svg
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/scenario"
	"github.com/chromeos-certprov/adapter/shared/tooling/schedule"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	code, err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
	}
	os.Exit(code)
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs, sc, local := flags(stderr)
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if local.cpuProfile != "" {
		f, err := os.Create(local.cpuProfile)
		if err != nil {
			return 2, fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 2, fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	o, err := sc.Options(os.LookupEnv, stderr)
	if err != nil {
		return 2, err
	}
	if sc.Logs {
		o.Log = logging.New(stderr, slog.LevelInfo, "local")
	}
	// The sweep as deployed (hourly, SWEEP_AFTER's default) on the run's
	// time scale: polls write their checkpoints for it, and the load
	// benchmark counts them.
	o.SweepAfter = time.Duration(float64(config.DefaultSweepAfter) / o.TimeScale)
	o.SweepEvery = time.Duration(float64(time.Hour) / o.TimeScale)
	if local.rollout > 0 {
		return runRollout(ctx, local, sc, stdout, stderr)
	}
	if local.config != "" {
		data, err := os.ReadFile(local.config)
		if err != nil {
			return 2, fmt.Errorf("-config: %w", err)
		}
		a, err := config.ParseAdapter(data, adapter.ConnectorTypes())
		if err != nil {
			return 2, fmt.Errorf("-config %s:\n%w", local.config, err)
		}
		o.Adapter = &a
		o.Secrets = adapter.EnvSecrets(os.LookupEnv)
	}
	if local.keep != "" {
		if local.compare {
			return 2, fmt.Errorf("-keep: not with -compare-schedules (one store per schedule)")
		}
		o.Store = memory.New()
	}
	if local.reconcile {
		o.Reconcile = &simulation.ReconcileSpec{Deprovision: local.deprovision, Suspend: local.suspend}
	} else if local.deprovision > 0 || local.suspend > 0 {
		return 2, fmt.Errorf("-deprovision and -suspend need -reconcile")
	}
	var r *simulation.Report
	if local.compare {
		// The first schedule is the default: its run is the report's main figures.
		var reports []*simulation.Report
		rows, err := schedule.Compare(ctx, o, schedule.Specs(), pipeline.DefaultPoll.Deadline, o.Progress, func(_ schedule.Spec, rep *simulation.Report) { reports = append(reports, rep) })
		if err != nil {
			return 1, err
		}
		r = reports[0]
		r.Schedules = rows
		for _, rep := range reports[1:] {
			r.Unexpected = append(r.Unexpected, rep.Unexpected...)
			r.Violations = append(r.Violations, rep.Violations...)
		}
	} else {
		var err error
		if r, err = simulation.Run(ctx, o); err != nil {
			return 1, err
		}
	}
	printSummary(stdout, r)
	if local.keep != "" {
		if err := keep(o.Store, local.keep); err != nil {
			return 1, err
		}
		fmt.Fprintf(stdout, "records kept in %s: go run ./functions/cmd/certprov list --records %s\n", local.keep, local.keep)
	}
	if sc.Report != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(sc.Report, append(b, '\n'), 0o644); err != nil {
			return 1, fmt.Errorf("-report: %w", err)
		}
	}
	if !r.OK() {
		return 1, fmt.Errorf("%d processes did not end as expected, %d invariant violations", len(r.Unexpected), len(r.Violations))
	}
	return 0, nil
}

// localFlags are the local run's own flags, beside the scenario's.
type localFlags struct {
	config               string
	compare              bool
	keep                 string
	cpuProfile           string
	reconcile            bool
	deprovision, suspend int
	rolloutFlags
}

// keep saves the run's progress records for the operator CLI.
func keep(s *memory.Store, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-keep: %w", err)
	}
	if err := s.Save(f); err != nil {
		f.Close()
		return fmt.Errorf("-keep %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-keep %s: %w", path, err)
	}
	return nil
}

// flags declares the local run's flags: the scenario's (shared with
// functions/cmd/standins) and its own.
func flags(stderr io.Writer) (*flag.FlagSet, *scenario.Scenario, *localFlags) {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sc := scenario.Flags(fs)
	l := &localFlags{}
	fs.StringVar(&l.config, "config", "", "adapter config JSON (CA connections, profiles, allowedCustomers); secrets it names are read from the environment; default: the built-in development CA")
	l.rolloutFlags.declare(fs)
	fs.BoolVar(&l.compare, "compare-schedules", false, "run the same clients once per poll schedule (default, fixed 10 s, alternatives) and print added latency against operations.get calls")
	fs.StringVar(&l.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	fs.StringVar(&l.keep, "keep", "", "write the run's progress records to this JSON file, for the operator CLI: certprov status|find|list|timeline --records FILE")
	fs.BoolVar(&l.reconcile, "reconcile", false, "end with the reconciliation (POST /reconcile on IssueCertificate): a dry run, then for real, against the emulator's directory and the inventory")
	fs.IntVar(&l.deprovision, "deprovision", 0, "with -reconcile: deprovision this many simulated devices in the directory first")
	fs.IntVar(&l.suspend, "suspend", 0, "with -reconcile: suspend this many simulated users in the directory first")
	return fs, sc, l
}

func printSummary(w io.Writer, r *simulation.Report) {
	fmt.Fprintf(w, "\n%d clients in %.1fs\n", r.Clients, r.WallSeconds)
	fmt.Fprintf(w, "outcomes: uploaded %d, failed %d, claimed elsewhere %d, unfinished %d\n",
		r.Outcomes.Uploaded, r.Outcomes.Failed, r.Outcomes.ClaimedElsewhere, r.Outcomes.Unfinished)
	fmt.Fprintf(w, "inventoried: %d certificates\n", r.Inventoried)
	if rc := r.Reconcile; rc != nil {
		fmt.Fprintf(w, "reconciliation: %d devices deprovisioned, %d users suspended, %d of their certificates\n", len(rc.Deprovisioned), len(rc.Suspended), rc.Affected)
		fmt.Fprintf(w, "  dry run: checked %d, would revoke %d, would report %d, failed %d\n", rc.DryRun.Checked, rc.DryRun.WouldRevoke, rc.DryRun.WouldReport, rc.DryRun.Failed)
		fmt.Fprintf(w, "  real:    checked %d, revoked %d, reported %d, failed %d; in the dev CA's CRL: %d\n", rc.Real.Checked, rc.Real.Revoked, rc.Real.Reported, rc.Real.Failed, rc.InCRL)
	}
	fmt.Fprint(w, "API calls:")
	for _, m := range sortedKeys(r.APICalls) {
		fmt.Fprintf(w, " %s %d", m, r.APICalls[m])
	}
	fmt.Fprintln(w)
	pct := func(name string, p simulation.Percentiles) {
		fmt.Fprintf(w, "%s: p50 %.0f ms, p95 %.0f ms, p99 %.0f ms (n=%d)\n", name, p.P50, p.P95, p.P99, p.N)
	}
	pct("time to certificate", r.TimeToCertificate)
	pct("added latency (signature available to upload, minus CA time)", r.AddedLatency)
	if r.TimeScale > 1 {
		fmt.Fprintf(w, "in real time (client delays and poll waits multiplied back by the time scale %g):\n", r.TimeScale)
		pct("  time to certificate", r.TimeToCertificateUnscaled)
		pct("  added latency", r.AddedLatencyUnscaled)
	}
	pe := r.PerEnrollment
	fmt.Fprint(w, "per enrollment: API")
	for _, m := range sortedKeys(pe.APICalls) {
		fmt.Fprintf(w, " %s %.2f", m, pe.APICalls[m])
	}
	fmt.Fprintf(w, "\n                store reads %.1f, writes %.1f; function invocations %.2f (", pe.StoreReads, pe.StoreWrites, pe.Invocations)
	for i, f := range sortedKeys(pe.ByFunction) {
		if i > 0 {
			fmt.Fprint(w, ", ")
		}
		fmt.Fprintf(w, "%s %.2f", f, pe.ByFunction[f])
	}
	fmt.Fprintf(w, "); CPU %.2f ms (whole process)", pe.CPUMilliseconds)
	if pe.FunctionCPUMilliseconds > 0 {
		fmt.Fprintf(w, ", of which the functions %.2f ms", pe.FunctionCPUMilliseconds)
	}
	fmt.Fprintf(w, "\npeak RSS %.0f MiB, peak heap %.0f MiB; %.1f enrollments/s\n", r.PeakRSSMiB, r.PeakHeapMiB, r.EnrollmentsPerSec)
	if len(r.PerScenario) > 0 {
		fmt.Fprint(w, "store reads/writes per client:")
		for _, s := range sortedKeys(r.PerScenario) {
			fmt.Fprintf(w, " %s %.2f/%.2f", s, r.PerScenario[s].StoreReads, r.PerScenario[s].StoreWrites)
		}
		fmt.Fprintln(w)
	}
	if c := r.Cost; c != nil {
		fmt.Fprintf(w, "cost per 10,000 enrollments (list prices read %s, beyond free tiers; functions at %s):\n ", c.Prices.PricesRead, sizes(c.Sizes))
		for _, s := range simulation.CostServices {
			fmt.Fprintf(w, " %s $%.4f;", s, c.Per10k[s])
		}
		fmt.Fprintf(w, " total $%.4f\n", c.TotalPer10k)
		fmt.Fprintf(w, "  from, per enrollment: %.2f Firestore reads, %.2f writes, %.2f deletes; %.2f requests, %.3f s billed; %.2f task operations; %.0f Pub/Sub bytes; %.0f log bytes in %.1f entries\n",
			c.FirestoreReads, c.FirestoreWrites, c.FirestoreDeletes, c.RunRequests, c.RunSeconds, c.TaskOps, c.PubSubBytes, c.LogBytes, c.LogEntries)
	}
	if len(r.Schedules) > 0 {
		fmt.Fprintf(w, "\npoll schedules (real time; operations.get per enrollment as run, and with silent clients polled to the %s deadline):\n", r.Schedules[0].Deadline)
		fmt.Fprintf(w, "%-14s %-40s %10s %10s %10s %10s %12s %10s\n", "schedule", "", "added p50", "added p95", "added p99", "ops.get", "ops.get@24h", "per signed")
		for _, s := range r.Schedules {
			a := s.AddedLatency
			fmt.Fprintf(w, "%-14s %-40s %8.0fms %8.0fms %8.0fms %10.2f %12.1f %10.2f\n", s.Name, s.Schedule, a.P50, a.P95, a.P99, s.OperationsGet, s.OperationsGetAtDeadline, s.OperationsGetSigned)
		}
	}
	for i, u := range r.Unexpected {
		if i == 20 {
			fmt.Fprintf(w, "... and %d more\n", len(r.Unexpected)-20)
			break
		}
		fmt.Fprintln(w, "UNEXPECTED", u)
	}
	for i, v := range r.Violations {
		if i == 20 {
			fmt.Fprintf(w, "... and %d more\n", len(r.Violations)-20)
			break
		}
		fmt.Fprintln(w, "VIOLATION", v)
	}
}

func sortedKeys[K ~string, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }

// sizes describes the functions' sizes of the cost model, in name order.
func sizes(m map[string]simulation.FunctionSize) string {
	var out []string
	for _, f := range sortedKeys(m) {
		out = append(out, fmt.Sprintf("%s %g vCPU %g GiB", f, m[f].VCPU, m[f].GiB))
	}
	return strings.Join(out, ", ")
}
