// Command campaign runs the fault campaign of issue 5 in process: it enrolls
// simulated clients through the whole adapter while injecting API errors,
// lost answers and timeouts, CA outages and refusals, duplicate deliveries,
// crashes at every crash point and store faults before and after commit, and
// those of issue 11 (lost claim answers, refused repeat claims, setFailure
// failing and contention on a task's last attempt, garbage CA answers), then
// checks every process against the invariants, "every failure reported"
// among them. It runs on a virtual clock (shared/tooling/clock): the
// minutes it simulates take the CPU time they need. It prints the fault counts,
// the outcomes, the API calls and every violation with the process's history,
// and exits non-zero on any violation or unfinished process.
//
//	go run ./functions/cmd/campaign -enrollments 10000 -seed 1 -report campaign.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/campaign"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	code, err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "campaign:", err)
	}
	os.Exit(code)
}

// parse reads the flags into campaign options; report is the -report file.
func parse(args []string, stderr io.Writer) (co campaign.Options, report string, quiet bool, err error) {
	fs := flag.NewFlagSet("campaign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := campaign.Default(2000, 1)
	fs.IntVar(&co.Enrollments, "enrollments", d.Enrollments, "number of simulated clients to enroll")
	fs.Uint64Var(&co.Seed, "seed", d.Seed, "random seed of the client mix, the fault plans and the CA outage timeline")
	fs.StringVar(&report, "report", "", "write the JSON report to this file")
	fs.Float64Var(&co.Slow, "slow", d.Slow, "share of slow clients (they sign 30 s to 5 min after signData)")
	fs.Float64Var(&co.Silent, "silent", d.Silent, "share of silent clients (never sign: failed at the poll deadline)")
	fs.Float64Var(&co.Wrong, "wrong", d.Wrong, "share of clients that sign wrongly (failed: signature does not verify)")
	fs.Float64Var(&co.Elsewhere, "elsewhere", d.Elsewhere, "share of processes already claimed by another adapter")
	fs.Float64Var(&co.APIErrorRate, "api-error-rate", d.APIErrorRate, "share of API requests failed with 429/503/500 before acting")
	fs.Float64Var(&co.LostRate, "lost-rate", d.LostRate, "share of API requests that act but answer 503")
	fs.Float64Var(&co.TimeoutRate, "timeout-rate", d.TimeoutRate, "share of API requests held until the adapter times out (half before acting, half after)")
	fs.Float64Var(&co.CrashRate, "crash-rate", d.CrashRate, "probability that a function dies at each crash point it passes")
	fs.Float64Var(&co.StoreFaultRate, "store-fault-rate", d.StoreFaultRate, "share of store operations failed before they happen")
	fs.Float64Var(&co.StoreAfterCommitRate, "store-after-commit-rate", d.StoreAfterCommitRate, "share of store writes failed after they committed")
	fs.Float64Var(&co.DuplicateRate, "duplicate-rate", d.DuplicateRate, "share of Pub/Sub deliveries and task dispatches delivered twice")
	fs.Float64Var(&co.RefusalRate, "refusal-rate", d.RefusalRate, "share of processes the CA refuses")
	fs.Float64Var(&co.DropRate, "drop-rate", d.DropRate, "share of task dispatches dropped as after a task's last failed attempt (the stale-process sweep must re-drive them)")
	fs.Float64Var(&co.LostClaimRate, "lost-claim-rate", d.LostClaimRate, "share of processes whose first claim acts but loses its answer (503 or timeout after acting)")
	fs.Float64Var(&co.RefuseRepeatClaimShare, "refuse-repeat-claim-share", d.RefuseRepeatClaimShare, "share of processes whose API refuses a repeat claim by the caller that holds them")
	fs.Float64Var(&co.SetFailureLastRate, "setfailure-last-rate", d.SetFailureLastRate, "share of processes whose failure report meets setFailure failing (429/503) on a task's last attempt")
	fs.Float64Var(&co.ContentionLastRate, "contention-last-rate", d.ContentionLastRate, "share of processes whose issuance meets contention (a crashed attempt's lease) on a task's last attempt")
	fs.Float64Var(&co.CAMalformedRate, "ca-malformed-rate", d.CAMalformedRate, "share of issuances whose CA answer is garbage (a transient \"malformed answer\")")
	fs.Float64Var(&co.GarbageCertRate, "garbage-cert-rate", d.GarbageCertRate, "share of processes the CA answers with a certificate for another key (the check must refuse it)")
	fs.DurationVar(&co.CAOutageGap.Min, "ca-outage-gap-min", d.CAOutageGap.Min, "least time between CA outages (production time, divided by -time-scale)")
	fs.DurationVar(&co.CAOutageGap.Max, "ca-outage-gap-max", d.CAOutageGap.Max, "most time between CA outages (production time, divided by -time-scale)")
	fs.DurationVar(&co.CAOutageLength.Min, "ca-outage-min", d.CAOutageLength.Min, "shortest CA outage (production time, divided by -time-scale)")
	fs.DurationVar(&co.CAOutageLength.Max, "ca-outage-max", d.CAOutageLength.Max, "longest CA outage (production time, divided by -time-scale)")
	fs.IntVar(&co.MaxFaultsPerProcess, "max-faults-per-process", d.MaxFaultsPerProcess, "bound on crashes, store faults, lost answers and timeouts per process (0: none)")
	fs.Float64Var(&co.TimeScale, "time-scale", d.TimeScale, "divide client delays, the poll schedule, the lease, the API timeout and task backoff by this factor")
	fs.Float64Var(&co.Arrival, "arrival", d.Arrival, "new clients per second (0: all at once)")
	fs.DurationVar(&co.Timeout, "timeout", 0, "end the run after this long on its clock (default: from the arrival time and the poll deadline)")
	fs.BoolVar(&co.RealClock, "real-clock", false, "run on the real clock (as long as the campaign simulates) instead of the virtual one")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines")
	logs := fs.Bool("logs", false, "print the adapter's JSON logs to stderr")
	if err := fs.Parse(args); err != nil {
		return co, "", false, err
	}
	if fs.NArg() > 0 {
		return co, "", false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if co.TimeScale <= 0 {
		return co, "", false, fmt.Errorf("-time-scale %g: want a positive factor", co.TimeScale)
	}
	if *logs {
		co.Log = logging.New(stderr, slog.LevelInfo, "campaign")
	}
	return co, report, quiet, nil
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	co, report, quiet, err := parse(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0, nil
		}
		return 2, err
	}
	if !quiet {
		co.Progress, co.ProgressEvery = stderr, 5*time.Second
	}
	start := time.Now()
	r, err := campaign.Run(ctx, co)
	if err != nil {
		return 2, err
	}
	printReport(stdout, r, time.Since(start))
	if report != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(report, append(b, '\n'), 0o644); err != nil {
			return 1, fmt.Errorf("-report: %w", err)
		}
	}
	if !r.OK() {
		return 1, fmt.Errorf("%d processes with violations (%d unfinished)", len(r.Violations), r.Outcomes.Unfinished)
	}
	return 0, nil
}

