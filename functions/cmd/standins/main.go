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
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/tooling/scenario"
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
	fs, sc, own := flags(stderr)
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	so, err := sc.Options(os.LookupEnv, stderr)
	if err != nil {
		return 2, err
	}
	if own.shards < 1 || own.rate < 0 || own.conc < 1 {
		return 2, errors.New("-push-shards and -queue-concurrency must be positive, -queue-rate 0 or more")
	}
	if own.warmup < 0 {
		return 2, fmt.Errorf("-warmup %d: want 0 or more", own.warmup)
	}
	so.Timeout = own.timeout
	o := standins.LoadOptions{Warmup: own.warmup, PushShards: own.shards, MaxDispatchesPerSecond: own.rate, MaxConcurrentDispatches: int32(own.conc), Options: so}
	if sc.Logs {
		o.LogLevel = "info"
	}
	// functions-framework-go prints to os.Stdout as it serves, and the
	// functions log there: stdout is kept for the summary, those go to
	// stderr with -logs and are dropped otherwise (as the local run does).
	if f, ok := stdout.(*os.File); ok && f == os.Stdout {
		os.Stdout = os.Stderr
		if !sc.Logs {
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
	if !sc.Quiet && len(emus.Started) > 0 {
		fmt.Fprintf(stderr, "started emulators: %s (firestore %s, pubsub %s, cloud tasks %s)\n",
			strings.Join(emus.Started, ", "), emus.Hosts.Firestore, emus.Hosts.PubSub, emus.Hosts.Tasks)
	}
	res, err := standins.Load(ctx, emus.Hosts, o)
	if err != nil {
		return 1, err
	}
	printSummary(stdout, res)
	if sc.Report != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(sc.Report, append(b, '\n'), 0o644); err != nil {
			return 1, fmt.Errorf("-report: %w", err)
		}
	}
	if !res.OK() {
		return 1, fmt.Errorf("%d processes did not end as expected, %d invariant violations", len(res.Unexpected), len(res.Violations))
	}
	return 0, nil
}

// ownFlags are the stand-ins run's own flags, beside the scenario's.
type ownFlags struct {
	timeout        time.Duration
	warmup, shards int
	rate           float64
	conc           int
}

// flags declares the stand-ins run's flags: the scenario's (shared with
// functions/cmd/local) and its own.
func flags(stderr io.Writer) (*flag.FlagSet, *scenario.Scenario, *ownFlags) {
	fs := flag.NewFlagSet("standins", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sc := scenario.Flags(fs)
	o := &ownFlags{}
	fs.DurationVar(&o.timeout, "timeout", 0, "end the run after this long; unfinished processes are reported (default: the deadline plus 5 minutes)")
	fs.IntVar(&o.warmup, "warmup", 1000, "warm the emulators up first with batches of this many unmeasured enrollments, until their CPU per enrollment levels off (0: no warm-up, for emulators already warm)")
	fs.IntVar(&o.shards, "push-shards", standins.DefaultPushShards, "spread the notifications over this many topics, each with its own push subscription (the Pub/Sub emulator pushes two messages at a time per subscription)")
	fs.Float64Var(&o.rate, "queue-rate", 0, "max dispatches per second of each Cloud Tasks queue (default: Cloud Tasks' ceiling of 500/s, times -time-scale)")
	fs.IntVar(&o.conc, "queue-concurrency", 1000, "max concurrent dispatches of each Cloud Tasks queue")
	return fs, sc, o
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
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, " %s "+format, k, m[k])
	}
	return b.String()
}
