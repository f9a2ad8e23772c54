// Command local runs the whole adapter on this machine with no cloud account:
// an emulator of the Certificate Provisioning API with simulated clients that
// really sign, the three functions, a task dispatcher, a store and a CA. It
// enrolls the clients, shows progress, prints a summary and exits non-zero if
// any process did not end as its scenario expects.
//
//	go run ./functions/cmd/local -clients 200 -report r.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/tooling/schedule"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
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
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		clients    = fs.Int("clients", 20, "number of simulated clients to enroll")
		report     = fs.String("report", "", "write the JSON report to this file")
		configFile = fs.String("config", "", "adapter config JSON (CA connections, profiles, allowedCustomers); secrets it names are read from the environment; default: the built-in development CA")
		slow       = fs.Float64("slow", 0, "share of slow clients, which sign within -slow-delay")
		silent     = fs.Float64("silent", 0, "share of silent clients, which never sign (failed at the poll deadline)")
		wrong      = fs.Float64("wrong", 0, "share of clients that sign wrongly (failed: signature does not verify)")
		elsewhere  = fs.Float64("elsewhere", 0, "share of processes already claimed by another adapter")
		errorRate  = fs.Float64("api-error-rate", 0, "share of API requests answered 429/503 before acting")
		lostRate   = fs.Float64("api-lost-rate", 0, "share of API requests that act but answer 503 (a timeout after the work)")
		fast       = fs.String("fast-delay", "1s-5s", "when online clients sign, a range MIN-MAX")
		slowDelay  = fs.String("slow-delay", "30s-10m", "when slow clients sign, a range MIN-MAX")
		scale      = fs.Float64("time-scale", 1, "divide every client delay and the poll schedule by this factor")
		deadline   = fs.Duration("deadline", 0, "poll deadline, after which silent clients are failed (default: POLL_DEADLINE, or 15m in a local run; production's default is 24h)")
		arrival    = fs.Float64("arrival", 0, "new clients per second (0: all at once)")
		seed       = fs.Uint64("seed", 1, "random seed of the client mix and the faults")
		logs       = fs.Bool("logs", false, "print the adapter's JSON logs to stderr")
		quiet      = fs.Bool("quiet", false, "no progress lines")
		load       = fs.Bool("load", false, "the load benchmark: defaults become -clients 10000 -slow 0.15 -silent 0.05 -time-scale 60 -deadline 30m -arrival 250 (80% sign in 1-5 s, 15% in 30 s-10 min, 5% never); flags given explicitly win")
		compare    = fs.Bool("compare-schedules", false, "run the same clients once per poll schedule (default, fixed 10 s, alternatives) and print added latency against operations.get calls")
		cpuByFn    = fs.Bool("cpu-by-function", false, "profile the run to split CPU time by function")
	)
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *load {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"clients": "10000", "slow": "0.15", "silent": "0.05", "time-scale": "60", "deadline": "30m", "arrival": "250"} {
			if !set[name] {
				_ = fs.Set(name, v)
			}
		}
	}
	for name, v := range map[string]float64{"slow": *slow, "silent": *silent, "wrong": *wrong, "elsewhere": *elsewhere, "api-error-rate": *errorRate, "api-lost-rate": *lostRate} {
		if v < 0 || v > 1 {
			return 2, fmt.Errorf("-%s %g: want a share from 0 to 1", name, v)
		}
	}
	if *slow+*silent+*wrong+*elsewhere > 1 {
		return 2, errors.New("-slow, -silent, -wrong and -elsewhere add up to more than 1")
	}
	if *scale <= 0 {
		return 2, fmt.Errorf("-time-scale %g: want a positive factor", *scale)
	}
	fastR, err := parseRange(*fast)
	if err != nil {
		return 2, fmt.Errorf("-fast-delay: %w", err)
	}
	slowR, err := parseRange(*slowDelay)
	if err != nil {
		return 2, fmt.Errorf("-slow-delay: %w", err)
	}
	env, err := config.Load(config.MapLookup(localEnv()), adapter.ConnectorTypes())
	if err != nil {
		return 2, err
	}
	sched := env.Poll
	if *deadline > 0 {
		sched.Deadline = *deadline
	} else if _, ok := os.LookupEnv("POLL_DEADLINE"); !ok {
		sched.Deadline = localDeadline
	}
	o := simulation.Options{
		Clients: *clients, Slow: *slow, Silent: *silent, Wrong: *wrong, Elsewhere: *elsewhere,
		ErrorRate: *errorRate, LostRate: *lostRate,
		FastDelay: scaleRange(fastR, *scale), SlowDelay: scaleRange(slowR, *scale),
		Schedule: sched.Scale(*scale), Arrival: *arrival, Seed: *seed,
		ProgressEvery: time.Second,
		TimeScale:     *scale,
		CPUByFunction: *cpuByFn,
	}
	if !*quiet {
		o.Progress = stderr
	}
	if *logs {
		o.Log = logging.New(stderr, slog.LevelInfo, "local")
	}
	if *configFile != "" {
		data, err := os.ReadFile(*configFile)
		if err != nil {
			return 2, fmt.Errorf("-config: %w", err)
		}
		a, err := config.ParseAdapter(data, adapter.ConnectorTypes())
		if err != nil {
			return 2, fmt.Errorf("-config %s:\n%w", *configFile, err)
		}
		o.Adapter = &a
		o.Secrets = adapter.EnvSecrets(os.LookupEnv)
	}
	var r *simulation.Report
	if *compare {
		// The first schedule is the default: its run is the report's main figures.
		var reports []*simulation.Report
		rows, err := schedule.Compare(ctx, o, schedule.Specs(), config.DefaultPoll.Deadline, o.Progress, func(_ schedule.Spec, rep *simulation.Report) { reports = append(reports, rep) })
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
	if *report != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(*report, append(b, '\n'), 0o644); err != nil {
			return 1, fmt.Errorf("-report: %w", err)
		}
	}
	if !r.OK() {
		return 1, fmt.Errorf("%d processes did not end as expected, %d invariant violations", len(r.Unexpected), len(r.Violations))
	}
	return 0, nil
}

