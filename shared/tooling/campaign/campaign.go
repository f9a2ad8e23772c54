// Package campaign is the fault campaign: it enrolls simulated clients
// through the whole adapter (shared/tooling/simulation) on a virtual clock
// while injecting faults at random into every process -- API errors, lost
// answers and timeouts, crashes at every crash point, store faults before and
// after commit, duplicate and dropped deliveries, CA outages, refusals and
// garbage -- and checks every process against the invariants of
// architecture.md and the ending its scenario and its faults call for.
package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/notification"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// Options configure a fault campaign (Run). Rates are
// probabilities per opportunity (per API request, per crash point passed, per
// store operation); shares are fractions of Enrollments. Default
// gives the documented mix.
type Options struct {
	Enrollments int
	// Seed makes the client mix, the per-process fault plans and the CA
	// outage timeline repeatable. Which request of a process meets a fault
	// also depends on timing (retries, duplicates), so a rerun is the same
	// campaign, not the same trace.
	Seed uint64
	// Scenario shares; the rest are online clients.
	Slow, Silent, Wrong, Elsewhere float64

	// APIErrorRate fails API requests before acting: 429 (40%), 503 (40%)
	// and 500 (20%).
	APIErrorRate float64
	// LostRate: the request acts, the answer is a 503.
	LostRate float64
	// TimeoutRate: the request is held until the adapter's client times out,
	// half of them before acting and half after.
	TimeoutRate float64
	// CrashRate: the function dies at a crash point of the pipeline (before
	// or after an external call or a store write).
	CrashRate float64
	// StoreFaultRate fails a store operation before it happens;
	// StoreAfterCommitRate fails a write after it committed.
	StoreFaultRate, StoreAfterCommitRate float64
	// DuplicateRate duplicates Pub/Sub deliveries and task dispatches.
	DuplicateRate float64
	// DropRate drops task dispatches as Cloud Tasks does after a task's last
	// failed attempt: nothing resumes the process until the stale-process
	// sweep re-drives it. At most one per process, within
	// MaxFaultsPerProcess.
	DropRate float64
	// RefusalRate is the share of processes the CA refuses (permanently).
	RefusalRate float64

	// The faults of issue 11, drawn per process (shares of the processes)
	// except CAMalformedRate (per issuance).
	//
	// LostClaimRate: the process's first claim acts but its answer is lost
	// (a 503, or a timeout after acting, half each). Bounded.
	LostClaimRate float64
	// RefuseRepeatClaimShare: the API refuses a repeat claim by the caller
	// that holds the process (cpemulator.Options.RefuseRepeatClaim). With a
	// lost claim answer (or a crash after the claim) the pipeline's retry is
	// refused: the process ends CLAIMED_ELSEWHERE with an ERROR log
	// (pipeline.MsgOwnClaimRefused), as expected, not a violation.
	RefuseRepeatClaimShare float64
	// SetFailureLastRate: the process's failure report meets a setFailure
	// that fails (429 or 503) on a task's last attempt. The first setFailure
	// made in a task answers 503, so the record stays FAILING; the attempt
	// that then finds it FAILING is presented as the task's last (see
	// Options.TaskAttempt), and its setFailure fails. Bounded.
	SetFailureLastRate float64
	// ContentionLastRate: the process's issuance meets contention on a
	// task's last attempt: an issue attempt crashes at issue:before-ca
	// holding the lease, and its retry, presented as the task's last, finds
	// the lease held. Bounded.
	ContentionLastRate float64
	// CAMalformedRate: per issuance, the CA's answer is garbage that the
	// connector turns into a transient *ca.Error "malformed answer" (what
	// shared/ca makes of a malformed PKCS#7). Bounded.
	CAMalformedRate float64
	// GarbageCertRate: the CA answers the process with a certificate for
	// another key; the pipeline's check must refuse it (FAILED).
	GarbageCertRate float64
	// CAOutageGap and CAOutageLength (clock time, scaled by TimeScale) draw the
	// CA outage windows: during one every issuance fails transiently.
	CAOutageGap, CAOutageLength simulation.Range
	// MaxFaultsPerProcess bounds the faults injected into one process that
	// cost it retries -- crashes, store faults, lost answers, timeouts and CA
	// outage failures (an outage spares a process at its bound) -- so that
	// injected faults alone never exhaust the bounded retries, after which
	// giving up is the designed ending. A crash that holds a lease costs
	// about half a task's attempts (as in production: the backoff reaches the
	// lease after five attempts). API errors before acting on signData are
	// bounded too: the retry waits for the lease (signData is never called
	// again blindly). Other API errors, refusals and duplicates are not
	// bounded: an API error costs one attempt. 0: unbounded.
	MaxFaultsPerProcess int

	// TimeScale divides the client delays, the poll schedule, the lease, the
	// API timeout and the task backoff, which are production-like in real
	// time (see campaignTiming). Default 20.
	TimeScale float64
	// RealClock runs the campaign on the real clock instead of a virtual
	// one (clock.Virtual): it then takes as long as it simulates. The tests
	// that stall the pipeline on purpose use it.
	RealClock bool
	// Arrival is new clients per second (0: all at once).
	Arrival float64
	// Timeout ends the run; default: the arrival time plus three poll
	// deadlines plus a minute. Processes not ended by then are violations.
	Timeout time.Duration

	Progress      io.Writer
	ProgressEvery time.Duration
	Log           *slog.Logger

	// stall, when set, runs at every crash point before the campaign's own
	// decision (tests use it to break the pipeline on purpose).
	stall func(point string)
}