func printReport(w io.Writer, r *campaign.Report, took time.Duration) {
	fmt.Fprintf(w, "fault campaign: %d enrollments, seed %d, time scale %g, %.1fs (%.0fs on its clock)\n", r.Enrollments, r.Seed, r.TimeScale, took.Seconds(), r.ClockSeconds)
	f := r.Faults
	fmt.Fprintf(w, "faults injected:\n")
	fmt.Fprintf(w, "  API: %d requests; before acting 503 %d, 429 %d, 500 %d (%.2f%% of requests); lost answers %d; timeouts %d before acting, %d after\n",
		f.APIRequests, f.APIUnavailable, f.APIResourceExhausted, f.APIInternal, 100*f.APIErrorShare, f.APILostResponse, f.APITimeout, f.APITimeoutAfterActing)
	fmt.Fprintf(w, "  CA: %d outage windows failing %d issuances (%d spared: process at its fault bound); %d processes refused (%d refusals)\n", f.CAOutageWindows, f.CAOutageFailures, f.CAOutageSpared, f.CARefusedProcesses, f.CARefusals)
	fmt.Fprintf(w, "  duplicates: %d Pub/Sub deliveries, %d task dispatches; dropped tasks: %d\n", f.PubSubDuplicates, f.TaskDuplicates, f.TasksDropped)
	fmt.Fprintf(w, "  crashes: %s\n", counts(f.Crashes))
	fmt.Fprintf(w, "  store faults before commit: %s\n", counts(f.StoreBefore))
	fmt.Fprintf(w, "  store faults after commit: %s\n", counts(f.StoreAfterCommit))
	fmt.Fprintf(w, "  claims: %d answers lost after acting; %d processes whose API refuses repeat claims, %d repeat claims refused\n", f.LostClaimAnswers, f.RepeatClaimRefusalProcesses, f.RepeatClaimsRefused)
	fmt.Fprintf(w, "  last attempts: setFailure failed on %d (after %d setFailure 503s that led there); contention on %d (after %d crashes holding the lease)\n", f.SetFailureLast, f.SetFailureBeforeLast, f.ContentionLast, f.ContentionCrashes)
	fmt.Fprintf(w, "  CA garbage: %d malformed answers (transient), %d certificates for another key\n", f.CAMalformed, f.CAGarbageCerts)
	fmt.Fprintf(w, "  not injected (process at its fault bound): %d\n", f.Suppressed)
	fmt.Fprintf(w, "scenarios: %s\n", counts(r.Scenarios))
	fmt.Fprintf(w, "expected:  %s\n", counts(r.Expected))
	o := r.Outcomes
	fmt.Fprintf(w, "outcomes:  uploaded %d, failed %d, claimed elsewhere %d, unfinished %d\n", o.Uploaded, o.Failed, o.ClaimedElsewhere, o.Unfinished)
	fmt.Fprintf(w, "own repeat claim refused: %d processes ended CLAIMED_ELSEWHERE (expected), %d ERROR logs %q\n", r.OwnClaimRefused, r.OwnClaimRefusedErrors, pipeline.MsgOwnClaimRefused)
	fmt.Fprintf(w, "every failure reported: %d ERROR logs %q; %d attempts presented as a task's last failed\n", r.FailureUnreportedErrors, pipeline.MsgFailureUnreported, r.LastAttemptsFailed)
	fmt.Fprintf(w, "API calls: %s\n", counts(r.APICalls))
	if r.Run != nil {
		fmt.Fprintf(w, "tasks: %d enqueued, %d dispatched, %d failed attempts, %d dropped; Pub/Sub: %d deliveries, %d dead-lettered\n",
			r.Run.Tasks.Enqueued, r.Run.Tasks.Dispatched, r.Run.Tasks.FailedAttempts, r.Run.Tasks.Dropped, r.Run.PubSub.Deliveries, r.Run.PubSub.DeadLettered)
		if sw := r.Run.Sweep; sw != nil {
			fmt.Fprintf(w, "sweeps: %d runs (%d failed to list); %d idle records found, %d re-driven, %d failed, %d still unreported, %d moved meanwhile, %d not acted on\n",
				sw.Runs, sw.Errors, sw.Found, sw.Redriven, sw.Failed, sw.Unreported, sw.Moved, sw.SweepResult.Errors)
		}
	}
	if len(r.Violations) == 0 {
		fmt.Fprintf(w, "violations: none\n")
		return
	}
	fmt.Fprintf(w, "violations: %d processes\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprint(w, v.String())
	}
}

// counts prints a map sorted by key.
func counts[K ~string, V int | int64](m map[K]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	slices.Sort(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, m[K(k)])
	}
	if s == "" {
		return "none"
	}
	return s
}
