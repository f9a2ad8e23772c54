// Command standins enrolls simulated clients through the real local
// stand-ins of the cloud: the Pub/Sub emulator pushes each notification to
// the functions served over HTTP by functions-framework-go, the Cloud Tasks
// emulator dispatches the poll and issue tasks, the progress records live in
// the Firestore emulator, and the Certificate Provisioning API is the
// emulator. It reports the same figures, in the same JSON, as the in-process
// run (functions/cmd/local), so the two can be compared, plus the emulators'
// own CPU. It exits non-zero if any process did not end as its scenario
// expects or an invariant was violated.
//
//	go run ./functions/cmd/standins -clients 1000 -report r.json
//
// Emulators named by FIRESTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST and
// CLOUD_TASKS_EMULATOR_HOST are used; the others are started on free
// loopback ports and stopped at the end.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
	"github.com/chromeos-certprov/adapter/shared/tooling/standins"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	code, err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "standins:", err)
	}
	os.Exit(code)
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("standins", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		clients   = fs.Int("clients", 100, "number of simulated clients to enroll")
		report    = fs.String("report", "", "write the JSON report to this file")
		slow      = fs.Float64("slow", 0, "share of slow clients, which sign within -slow-delay")
		silent    = fs.Float64("silent", 0, "share of silent clients, which never sign (failed at the poll deadline)")
		wrong     = fs.Float64("wrong", 0, "share of clients that sign wrongly (failed: signature does not verify)")
		elsewhere = fs.Float64("elsewhere", 0, "share of processes already claimed by another adapter")
		errorRate = fs.Float64("api-error-rate", 0, "share of API requests answered 429/503 before acting")
		lostRate  = fs.Float64("api-lost-rate", 0, "share of API requests that act but answer 503 (a timeout after the work)")
		fast      = fs.String("fast-delay", "1s-5s", "when online clients sign, a range MIN-MAX")
		slowDelay = fs.String("slow-delay", "30s-10m", "when slow clients sign, a range MIN-MAX")
		scale     = fs.Float64("time-scale", 1, "divide every client delay and the poll schedule by this factor")
		deadline  = fs.Duration("deadline", 0, "poll deadline, after which silent clients are failed (default: POLL_DEADLINE, or 15m as in the local run; production's default is 24h)")
		arrival   = fs.Float64("arrival", 0, "new clients per second (0: all at once)")
		seed      = fs.Uint64("seed", 1, "random seed of the client mix and the faults")
		timeout   = fs.Duration("timeout", 0, "end the run after this long; unfinished processes are reported (default: the deadline plus 5 minutes)")
		byFn      = fs.Bool("cpu-by-function", true, "sample a CPU profile to split this process's CPU by function")
		logs      = fs.Bool("logs", false, "print the functions' JSON logs (at info) to stderr")
		quiet     = fs.Bool("quiet", false, "no progress lines")
		load      = fs.Bool("load", false, "the load benchmark's client mix at 1,000 clients: defaults become -clients 1000 -slow 0.15 -silent 0.05 -time-scale 60 -deadline 30m -arrival 250 (as the local run's -load, with fewer clients); flags given explicitly win")
		warmup    = fs.Int("warmup", 1000, "warm the emulators up first with batches of this many unmeasured enrollments, until their CPU per enrollment levels off (0: no warm-up, for emulators already warm)")
		shards    = fs.Int("push-shards", standins.DefaultPushShards, "spread the notifications over this many topics, each with its own push subscription (the Pub/Sub emulator pushes two messages at a time per subscription)")
		rate      = fs.Float64("queue-rate", 0, "max dispatches per second of each Cloud Tasks queue (default: Cloud Tasks' ceiling of 500/s, times -time-scale)")
		conc      = fs.Int("queue-concurrency", 1000, "max concurrent dispatches of each Cloud Tasks queue")
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
		for name, v := range map[string]string{"clients": "1000", "slow": "0.15", "silent": "0.05", "time-scale": "60", "deadline": "30m", "arrival": "250"} {
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
	if *clients <= 0 {
		return 2, fmt.Errorf("-clients %d: want a positive number", *clients)
	}
	fastR, err := parseRange(*fast)
	if err != nil {
		return 2, fmt.Errorf("-fast-delay: %w", err)
	}
	slowR, err := parseRange(*slowDelay)
	if err != nil {
		return 2, fmt.Errorf("-slow-delay: %w", err)
	}
	env, err := config.Load(config.MapLookup(pollEnv()), adapter.ConnectorTypes())
	if err != nil {
		return 2, err
	}
	sched := env.Poll
	if *deadline > 0 {
		sched.Deadline = *deadline
	} else if _, ok := os.LookupEnv("POLL_DEADLINE"); !ok {
		sched.Deadline = localDeadline
	}
	if *shards < 1 || *rate < 0 || *conc < 1 {
		return 2, errors.New("-push-shards and -queue-concurrency must be positive, -queue-rate 0 or more")
	}
	if *warmup < 0 {
		return 2, fmt.Errorf("-warmup %d: want 0 or more", *warmup)
	}
	o := standins.LoadOptions{Warmup: *warmup, PushShards: *shards, MaxDispatchesPerSecond: *rate, MaxConcurrentDispatches: int32(*conc), Options: simulation.Options{
		Clients: *clients, Slow: *slow, Silent: *silent, Wrong: *wrong, Elsewhere: *elsewhere,
		ErrorRate: *errorRate, LostRate: *lostRate,
		FastDelay: fastR.Scale(*scale), SlowDelay: slowR.Scale(*scale),
		Schedule: sched.Scale(*scale), TimeScale: *scale, Arrival: *arrival, Seed: *seed,
		Timeout: *timeout, ProgressEvery: time.Second, CPUByFunction: *byFn,
	}}
	if !*quiet {
		o.Progress = stderr
	}
	if *logs {
		o.LogLevel = "info"
	}
	// functions-framework-go prints to os.Stdout as it serves, and the
	// functions log there: stdout is kept for the summary, those go to
	// stderr with -logs and are dropped otherwise (as the local run does).
	if f, ok := stdout.(*os.File); ok && f == os.Stdout {
		os.Stdout = os.Stderr
		if !*logs {
			if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
				os.Stdout = null
			}
		}
	}

	emus, err := standins.StartEmulators(ctx)
	if err != nil {
		return 1, err
	}
	defer emus.Stop()
	if !*quiet && len(emus.Started) > 0 {
		fmt.Fprintf(stderr, "started emulators: %s (firestore %s, pubsub %s, cloud tasks %s)\n",
			strings.Join(emus.Started, ", "), emus.Hosts.Firestore, emus.Hosts.PubSub, emus.Hosts.Tasks)
	}
	res, err := standins.Load(ctx, emus.Hosts, o)
	if err != nil {
		return 1, err
	}
	printSummary(stdout, res)
	if *report != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*report, append(b, '\n'), 0o644); err != nil {
			return 1, fmt.Errorf("-report: %w", err)
		}
	}
	if !res.OK() {
		return 1, fmt.Errorf("%d processes did not end as expected, %d invariant violations", len(res.Unexpected), len(res.Violations))
	}
	return 0, nil
}