// Default returns the campaign of issue 5: a mostly online mix with
// every ending, API errors at 5% plus lost answers and timeouts, crashes at
// every point, store faults before and after commit, duplicates, CA outages
// and refusals; and those of issue 11: lost claim answers, refused repeat
// claims, setFailure failing and contention on a task's last attempt, and
// garbage CA answers.
func Default(enrollments int, seed uint64) Options {
	return Options{
		Enrollments: enrollments, Seed: seed,
		Slow: 0.10, Silent: 0.03, Wrong: 0.03, Elsewhere: 0.03,
		APIErrorRate: 0.05, LostRate: 0.01, TimeoutRate: 0.01,
		CrashRate: 0.01, StoreFaultRate: 0.005, StoreAfterCommitRate: 0.005,
		DuplicateRate: 0.05, RefusalRate: 0.03, DropRate: 0.005,
		LostClaimRate: 0.03, RefuseRepeatClaimShare: 0.5, SetFailureLastRate: 0.2,
		ContentionLastRate: 0.02, CAMalformedRate: 0.02, GarbageCertRate: 0.01,
		CAOutageGap:         simulation.Range{Min: time.Minute, Max: 4 * time.Minute},
		CAOutageLength:      simulation.Range{Min: 5 * time.Second, Max: 20 * time.Second},
		MaxFaultsPerProcess: 3,
		TimeScale:           20,
		Arrival:             50,
	}
}

// campaignPoll is the default poll schedule with a 30-minute deadline (24
// hours in production): slow clients sign 30 s to 5 min after signData,
// before its late phase, and silent ones reach its late phase and then the
// deadline. The slow clients sign at a uniform delay, not at the client's
// check-ins: one whose signData came late through faults would have no
// check-in left before this deadline (its next is 8 hours on), and the
// campaign expects slow clients uploaded. The deadline leaves room for a
// sweep to resume a process whose task was dropped (sweepAfter) before the
// CA's deadline, which also counts from the signature.
func campaignPoll() pipeline.PollSchedule {
	p := pipeline.DefaultPoll
	p.Deadline = 30 * time.Minute
	return p
}

// campaignTiming is the campaign's time base in production time; Run divides
// it by TimeScale. The ratios follow production: the lease (2 minutes there)
// is four API timeouts, task backoff (2s to 5 minutes) and Pub/Sub's
// redelivery backoff (10s to 10 minutes, terraform's claim_retry_backoff)
// grow past the lease.
var campaignTiming = struct {
	fast, slow     simulation.Range
	poll           pipeline.PollSchedule
	lease, apiCall time.Duration
	taskMaxBackoff time.Duration
	pubsubBackoff  simulation.Range
	// The sweep: idle after sweepAfter (at least twice the poll schedule's
	// longest gap, 6 minutes), run every sweepEvery.
	sweepAfter, sweepEvery time.Duration
}{
	fast:           simulation.Range{Min: time.Second, Max: 5 * time.Second},
	slow:           simulation.Range{Min: 30 * time.Second, Max: 5 * time.Minute},
	poll:           campaignPoll(),
	lease:          80 * time.Second,
	apiCall:        20 * time.Second,
	taskMaxBackoff: 5 * time.Minute,
	pubsubBackoff:  simulation.Range{Min: 10 * time.Second, Max: 10 * time.Minute},
	sweepAfter:     12 * time.Minute,
	sweepEvery:     2 * time.Minute,
}

func (co *Options) validate() error {
	if co.Enrollments <= 0 {
		return errors.New("campaign: enrollments must be positive")
	}
	for name, v := range map[string]float64{
		"slow": co.Slow, "silent": co.Silent, "wrong": co.Wrong, "elsewhere": co.Elsewhere,
		"api error rate": co.APIErrorRate, "lost rate": co.LostRate, "timeout rate": co.TimeoutRate,
		"crash rate": co.CrashRate, "store fault rate": co.StoreFaultRate, "store after-commit rate": co.StoreAfterCommitRate,
		"duplicate rate": co.DuplicateRate, "refusal rate": co.RefusalRate, "drop rate": co.DropRate,
		"lost claim rate": co.LostClaimRate, "repeat claim refusal share": co.RefuseRepeatClaimShare,
		"setFailure last-attempt rate": co.SetFailureLastRate, "contention last-attempt rate": co.ContentionLastRate,
		"CA malformed rate": co.CAMalformedRate, "garbage certificate rate": co.GarbageCertRate,
	} {
		if v < 0 || v > 1 {
			return fmt.Errorf("campaign: %s %g: want 0 to 1", name, v)
		}
	}
	if co.Slow+co.Silent+co.Wrong+co.Elsewhere > 1 {
		return errors.New("campaign: scenario shares add up to more than 1")
	}
	if co.APIErrorRate+co.LostRate+co.TimeoutRate > 1 {
		return errors.New("campaign: API fault rates add up to more than 1")
	}
	if co.TimeScale < 0 || co.Arrival < 0 || co.MaxFaultsPerProcess < 0 {
		return errors.New("campaign: negative time scale, arrival or fault bound")
	}
	return nil
}

