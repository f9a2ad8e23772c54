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
	"github.com/chromeos-certprov/adapter/shared/simulation"
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
		deadline   = fs.Duration("deadline", 0, "poll deadline (default: POLL_DEADLINE or 24h; silent clients end there)")
		arrival    = fs.Float64("arrival", 0, "new clients per second (0: all at once)")
		seed       = fs.Uint64("seed", 1, "random seed of the client mix and the faults")
		logs       = fs.Bool("logs", false, "print the adapter's JSON logs to stderr")
		quiet      = fs.Bool("quiet", false, "no progress lines")
	)
	if err := fs.Parse(args); err != nil {
		return 2, nil
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
	}
	o := simulation.Options{
		Clients: *clients, Slow: *slow, Silent: *silent, Wrong: *wrong, Elsewhere: *elsewhere,
		ErrorRate: *errorRate, LostRate: *lostRate,
		FastDelay: scaleRange(fastR, *scale), SlowDelay: scaleRange(slowR, *scale),
		Schedule: scaleSchedule(sched, *scale), Arrival: *arrival, Seed: *seed,
		ProgressEvery: time.Second,
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
	r, err := simulation.Run(ctx, o)
	if err != nil {
		return 1, err
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
	m["CERTPROV_API_ENDPOINT"] = "in-process"
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

func scaleSchedule(s config.PollSchedule, f float64) config.PollSchedule {
	s.Initial = time.Duration(float64(s.Initial) / f)
	s.Max = time.Duration(float64(s.Max) / f)
	s.Deadline = time.Duration(float64(s.Deadline) / f)
	return s
}

func printSummary(w io.Writer, r *simulation.Report) {
	fmt.Fprintf(w, "\n%d clients in %.1fs\n", r.Clients, r.WallSeconds)
	fmt.Fprintf(w, "outcomes: uploaded %d, failed %d, claimed elsewhere %d, unfinished %d\n",
		r.Outcomes.Uploaded, r.Outcomes.Failed, r.Outcomes.ClaimedElsewhere, r.Outcomes.Unfinished)
	methods := make([]string, 0, len(r.APICalls))
	for m := range r.APICalls {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	fmt.Fprint(w, "API calls:")
	for _, m := range methods {
		fmt.Fprintf(w, " %s %d", m, r.APICalls[m])
	}
	fmt.Fprintln(w)
	t := r.TimeToCertificate
	fmt.Fprintf(w, "time to certificate: p50 %.0f ms, p95 %.0f ms, p99 %.0f ms (n=%d)\n", t.P50, t.P95, t.P99, t.N)
	a := r.AddedLatency
	fmt.Fprintf(w, "added latency (signature available to upload, minus CA time): p50 %.0f ms, p95 %.0f ms, p99 %.0f ms\n", a.P50, a.P95, a.P99)
	fmt.Fprintf(w, "per enrollment: store reads %.1f, writes %.1f, function invocations %.1f, CPU %.2f ms; peak RSS %.0f MiB; %.1f enrollments/s\n",
		r.PerEnrollment.StoreReads, r.PerEnrollment.StoreWrites, r.PerEnrollment.Invocations, r.PerEnrollment.CPUMilliseconds, r.PeakRSSMiB, r.EnrollmentsPerSec)
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