// localDeadline is the poll deadline of a local run unless POLL_DEADLINE or
// -deadline says otherwise: production's 24 hours would keep a run with silent
// clients going for a day.
const localDeadline = 15 * time.Minute

// localEnv is the environment of a local run: the variables a user set, with
// the emulated endpoints filled in.
func localEnv() map[string]string {
	m := map[string]string{}
	for _, name := range []string{"POLL_INITIAL_DELAY", "POLL_MULTIPLIER", "POLL_MAX_DELAY", "POLL_JITTER", "POLL_DEADLINE", "LOG_LEVEL"} {
		if v, ok := os.LookupEnv(name); ok {
			m[name] = v
		}
	}
	m["GOOGLE_CLOUD_PROJECT"] = "local"
	m["CLOUD_TASKS_EMULATOR_HOST"] = "in-process"
	m["CERTPROV_API_EMULATOR_HOST"] = "in-process"
	m["CERTPROV_CONFIG"] = `{"allowedCustomers":["local"],"caConnections":{"x":{"type":"dev"}}}`
	return m
}

func parseRange(s string) (simulation.Range, error) {
	var a, b string
	for i := 1; i < len(s); i++ {
		if s[i] == '-' {
			a, b = s[:i], s[i+1:]
			break
		}
	}
	if a == "" {
		a, b = s, s
	}
	lo, err1 := time.ParseDuration(a)
	hi, err2 := time.ParseDuration(b)
	if err1 != nil || err2 != nil || lo < 0 || hi < lo {
		return simulation.Range{}, fmt.Errorf("%q is not a range such as 1s-5s", s)
	}
	return simulation.Range{Min: lo, Max: hi}, nil
}

func scaleRange(r simulation.Range, f float64) simulation.Range {
	return simulation.Range{Min: time.Duration(float64(r.Min) / f), Max: time.Duration(float64(r.Max) / f)}
}

func printSummary(w io.Writer, r *simulation.Report) {
	fmt.Fprintf(w, "\n%d clients in %.1fs\n", r.Clients, r.WallSeconds)
	fmt.Fprintf(w, "outcomes: uploaded %d, failed %d, claimed elsewhere %d, unfinished %d\n",
		r.Outcomes.Uploaded, r.Outcomes.Failed, r.Outcomes.ClaimedElsewhere, r.Outcomes.Unfinished)
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