// options turns the campaign into simulation options wired to inj.
func (co *Options) options(inj *injector) simulation.Options {
	s := co.TimeScale
	if s <= 0 {
		s = 1
	}
	t := campaignTiming
	sched := t.poll.Scale(s)
	sweepAfter, sweepEvery := time.Duration(float64(t.sweepAfter)/s), time.Duration(float64(t.sweepEvery)/s)
	timeout := co.Timeout
	if timeout <= 0 {
		timeout = 3*sched.Deadline + time.Minute
		if co.Arrival > 0 {
			timeout += time.Duration(float64(co.Enrollments) / co.Arrival * float64(time.Second))
		}
		if co.DropRate > 0 || co.ContentionLastRate > 0 { // every dropped task waits for a sweep
			timeout += time.Duration(max(co.MaxFaultsPerProcess, 3)) * (sweepAfter + sweepEvery)
		}
		if co.SetFailureLastRate > 0 { // a fresh report task waits a minute (not scaled)
			timeout += 2 * time.Minute
		}
	}
	return simulation.Options{
		Clients: co.Enrollments,
		Slow:    co.Slow, Silent: co.Silent, Wrong: co.Wrong, Elsewhere: co.Elsewhere,
		FastDelay: t.fast.Scale(s), SlowDelay: t.slow.Scale(s),
		Schedule: sched, TimeScale: s, Arrival: co.Arrival, Seed: co.Seed,
		Timeout:  timeout,
		Progress: co.Progress, ProgressEvery: co.ProgressEvery, Log: slog.New(inj.errors.handler(co.Log)),
		DuplicateRate:         co.DuplicateRate,
		APIFault:              inj.apiFault,
		CAFault:               inj.caFault,
		StoreFault:            inj.storeFault,
		StoreAfterCommitFault: inj.storeAfterCommit,
		Crash:                 inj.crash,
		TaskFault:             inj.taskFault,
		TaskAttempt:           inj.taskAttempt,
		RefuseRepeatClaim:     inj.refuseRepeatClaim,
		CAAnswer:              inj.caAnswer,
		Store:                 inj.store,
		SweepAfter:            sweepAfter,
		SweepEvery:            sweepEvery,
		Lease:                 time.Duration(float64(t.lease) / s),
		APITimeout:            time.Duration(float64(t.apiCall) / s),
		TaskMaxBackoff:        time.Duration(float64(t.taskMaxBackoff) / s),
		PubSubBackoff:         t.pubsubBackoff.Scale(s),
		Published:             inj.published,
	}
}

// Report is what a campaign injected and found. JSON field names are
// the campaign command's report contract.
type Report struct {
	Enrollments int     `json:"enrollments"`
	Seed        uint64  `json:"seed"`
	TimeScale   float64 `json:"time_scale"`
	WallSeconds float64 `json:"wall_seconds"`
	// ClockSeconds is the time the campaign simulated, on its clock (the
	// wall time with RealClock).
	ClockSeconds float64 `json:"clock_seconds"`
	// Faults counts what was injected, by kind.
	Faults FaultCounts `json:"faults"`
	// Scenarios and Expected count the processes by scenario and by expected
	// ending ("FAILED (CA refused)" for the refused ones that reach the CA).
	Scenarios map[simulation.Scenario]int `json:"scenarios"`
	Expected  map[string]int              `json:"expected"`
	Outcomes  simulation.Outcomes         `json:"outcomes"`
	APICalls  map[string]int              `json:"api_calls"`
	// OwnClaimRefused is the processes that ended CLAIMED_ELSEWHERE because
	// the API refused our own repeat claim (expected with
	// RefuseRepeatClaimShare); OwnClaimRefusedErrors the ERROR logs
	// pipeline.MsgOwnClaimRefused, FailureUnreportedErrors those of
	// pipeline.MsgFailureUnreported.
	OwnClaimRefused         int   `json:"own_claim_refused_claimed_elsewhere"`
	OwnClaimRefusedErrors   int64 `json:"own_claim_refused_errors"`
	FailureUnreportedErrors int64 `json:"failure_unreported_errors"`
	// LastAttemptsFailed is the attempts presented as a task's last
	// (contention, setFailure) that failed: their task was dropped.
	LastAttemptsFailed int64 `json:"last_attempts_failed"`
	// Violations are the processes that broke an invariant or did not end as
	// expected, each with its history; empty means the campaign passed.
	Violations []Violation `json:"violations"`
	// Run is the simulation's own report (costs, latencies); its Unexpected
	// and Violations are superseded by the campaign's checks and left empty.
	Run *simulation.Report `json:"run"`
}

// OK reports whether every process ended as expected with no violation.
func (r *Report) OK() bool { return len(r.Violations) == 0 && r.Outcomes.Unfinished == 0 }

// Violation is one process's problems.
type Violation struct {
	Process  string              `json:"process"`
	Index    int                 `json:"index"`
	Scenario simulation.Scenario `json:"scenario"`
	Expected string              `json:"expected"`
	Problems []string            `json:"problems"`
	// History is the process's record history, the API's view of it, what the
	// CA did and the faults injected into it.
	History []string `json:"history"`
}

// String prints the violation with its history.
func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s (%s, expected %s):\n", v.Index, v.Process, v.Scenario, v.Expected)
	for _, p := range v.Problems {
		fmt.Fprintf(&b, "  VIOLATION %s\n", p)
	}
	for _, h := range v.History {
		fmt.Fprintf(&b, "    %s\n", h)
	}
	return b.String()
}