// localDeadline is the poll deadline of a run on this machine unless
// POLL_DEADLINE or -deadline says otherwise, as in the local run.
const localDeadline = 15 * time.Minute

// pollEnv is the environment config.Load needs to read the poll schedule the
// user set (POLL_*); the rest is filled in and not used.
func pollEnv() map[string]string {
	m := map[string]string{}
	for _, name := range []string{"POLL_INITIAL_DELAY", "POLL_MULTIPLIER", "POLL_MAX_DELAY", "POLL_JITTER", "POLL_DEADLINE"} {
		if v, ok := os.LookupEnv(name); ok {
			m[name] = v
		}
	}
	m["GOOGLE_CLOUD_PROJECT"] = "standins"
	m["CLOUD_TASKS_EMULATOR_HOST"] = "emulator"
	m["CERTPROV_API_EMULATOR_HOST"] = "emulator"
	m["CERTPROV_CONFIG"] = `{"allowedCustomers":["standins"],"caConnections":{"x":{"type":"dev"}}}`
	return m
}

func parseRange(s string) (simulation.Range, error) {
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

// printSummary prints what the local run prints, in the same lines, and then
// the stand-ins' own figures.
func printSummary(w io.Writer, res *standins.Result) {
	r := res.Report
	fmt.Fprintf(w, "\n%d clients in %.1fs\n", r.Clients, r.WallSeconds)
	fmt.Fprintf(w, "outcomes: uploaded %d, failed %d, claimed elsewhere %d, unfinished %d\n",
		r.Outcomes.Uploaded, r.Outcomes.Failed, r.Outcomes.ClaimedElsewhere, r.Outcomes.Unfinished)
	fmt.Fprintf(w, "API calls:%s\n", sortedInts(r.APICalls))
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
	fmt.Fprintf(w, "per enrollment: API%s\n", sortedFloats(pe.APICalls))
	fmt.Fprintf(w, "                store reads %.1f, writes %.1f; function invocations %.2f (", pe.StoreReads, pe.StoreWrites, pe.Invocations)
	for i, f := range []string{standins.ClaimProcess, standins.IssueCertificate, standins.PollSignature} {
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

	x := res.StandIns
	fmt.Fprintf(w, "stand-ins: functions served over HTTP; Pub/Sub emulator push (%d subscriptions), Cloud Tasks emulator (queues at %g/s), Firestore emulator\n", x.PushShards, x.QueueRate)
	if len(x.WarmupCPUPerEnrollment) > 0 {
		fmt.Fprintf(w, "  after %d warm-up batches of %d enrollments; the emulators' CPU per enrollment in them:", len(x.WarmupCPUPerEnrollment), x.Warmup)
		for _, c := range x.WarmupCPUPerEnrollment {
			fmt.Fprintf(w, " %.1f", c)
		}
		fmt.Fprintln(w, " ms")
	}
	var emu []string
	for _, name := range []string{"firestore", "pubsub", "cloudtasks"} {
		if u, ok := x.Emulators[name]; ok {
			emu = append(emu, fmt.Sprintf("%s %.1fs (peak RSS %.0f MiB)", name, u.CPUSeconds, u.PeakRSSMiB))
		}
	}
	fmt.Fprintf(w, "  emulators' CPU (separate processes, not in the CPU above): %s; %.2f ms per enrollment\n", strings.Join(emu, ", "), x.EmulatorCPUPerEnrollment)
	pw, pr := r.PollWait, r.Processing
	fmt.Fprintf(w, "  added latency = poll wait p50 %.0f ms, p95 %.0f ms + processing p50 %.0f ms, p95 %.0f ms\n", pw.P50, pw.P95, pr.P50, pr.P95)
	fmt.Fprintf(w, "  store: %d reads, %d writes, %d transactions, %d conflicts; tasks: %d created (+%d AlreadyExists), %d dispatched, %d non-2xx; Pub/Sub pushes %d; publishing took %.1fs\n",
		r.Store.Reads, r.Store.Writes, r.Store.Transactions, r.Store.Conflicts, r.Tasks.Enqueued, r.Tasks.Duplicates, r.Tasks.Dispatched, r.Tasks.FailedAttempts, r.PubSub.Deliveries, x.PublishSeconds)
	for _, fn := range []string{standins.ClaimProcess, standins.PollSignature, standins.IssueCertificate} {
		if a := x.Answers[fn]; len(a) > 0 {
			d := x.FunctionMs[fn]
			fmt.Fprintf(w, "  %s: answers%s; at most %d at once; took p50 %.0f ms, p95 %.0f ms, p99 %.0f ms", fn, sortedInts64(a), x.MaxInFlight[fn], d.P50, d.P95, d.P99)
			if l, ok := x.DispatchLagMs[fn]; ok && l.N > 0 {
				after := "its task's schedule time"
				if fn == standins.ClaimProcess {
					after = "publishing"
				}
				fmt.Fprintf(w, "; invoked after %s by p50 %.0f ms, p95 %.0f ms, p99 %.0f ms", after, l.P50, l.P95, l.P99)
			}
			fmt.Fprintln(w)
		}
	}
	for _, n := range x.Notes {
		fmt.Fprintln(w, "note:", n)
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

func sortedInts(m map[string]int) string {
	f := map[string]float64{}
	for k, v := range m {
		f[k] = float64(v)
	}
	return sorted(f, "%.0f")
}

func sortedInts64(m map[string]int64) string {
	f := map[string]float64{}
	for k, v := range m {
		f[k] = float64(v)
	}
	return sorted(f, "%.0f")
}

func sortedFloats(m map[string]float64) string { return sorted(m, "%.2f") }

func sorted(m map[string]float64, format string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s "+format, k, m[k])
	}
	return b.String()
}