// FaultCounts counts injected faults by kind.
type FaultCounts struct {
	APIRequests int64 `json:"api_requests"`
	// API errors before acting, by status.
	APIUnavailable       int64 `json:"api_503_unavailable"`
	APIResourceExhausted int64 `json:"api_429_resource_exhausted"`
	APIInternal          int64 `json:"api_500_internal"`
	// APIErrorShare is the 5xx and 429 errors over the API requests.
	APIErrorShare         float64 `json:"api_error_share"`
	APILostResponse       int64   `json:"api_lost_response"`
	APITimeout            int64   `json:"api_timeout_before_acting"`
	APITimeoutAfterActing int64   `json:"api_timeout_after_acting"`
	// CAOutageWindows is the windows that began during the run;
	// CAOutageFailures the issuances they failed.
	CAOutageWindows  int   `json:"ca_outage_windows"`
	CAOutageFailures int64 `json:"ca_outage_failures"`
	// CAOutageSpared is the issuances let through an outage because their
	// process was at its fault bound (also counted in Suppressed).
	CAOutageSpared     int64 `json:"ca_outage_spared"`
	CARefusedProcesses int   `json:"ca_refused_processes"`
	CARefusals         int64 `json:"ca_refusals"`
	PubSubDuplicates   int64 `json:"pubsub_duplicate_deliveries"`
	TaskDuplicates     int64 `json:"task_duplicate_dispatches"`
	// TasksDropped is the task dispatches dropped (DropRate).
	TasksDropped int64 `json:"tasks_dropped"`
	// Crashes by crash point; store faults by operation.
	Crashes          map[string]int64 `json:"crashes"`
	StoreBefore      map[string]int64 `json:"store_faults_before_commit"`
	StoreAfterCommit map[string]int64 `json:"store_faults_after_commit"`
	// Suppressed is the faults drawn but not injected (and the outage
	// failures spared) because the process had used MaxFaultsPerProcess.
	Suppressed int64 `json:"suppressed_by_bound"`

	// Issue 11. LostClaimAnswers: claims that acted, answer lost.
	LostClaimAnswers int64 `json:"lost_claim_answers"`
	// RepeatClaimRefusalProcesses is the processes whose API refuses a
	// repeat claim; RepeatClaimsRefused the repeat claims it refused.
	RepeatClaimRefusalProcesses int `json:"repeat_claim_refusal_processes"`
	RepeatClaimsRefused         int `json:"repeat_claims_refused"`
	// SetFailureBeforeLast is the first setFailure of a process answered 503
	// to bring its report to a last attempt; SetFailureLast the setFailure
	// calls failed (429/503) on a task's last attempt.
	SetFailureBeforeLast int64 `json:"setfailure_503_before_last_attempt"`
	SetFailureLast       int64 `json:"setfailure_failed_on_last_attempt"`
	// ContentionCrashes is the issue attempts crashed holding the lease;
	// ContentionLast the retries presented as the last attempt that found
	// the lease held.
	ContentionCrashes int64 `json:"contention_crashes"`
	ContentionLast    int64 `json:"contention_on_last_attempt"`
	// CAMalformed is the CA answers turned into a transient "malformed
	// answer"; CAGarbageCerts the certificates for another key returned.
	CAMalformed    int64 `json:"ca_malformed_answers"`
	CAGarbageCerts int64 `json:"ca_garbage_certificates"`
}

// Kinds flattens the counts into one number per kind of fault.
func (f FaultCounts) Kinds() map[string]int64 {
	sum := func(m map[string]int64) (n int64) {
		for _, v := range m {
			n += v
		}
		return n
	}
	return map[string]int64{
		"api 503":                   f.APIUnavailable,
		"api 429":                   f.APIResourceExhausted,
		"api 500":                   f.APIInternal,
		"api lost response":         f.APILostResponse,
		"api timeout before acting": f.APITimeout,
		"api timeout after acting":  f.APITimeoutAfterActing,
		"ca outage":                 f.CAOutageFailures,
		"ca refusal":                f.CARefusals,
		"pubsub duplicate":          f.PubSubDuplicates,
		"task duplicate":            f.TaskDuplicates,
		"task dropped":              f.TasksDropped,
		"crash":                     sum(f.Crashes),
		"store fault before commit": sum(f.StoreBefore),
		"store fault after commit":  sum(f.StoreAfterCommit),
		"lost claim answer":         f.LostClaimAnswers,
		"repeat claim refused":      int64(f.RepeatClaimsRefused),
		"setFailure failed on last": f.SetFailureLast,
		"contention on last":        f.ContentionLast,
		"ca malformed answer":       f.CAMalformed,
		"ca garbage certificate":    f.CAGarbageCerts,
	}
}

// Run enrolls co.Enrollments simulated clients through the whole
// adapter while injecting faults at random, then checks every process against
// the invariants of architecture.md and the ending its scenario (and any CA
// refusal injected into it) calls for.
func Run(ctx context.Context, co Options) (*Report, error) {
	if err := co.validate(); err != nil {
		return nil, err
	}
	inj := newInjector(co)
	inj.store = memory.New()
	o := co.options(inj)
	if !co.RealClock {
		v := clock.NewVirtual(time.Now().UTC().Truncate(time.Second))
		// Timers due within a millisecond run together, so that
		// processes run concurrently as in production.
		v.Quantum = time.Millisecond
		defer v.Stop()
		o.Clock = v
	}
	if o.Clock != nil {
		inj.clk = o.Clock
	}
	inj.start = inj.clk.Now()
	w, err := simulation.Execute(ctx, &o)
	if err != nil {
		return nil, err
	}
	return inj.evaluate(ctx, w, &o), nil
}

// injector decides and counts the faults. Each process has its own plan and
// random stream, numbered by creation order.
type injector struct {
	co    Options
	clk   clock.Clock
	start time.Time

	mu      sync.Mutex
	plans   []*plan
	byID    map[string]*plan // process id
	byReqID map[string]*plan // CA request id
	refuse  *rand.Rand       // draws the refused processes, in creation order

	outages []window

	// store is the run's store: a task attempt's fault reads its record.
	store *memory.Store
	// kinds draws each process's issue-11 faults, in creation order.
	kinds *rand.Rand
	// garbage is a certificate for a key no client holds.
	garbage *ca.Issued
	// errors counts the pipeline's ERROR logs by process and message.
	errors *errorLog

	apiRequests, api503, api429, api500, lost, timeout, timeoutActed atomic.Int64
	outageFailures, outageSpared, refusals, suppressed               atomic.Int64
	lostClaims, setFailureBefore, setFailureLast                     atomic.Int64
	contentionCrashes, contentionLast, caMalformed, garbageCerts     atomic.Int64
	kmu                                                              sync.Mutex
	crashes, storeBefore, storeAfter                                 map[string]int64
}

type window struct{ from, to time.Duration }

// plan is one process's faults.
type plan struct {
	index   int
	id, key string
	refused bool
	// Issue 11's faults planned for this process.
	lostClaim, refuseRepeat, failLast, contendLast, garbageCert bool

	mu     sync.Mutex
	rng    *rand.Rand
	faults int // bounded faults injected
	// dropped: a task of this process was dropped (at most one per process).
	dropped bool
	log     []string
	// lostClaimDone: the lost claim answer was drawn. failFirstDone: the
	// first setFailure in a task failed; failLastDone: the one on a last
	// attempt. lastInFlight: attempts presented as last for setFailure.
	lostClaimDone, failFirstDone, failLastDone bool
	inTask, lastInFlight                       int
	// contendDone: the crash holding the lease happened; contendNext: the
	// next attempt is presented as the last.
	contendDone, contendNext bool
	// lastFailed: attempts presented as a task's last that failed.
	lastFailed []string
}

func newInjector(co Options) *injector {
	inj := &injector{
		co: co, clk: clock.Real{}, byID: map[string]*plan{}, byReqID: map[string]*plan{},
		refuse:  rand.New(rand.NewPCG(co.Seed, 0xca5e)),
		kinds:   rand.New(rand.NewPCG(co.Seed, 0x11fa17)),
		garbage: garbageCertificate(),
		errors:  &errorLog{n: map[[2]string]int64{}},
		crashes: map[string]int64{}, storeBefore: map[string]int64{}, storeAfter: map[string]int64{},
	}
	// The outage timeline, far enough for any run.
	rng := rand.New(rand.NewPCG(co.Seed, 0x0a7a9e))
	s := co.TimeScale
	if s <= 0 {
		s = 1
	}
	gap, length := co.CAOutageGap.Scale(s), co.CAOutageLength.Scale(s)
	if length.Max > 0 && gap.Max > 0 {
		for t := gap.Pick(rng); t < 24*time.Hour; t += gap.Pick(rng) {
			d := length.Pick(rng)
			inj.outages = append(inj.outages, window{t, t + d})
			t += d
		}
	}
	return inj
}

// published numbers a new process and draws its plan.
func (inj *injector) published(data []byte) {
	ev, _, err := notification.Decode(data)
	if err != nil {
		return
	}
	inj.mu.Lock()
	defer inj.mu.Unlock()
	if _, ok := inj.byID[ev.ProcessID]; ok {
		return
	}
	i := len(inj.plans)
	p := &plan{
		index: i, id: ev.ProcessID, key: progress.Key(ev.CustomerID, ev.ProcessID),
		refused: inj.refuse.Float64() < inj.co.RefusalRate,
		rng:     rand.New(rand.NewPCG(inj.co.Seed, uint64(i)+1)),
	}
	k := inj.kinds
	p.lostClaim = k.Float64() < inj.co.LostClaimRate
	p.refuseRepeat = k.Float64() < inj.co.RefuseRepeatClaimShare
	p.failLast = k.Float64() < inj.co.SetFailureLastRate
	p.contendLast = k.Float64() < inj.co.ContentionLastRate
	p.garbageCert = k.Float64() < inj.co.GarbageCertRate && !p.refused
	inj.plans = append(inj.plans, p)
	inj.byID[p.id] = p
	inj.byReqID[pipeline.RequestID(p.key)] = p
}

func (inj *injector) planByID(id string) *plan {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	return inj.byID[id]
}

// draw returns a uniform number from p's stream.
func (p *plan) draw() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64()
}

// take spends one bounded fault of p and logs it; false when p has none left.
func (inj *injector) take(p *plan, what string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if inj.co.MaxFaultsPerProcess > 0 && p.faults >= inj.co.MaxFaultsPerProcess {
		inj.suppressed.Add(1)
		return false
	}
	p.faults++
	p.log = append(p.log, inj.stamp()+what)
	return true
}

// note logs an unbounded fault of p.
func (inj *injector) note(p *plan, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, inj.stamp()+what)
}

func (inj *injector) stamp() string {
	return fmt.Sprintf("+%dms ", inj.clk.Now().Sub(inj.start).Milliseconds())
}

func (inj *injector) count(m map[string]int64, k string) {
	inj.kmu.Lock()
	defer inj.kmu.Unlock()
	m[k]++
}

// apiFault decides the fault of one API request.
func (inj *injector) apiFault(method, name string) cpemulator.Fault {
	inj.apiRequests.Add(1)
	id := name[strings.LastIndexByte(name, '/')+1:]
	p := inj.planByID(id)
	if p == nil {
		return cpemulator.FaultPass
	}
	if f, ok := inj.issue11APIFault(p, method); ok {
		return f
	}
	u, v := p.draw(), p.draw()
	e, l, t := inj.co.APIErrorRate, inj.co.LostRate, inj.co.TimeoutRate
	switch {
	case u < e && method == cpemulator.MethodSignData && !inj.take(p, "api signData: error before acting"):
		// At its bound: a signData error costs a lease wait, like a crash.
	case u < e:
		switch {
		case v < 0.4:
			inj.api429.Add(1)
			inj.note(p, "api "+method+": 429")
			return cpemulator.FaultResourceExhausted
		case v < 0.8:
			inj.api503.Add(1)
			inj.note(p, "api "+method+": 503")
			return cpemulator.FaultUnavailable
		}
		inj.api500.Add(1)
		inj.note(p, "api "+method+": 500")
		return cpemulator.FaultInternal
	case u < e+l:
		if inj.take(p, "api "+method+": lost response (acted)") {
			inj.lost.Add(1)
			return cpemulator.FaultLostResponse
		}
	case u < e+l+t:
		if v < 0.5 {
			if inj.take(p, "api "+method+": timeout before acting") {
				inj.timeout.Add(1)
				return cpemulator.FaultTimeout
			}
		} else if inj.take(p, "api "+method+": timeout after acting") {
			inj.timeoutActed.Add(1)
			return cpemulator.FaultTimeoutAfterActing
		}
	}
	return cpemulator.FaultPass
}

// caFault fails issuances during outage windows (transient) and for the
// refused processes (permanent).
func (inj *injector) caFault(req ca.Request) error {
	inj.mu.Lock()
	p := inj.byReqID[req.RequestID]
	inj.mu.Unlock()
	now := inj.clk.Now().Sub(inj.start)
	i := sort.Search(len(inj.outages), func(i int) bool { return inj.outages[i].to > now })
	if i < len(inj.outages) && inj.outages[i].from <= now {
		// A process at its fault bound is spared: the outage would cost it
		// one of the attempts the bound keeps for it.
		if p == nil || inj.take(p, fmt.Sprintf("ca: outage window %d", i)) {
			inj.outageFailures.Add(1)
			return &ca.Error{Kind: ca.Transient, Reason: "outage (fault campaign)"}
		}
		inj.outageSpared.Add(1)
	}
	if p != nil && p.draw() < inj.co.CAMalformedRate && inj.take(p, "ca: malformed answer") {
		inj.caMalformed.Add(1)
		return &ca.Error{Kind: ca.Transient, Reason: "malformed answer", Err: errors.New("pkcs7: index out of range parsing the answer (fault campaign)")}
	}
	if p != nil && p.refused {
		inj.refusals.Add(1)
		inj.note(p, "ca: refused")
		return &ca.Error{Kind: ca.Permanent, Reason: "refused (fault campaign)", UserMessage: "The certificate authority refused this request (fault campaign). Contact your administrator."}
	}
	return nil
}

// storeFault fails a store operation before it happens.
func (inj *injector) storeFault(op, key string) error {
	p := inj.planByID(key[strings.LastIndexByte(key, ':')+1:])
	if p == nil {
		return nil
	}
	if p.draw() < inj.co.StoreFaultRate && inj.take(p, "store "+op+": failed before commit") {
		inj.count(inj.storeBefore, op)
		return errors.New("injected store fault before commit")
	}
	return nil
}

// storeAfterCommit fails a write after it committed.
func (inj *injector) storeAfterCommit(op, key string) error {
	p := inj.planByID(key[strings.LastIndexByte(key, ':')+1:])
	if p == nil {
		return nil
	}
	if p.draw() < inj.co.StoreAfterCommitRate && inj.take(p, "store "+op+": failed after commit") {
		inj.count(inj.storeAfter, op)
		return errors.New("injected store fault after commit")
	}
	return nil
}

// taskFault decides whether a task dispatch is dropped.
func (inj *injector) taskFault(q tasks.Queue, body []byte) bool {
	var tb pipeline.TaskBody
	if json.Unmarshal(body, &tb) != nil {
		return false
	}
	p := inj.planByID(tb.Key[strings.LastIndexByte(tb.Key, ':')+1:])
	if p == nil {
		return false
	}
	if p.draw() >= inj.co.DropRate {
		return false
	}
	p.mu.Lock()
	again := p.dropped
	p.mu.Unlock()
	if again || !inj.take(p, "task dropped: "+string(q)) {
		return false
	}
	p.mu.Lock()
	p.dropped = true
	p.mu.Unlock()
	return true
}

// crash is the pipeline's crash hook: key names the process, and ctx tells
// whether the step runs in a task attempt (inTaskAttempt).
func (inj *injector) crash(ctx context.Context, key, point string) error {
	if inj.co.stall != nil {
		inj.co.stall(point)
	}
	p := inj.planByID(lastSegment(key))
	if p == nil {
		return nil
	}
	if point == "issue:before-ca" && inj.contend(ctx, p) {
		return errors.New("injected crash holding the lease")
	}
	if p.draw() < inj.co.CrashRate && inj.take(p, "crash at "+point) {
		inj.count(inj.crashes, point)
		return errors.New("injected crash")
	}
	return nil
}

// expectation is how a process must end.
type expectation struct {
	State progress.State
	// Reason is what the record's LastError starts with when State is FAILED.
	Reason string
	// label, when set, names the expectation instead.
	label string
}

// ownClaimRefused is the ending of a process whose API refused our own
// repeat claim: left to whoever holds it, with an ERROR log.
var ownClaimRefused = expectation{State: progress.StateClaimedElsewhere, label: "CLAIMED_ELSEWHERE (own repeat claim refused)"}

func (e expectation) String() string {
	if e.label != "" {
		return e.label
	}
	if e.Reason == "" {
		return string(e.State)
	}
	return fmt.Sprintf("%s (%s)", e.State, e.Reason)
}

// Reasons the pipeline records for the expected failures.
const (
	reasonDeadline     = "no signature after"
	reasonBadSignature = "the client's signature does not verify"
	reasonCARefused    = "CA refused"
	reasonGarbageCert  = "the issued certificate failed its check"
)

// expect is the ending of a scenario's process. A CA refusal, or a garbage
// certificate from the CA, turns an upload into a failure; the other
// scenarios never reach the CA.
func expect(s simulation.Scenario, refused, garbage bool) expectation {
	switch s {
	case simulation.Silent:
		return expectation{State: progress.StateFailed, Reason: reasonDeadline}
	case simulation.Wrong:
		return expectation{State: progress.StateFailed, Reason: reasonBadSignature}
	case simulation.Elsewhere:
		return expectation{State: progress.StateClaimedElsewhere}
	}
	if refused {
		return expectation{State: progress.StateFailed, Reason: reasonCARefused}
	}
	if garbage {
		return expectation{State: progress.StateFailed, Reason: reasonGarbageCert}
	}
	return expectation{State: progress.StateUploaded}
}

// claimRecorded reports whether rec shows its claim went through.
func claimRecorded(rec *progress.Record) bool {
	if rec == nil {
		return false
	}
	for _, c := range rec.History {
		if c.To == progress.StateClaimed {
			return true
		}
	}
	return false
}

// verify checks one process against the invariants and its expected ending.
// rec is nil when the process has no record; emu holds the API emulator's
// recorded misuses of this process.
func verify(rec *progress.Record, snap cpemulator.Snapshot, is simulation.Issuance, want expectation, emu []cpemulator.Violation) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if snap.SignDataCalls > 1 {
		add("signData reached the client %d times", snap.SignDataCalls)
	} else if snap.SignDataRequests > 1 {
		add("signData requested %d times", snap.SignDataRequests)
	}
	if len(is.Certs) > 1 {
		add("the CA issued %d different certificates", len(is.Certs))
	}
	if snap.UploadCalls > 1 {
		add("%d uploads (%d repeats of the same certificate)", snap.UploadCalls, snap.RepeatedUploads)
	}
	if snap.UploadedPEM != "" && len(is.Certs) > 0 && !slices.Contains(is.Certs, simulation.PEMFingerprint(snap.UploadedPEM)) {
		add("the uploaded certificate is not the one the CA issued")
	}
	for _, v := range emu {
		add("the API recorded %s: %s", v.Kind, v.Detail)
	}
	state := progress.State("NO RECORD")
	if rec != nil {
		state = rec.State
	}
	switch {
	case state == progress.StateFailing:
		add("every failure reported: still FAILING at the end, the device was never told")
	case !state.Terminal():
		add("unfinished: the process is still %s", state)
	}
	if rec != nil {
		switch rec.State {
		case progress.StateUploaded:
			if snap.UploadedPEM == "" || snap.UploadedPEM != rec.CertificatePEM {
				add("recorded UPLOADED but the API holds a different certificate")
			}
		case progress.StateFailed:
			switch {
			case snap.FailureMessage == "":
				add("failed, but the API shows no failure (setFailure missing)")
			case snap.FailedBy != "client" && snap.SetFailureCalls == 0:
				add("failed without setFailure, and the API had not failed it")
			case snap.FailedBy == "adapter" && snap.FailureMessage != rec.FailureMessage:
				add("the device shows %q, the record says %q", snap.FailureMessage, rec.FailureMessage)
			}
			if !rec.FailureReported && snap.FailedBy != "client" {
				add("every failure reported: FAILED with failureReported=false, and the API did not fail the process itself")
			}
		case progress.StateClaimedElsewhere:
			if snap.SignDataRequests > 0 || snap.UploadCalls > 0 || snap.SetFailureCalls > 0 {
				add("claimed elsewhere, yet the adapter acted on it")
			}
		}
		if snap.UploadCalls > 0 && rec.State != progress.StateUploaded {
			add("uploaded to the API but recorded %s", rec.State)
		}
	}
	if state.Terminal() && (state != want.State || (want.Reason != "" && (rec == nil || !strings.HasPrefix(rec.LastError, want.Reason)))) {
		got := string(state)
		if rec != nil && state == progress.StateFailed {
			got += " (" + rec.LastError + ")"
		}
		add("ended %s, want %s", got, want)
	}
	return out
}

// evaluate checks every process and builds the report.
func (inj *injector) evaluate(ctx context.Context, w *simulation.World, o *simulation.Options) *Report {
	run := w.Report(o)
	run.Unexpected, run.Violations = nil, nil
	r := &Report{
		Enrollments: len(w.Clients()), Seed: inj.co.Seed, TimeScale: o.TimeScale,
		WallSeconds: w.Wall().Seconds(), ClockSeconds: w.Simulated().Seconds(),
		Scenarios: run.Scenarios, Expected: map[string]int{}, Outcomes: run.Outcomes,
		APICalls: run.APICalls, Run: run,
	}
	emuV := map[string][]cpemulator.Violation{}
	for _, v := range w.Emulator().Violations() {
		emuV[v.Process] = append(emuV[v.Process], v)
	}
	inj.mu.Lock()
	plans := append([]*plan(nil), inj.plans...)
	inj.mu.Unlock()
	for i, c := range w.Clients() {
		var p *plan
		if i < len(plans) && strings.HasSuffix(c.Key, ":"+plans[i].id) {
			p = plans[i]
		}
		rec, err := w.Store().Peek(ctx, c.Key)
		if err != nil {
			rec = nil
		}
		snap, _ := w.Emulator().Process(c.Name)
		is := w.CAs().Get(pipeline.RequestID(c.Key))
		want := expect(c.Scenario, p != nil && p.refused, p != nil && p.garbageCert)
		if snap.RepeatClaimsRefused > 0 && !claimRecorded(rec) {
			// Our claim went through but no delivery recorded it (its
			// answer was lost, or it died after it), and the API refused
			// the repeat. (A delivery that outlived its lease may also
			// record its claim after another's repeat was refused: then
			// the scenario's ending stands.)
			want = ownClaimRefused
		}
		r.Expected[want.String()]++
		problems := verify(rec, snap, is, want, emuV[c.Name])
		if p == nil {
			problems = append(problems, "the campaign has no fault plan for this process (numbering broke)")
		}
		var errs map[string]int64
		if p != nil {
			errs = inj.errors.of(p.id)
			problems = append(problems, p.problems()...)
			if p.refuseRepeat {
				r.Faults.RepeatClaimRefusalProcesses++
			}
		}
		r.Faults.RepeatClaimsRefused += snap.RepeatClaimsRefused
		if want == ownClaimRefused && rec != nil && rec.State == progress.StateClaimedElsewhere {
			r.OwnClaimRefused++
			if errs[pipeline.MsgOwnClaimRefused] == 0 {
				problems = append(problems, "our own repeat claim was refused and the process recorded CLAIMED_ELSEWHERE without the ERROR log "+strconv.Quote(pipeline.MsgOwnClaimRefused))
			}
		}
		if len(problems) > 0 {
			h := describe(rec, snap, is, p)
			if len(errs) > 0 {
				h = append(h, fmt.Sprintf("ERROR logs: %v", errs))
			}
			r.Violations = append(r.Violations, Violation{
				Process: c.Name, Index: i, Scenario: c.Scenario, Expected: want.String(),
				Problems: problems, History: h,
			})
		}
		if want.Reason == reasonCARefused && c.Scenario.Expected() == progress.StateUploaded {
			r.Faults.CARefusedProcesses++
		}
	}
	if n := run.PubSub.DeadLettered; n > 0 {
		r.Violations = append(r.Violations, Violation{Index: -1, Problems: []string{fmt.Sprintf("%d Pub/Sub messages dead-lettered", n)}})
	}
	f := &r.Faults
	f.APIRequests = inj.apiRequests.Load()
	f.APIUnavailable, f.APIResourceExhausted, f.APIInternal = inj.api503.Load(), inj.api429.Load(), inj.api500.Load()
	if f.APIRequests > 0 {
		f.APIErrorShare = float64(f.APIUnavailable+f.APIResourceExhausted+f.APIInternal) / float64(f.APIRequests)
	}
	f.APILostResponse, f.APITimeout, f.APITimeoutAfterActing = inj.lost.Load(), inj.timeout.Load(), inj.timeoutActed.Load()
	for _, win := range inj.outages {
		if win.from < w.Simulated() {
			f.CAOutageWindows++
		}
	}
	f.CAOutageFailures, f.CAOutageSpared, f.CARefusals = inj.outageFailures.Load(), inj.outageSpared.Load(), inj.refusals.Load()
	f.PubSubDuplicates = run.PubSub.Duplicates
	f.TaskDuplicates = int64(run.Tasks.InjectedDuplicates)
	f.TasksDropped = run.TasksDropped
	inj.kmu.Lock()
	f.Crashes, f.StoreBefore, f.StoreAfterCommit = copyCounts(inj.crashes), copyCounts(inj.storeBefore), copyCounts(inj.storeAfter)
	inj.kmu.Unlock()
	f.Suppressed = inj.suppressed.Load()
	f.LostClaimAnswers = inj.lostClaims.Load()
	f.SetFailureBeforeLast, f.SetFailureLast = inj.setFailureBefore.Load(), inj.setFailureLast.Load()
	f.ContentionCrashes, f.ContentionLast = inj.contentionCrashes.Load(), inj.contentionLast.Load()
	f.CAMalformed, f.CAGarbageCerts = inj.caMalformed.Load(), inj.garbageCerts.Load()
	r.OwnClaimRefusedErrors = inj.errors.total(pipeline.MsgOwnClaimRefused)
	r.FailureUnreportedErrors = inj.errors.total(pipeline.MsgFailureUnreported)
	r.LastAttemptsFailed = w.LastAttemptsDropped()
	return r
}

func copyCounts(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// describe is a process's history: its record, the API's view, the CA's and
// the faults injected.
func describe(rec *progress.Record, snap cpemulator.Snapshot, is simulation.Issuance, p *plan) []string {
	var h []string
	if rec == nil {
		h = append(h, "record: none")
	} else {
		var steps []string
		for _, c := range rec.History {
			steps = append(steps, fmt.Sprintf("%s@+%dms", c.To, c.At.Sub(rec.CreatedAt).Milliseconds()))
		}
		h = append(h, "record: "+strings.Join(steps, " "))
		h = append(h, fmt.Sprintf("record: state %s, attempts %d, signData calls %d, operation %q, polls %d, issue attempts %d, failure reported %t",
			rec.State, rec.Attempts, rec.SignDataCalls, rec.OperationName, rec.PollCount, rec.IssueAttempts, rec.FailureReported))
		if rec.LastError != "" {
			h = append(h, "record: last error: "+rec.LastError)
		}
		if rec.FailureMessage != "" {
			h = append(h, "record: failure message: "+rec.FailureMessage)
		}
	}
	methods := make([]string, 0, len(snap.Requests))
	for m, n := range snap.Requests {
		if n > 0 {
			methods = append(methods, fmt.Sprintf("%s=%d", m, n))
		}
	}
	slices.Sort(methods)
	h = append(h, fmt.Sprintf("API: state %s, claimed by %q, signData accepted %d of %d requests, uploads %d (%d repeated), setFailure %d, failed by %q %q",
		snap.State, snap.ClaimedBy, snap.SignDataCalls, snap.SignDataRequests, snap.UploadCalls, snap.RepeatedUploads, snap.SetFailureCalls, snap.FailedBy, snap.FailureMessage))
	h = append(h, "API requests: "+strings.Join(methods, " "))
	h = append(h, fmt.Sprintf("CA: %d calls, %d errors, %d distinct certificates", is.Calls, is.Errors, len(is.Certs)))
	if p != nil {
		p.mu.Lock()
		refused := ""
		if p.refused {
			refused = " (planned CA refusal)"
		}
		for _, k := range []struct {
			on   bool
			name string
		}{{p.lostClaim, "lost claim answer"}, {p.refuseRepeat, "repeat claims refused"}, {p.failLast, "setFailure fails on a last attempt"},
			{p.contendLast, "contention on a last attempt"}, {p.garbageCert, "garbage certificate"}} {
			if k.on {
				refused += " (planned " + k.name + ")"
			}
		}
		log := strings.Join(p.log, "; ")
		if log == "" {
			log = "none"
		}
		h = append(h, fmt.Sprintf("faults%s: %s", refused, log))
		p.mu.Unlock()
	}
	return h
}
