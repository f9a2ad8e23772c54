// Package simulation runs the whole adapter in one process with no cloud
// account: the Certificate Provisioning API emulator and its simulated clients,
// the three functions' handlers, an in-process Pub/Sub delivery, the embedded
// task dispatcher, the in-memory store and a CA. It is the local run and the
// load benchmark, and what the poll schedule comparison (shared/tooling/
// schedule) and the fault campaign (shared/tooling/campaign) run on: the same
// pipeline code as in production, only the endpoints differ. A run keeps
// time on the real clock or on a virtual one (Options.Clock,
// shared/tooling/clock).
package simulation

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/seal"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpuprofile"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tooling/tasks/embedded"
)

// Customer is the customer id of the simulated clients.
const Customer = "C0local"

// Range is a uniform random duration range.
type Range struct{ Min, Max time.Duration }

// Pick draws a duration from r.
func (r Range) Pick(rng *rand.Rand) time.Duration {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + time.Duration(rng.Int64N(int64(r.Max-r.Min)))
}

// Scale returns r with both ends divided by f.
func (r Range) Scale(f float64) Range {
	return Range{Min: time.Duration(float64(r.Min) / f), Max: time.Duration(float64(r.Max) / f)}
}

// Options describe one run. Shares are fractions of Clients.
type Options struct {
	// logs counts the default logger's output (set with it, by the defaults).
	logs *logCounter

	Clients int
	// Shares of slow clients (sign within SlowDelay), silent ones (never
	// sign), wrongly-signing ones, and processes claimed by another adapter.
	Slow, Silent, Wrong, Elsewhere float64
	// ErrorRate of API requests that fail with 429/503 before acting;
	// LostRate of requests that act but answer 503.
	ErrorRate, LostRate float64
	// FastDelay and SlowDelay are when online and slow clients sign.
	FastDelay, SlowDelay Range
	// SlowAtCheckIns makes the slow clients ones that missed the push: they
	// sign at a documented check-in instead (cpemulator.CheckInsFrom: the
	// first one they are online for drawn evenly from 30 s, 2 min and 8 min
	// after the process's start, each up to a tenth early); SlowDelay is
	// then not used.
	SlowAtCheckIns bool
	// Schedule is the poll schedule; its Deadline ends silent clients.
	Schedule pipeline.PollSchedule
	// TimeScale is the factor by which the caller divided the client delays
	// and the poll schedule (0 or 1: real time). The report gives the
	// latencies both as measured and multiplied back (see Report).
	TimeScale float64
	// Arrival is the rate of new clients per second; 0: all at once.
	Arrival float64
	// Adapter is the adapter config; nil: the built-in default (Default).
	Adapter *config.Adapter
	// Secrets resolves the secret names the CA connections name (their
	// ...Env settings); nil: a local run has none, and a connection that
	// needs one fails to build.
	Secrets func(name string) (string, error)
	// Sealer seals challenge passwords in the records; nil with a connection
	// that puts a challenge into the CSR: a random key for this run.
	Sealer *seal.Sealer
	// Seed makes the mix repeatable.
	Seed uint64
	// Timeout ends the run; processes not finished by then are "unfinished".
	Timeout time.Duration
	// Progress, when set, gets a status line every ProgressEvery.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Log receives the adapter's JSON logs; nil discards them.
	Log *slog.Logger
	// Faults (the fault campaign): duplicate deliveries and crashes.
	DuplicateRate float64
	CrashRate     float64
	// CAFault, when set, is consulted before each issuance (outages, refusals).
	CAFault func(req ca.Request) error
	// APIFault, when set, decides a fault per API request before ErrorRate and
	// LostRate (cpemulator.Options.Fault).
	APIFault func(method, processName string) cpemulator.Fault
	// StoreFault fails a store operation before it happens;
	// StoreAfterCommitFault fails it after it committed (memory.Store hooks).
	StoreFault, StoreAfterCommitFault memory.Fault
	// TaskFault, when set, is asked before each task dispatch; true drops
	// the task as Cloud Tasks does after its last failed attempt: the
	// function does not run and nothing is retried.
	TaskFault func(q tasks.Queue, body []byte) bool
	// TaskAttempt, when set, is asked before each task attempt that was not
	// dropped, with its retry count. last presents the attempt as the task's
	// last: the retry-count header says so, and a failed answer drops the
	// task as Cloud Tasks does after its last attempt. done, when not nil,
	// is called with the handler's status when it has returned.
	TaskAttempt func(q tasks.Queue, body []byte, retry int) (last bool, done func(status int))
	// RefuseRepeatClaim, when set, names the processes whose API refuses a
	// repeat claim by the holder (cpemulator.Options.RefuseRepeatClaim).
	RefuseRepeatClaim func(processName string) bool
	// CAAnswer, when set, is asked before each issuance; a non-nil answer is
	// what the CA returns instead of issuing (a garbage certificate).
	CAAnswer func(req ca.Request) *ca.Issued
	// SweepAfter and SweepEvery run the stale-process sweep
	// (pipeline.Sweep) every SweepEvery, as the scheduler does in
	// production; 0: no sweep.
	SweepAfter, SweepEvery time.Duration
	// Crash, when set, replaces CrashRate: it is the pipeline's crash hook.
	// In a task attempt, ctx answers InTaskAttempt.
	Crash func(ctx context.Context, key, point string) error
	// Lease of the pipeline's steps with side effects; default 5s.
	Lease time.Duration
	// Concurrency of the task dispatcher; default 64.
	Concurrency int
	// TaskMaxBackoff bounds the dispatcher's retry backoff; default 5s.
	TaskMaxBackoff time.Duration
	// APITimeout bounds each API call of the adapter; default 30s (the
	// production client's).
	APITimeout time.Duration
	// PubSubBackoff bounds the wait before a notification is delivered
	// again (it doubles from Min); default 100ms to 5s.
	PubSubBackoff Range
	// Clock is the run's time source; nil: the real clock. With a
	// *clock.Virtual, client delays, the poll schedule, leases, task backoff,
	// Pub/Sub redelivery, the sweep and the API's timeouts all play out on
	// it: the run takes the CPU time it needs, not the time it simulates.
	// The caller starts the clock (before the run) and stops it (after).
	Clock clock.Clock
	// CPUByFunction samples a CPU profile during the run to attribute CPU
	// time to the three functions (Report.FunctionCPUSeconds). Only one run
	// per process may profile at a time.
	CPUByFunction bool

	// QuotaPerMinute, when positive, gives the API emulator a quota of
	// requests per minute across all methods (its window a minute divided
	// by TimeScale); the rest are answered 429.
	QuotaPerMinute int
	// Pace paces the run under QuotaPerMinute as production does: the task
	// queues dispatch at pipeline.QueueRates (times TimeScale) and a claim
	// that meets 429 goes to the claim queue (Pipeline.PaceClaims).
	Pace bool
	// CAPerSecond, when positive, limits each development CA connection to
	// that many issuances per second (times TimeScale).
	CAPerSecond int
	// TaskMinBackoff is the dispatcher's first retry backoff; default 100ms.
	TaskMinBackoff time.Duration
	// SampleEvery, when positive, is how often (clock time) the run looks at
	// its processes, and records a Sample of the timeline (World.Timeline).
	SampleEvery time.Duration

	// Store, when set, is the store of the run (the fault campaign reads
	// records while the run goes on).
	Store *memory.Store
	// Reconcile, when set, ends the run with the reconciliation (dry run,
	// then real) after deprovisioning devices and suspending users.
	Reconcile *ReconcileSpec
	// Published, when set, sees every notification as the API publishes it,
	// in the order the processes were created (the fault campaign numbers
	// the processes by it).
	Published func(data []byte)
}

// World is a finished simulation: what the report and the fault campaign
// inspect.
type World struct {
	emu   *cpemulator.Emulator
	store *memory.Store
	inv   *memory.Inventory
	// reconciled is the reconciliation's outcome (Options.Reconcile).
	reconciled        *ReconcileStats
	reconcileProblems []string
	clients           []Client
	cas               *CARecorder
	disp              *embedded.Dispatcher
	pubsub            pubsubStats
	invoked           [3]atomic.Int64
	// billedNs adds up each function's requests' durations, each rounded
	// up to Cloud Run's 100 ms (nanoseconds).
	billedNs [3]atomic.Int64
	// logs counts what the adapter logged (when the run's Log is the
	// default: the JSON lines production writes, discarded here); nil
	// when another logger was given.
	logs *logCounter
	wall time.Duration
	// simulated is the clock time the run took (wall on the real clock).
	simulated time.Duration
	cpu       time.Duration
	fnCPU     map[string]float64
	heapPeak  float64
	dropped   atomic.Int64
	// lastDropped counts the attempts presented as last (TaskAttempt) that
	// failed: their task was dropped.
	lastDropped atomic.Int64
	sweeps      sweepTotals
	tmu         sync.Mutex
	timeline    []Sample
	devcas      []*devca.Connector // rate-limited (Options.CAPerSecond)
}

// attemptWriter keeps a task attempt's status (TaskAttempt). With dropped
// set, the attempt was presented as the task's last: a failure is answered
// 200, since the dispatcher must not retry what Cloud Tasks would drop.
type attemptWriter struct {
	http.ResponseWriter
	code    int
	dropped *atomic.Int64
}

func (a *attemptWriter) WriteHeader(code int) {
	a.code = code
	if a.dropped != nil && (code < 200 || code > 299) {
		a.dropped.Add(1)
		code = http.StatusOK
	}
	a.ResponseWriter.WriteHeader(code)
}

// sweepTotals adds up the sweeps of a run.
type sweepTotals struct {
	mu     sync.Mutex
	runs   int
	errors int
	res    pipeline.SweepResult
}

func (t *sweepTotals) add(r pipeline.SweepResult, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.runs++
	if err != nil {
		t.errors++
	}
	t.res.Found += r.Found
	t.res.Redriven += r.Redriven
	t.res.Failed += r.Failed
	t.res.Unreported += r.Unreported
	t.res.Moved += r.Moved
	t.res.Errors += r.Errors
}

type pubsubStats struct {
	deliveries, duplicates, deadLettered atomic.Int64
}

// lockedRand is a random source shared by goroutines.
type lockedRand struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.Float64()
}

// Run runs a simulation to its end and reports.
func Run(ctx context.Context, o Options) (*Report, error) {
	w, err := Execute(ctx, &o)
	if err != nil {
		return nil, err
	}
	return w.Report(&o), nil
}

func (o *Options) defaults() {
	if o.Schedule.Initial <= 0 {
		o.Schedule = pipeline.DefaultPoll
	}
	if o.Timeout <= 0 {
		o.Timeout = o.Schedule.Deadline + 5*time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Lease <= 0 {
		o.Lease = 5 * time.Second
	}
	if o.TaskMinBackoff <= 0 {
		o.TaskMinBackoff = 100 * time.Millisecond
	}
	if o.TaskMaxBackoff <= 0 {
		o.TaskMaxBackoff = 5 * time.Second
	}
	if o.PubSubBackoff.Min <= 0 {
		o.PubSubBackoff = Range{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	}
	if o.TimeScale <= 0 {
		o.TimeScale = 1
	}
	if o.Log == nil {
		o.logs = &logCounter{}
		o.Log = logging.New(o.logs, slog.LevelInfo, "local")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
}

// Execute runs a simulation to its end, as Run does, and returns its world
// for inspection. It fills in o's defaults.
func Execute(ctx context.Context, o *Options) (*World, error) {
	if o.Clients <= 0 {
		return nil, errors.New("simulation: clients must be positive")
	}
	o.defaults()
	cfg := Default()
	if o.Adapter != nil {
		cfg = *o.Adapter
	}
	if err := cfg.Validate(adapter.ConnectorTypes()); err != nil {
		return nil, fmt.Errorf("simulation: adapter config: %w", err)
	}
	rng := &lockedRand{rng: rand.New(rand.NewPCG(o.Seed, 0x5eed))}
	w := &World{store: o.Store, cas: NewCARecorder(), logs: o.logs, inv: memory.NewInventory()}
	if w.store == nil {
		w.store = memory.New()
	}
	w.cas.SetAnswer(o.CAAnswer)

	var stopCPU func() map[string]float64
	if o.CPUByFunction {
		var err error
		if stopCPU, err = cpuprofile.Start(); err != nil {
			return nil, fmt.Errorf("simulation: %w", err)
		}
	}
	clk := o.Clock
	_, virtual := clk.(*clock.Virtual)
	// The run holds the clock while it works, and sleeps on it.
	release := clk.Hold()
	defer func() { release() }()
	start, simStart := time.Now(), clk.Now()
	cpuStart := cpuprofile.ProcessCPU()
	// On a virtual clock a timed-out API request is held for the API
	// timeout of clock time and answered 504 DEADLINE_EXCEEDED; the
	// adapter's own (real) timeout only guards against a hung run.
	apiTimeout, httpTimeout, emuSleep, hold := o.APITimeout, 30*time.Second, clk.Sleep, time.Duration(0)
	if !virtual {
		emuSleep = nil
	} else {
		hold = o.APITimeout
		if hold <= 0 {
			hold = 30 * time.Second
		}
		apiTimeout, httpTimeout = 10*time.Minute, 10*time.Minute
	}

	// The API emulator.
	var deliver func(data []byte)
	w.emu = cpemulator.New(cpemulator.Options{
		Publish: func(_ context.Context, data []byte, _ map[string]string) error {
			deliver(data)
			return nil
		},
		Encoding:          cpemulator.NotifyAlternate,
		ErrorRate:         o.ErrorRate,
		LostResponseRate:  o.LostRate,
		Fault:             o.APIFault,
		RefuseRepeatClaim: o.RefuseRepeatClaim,
		Seed:              o.Seed,
		Now:               clk.Now,
		Sleep:             emuSleep,
		TimeoutHold:       hold,
		QuotaPerMinute:    o.QuotaPerMinute,
		QuotaWindow:       time.Duration(float64(time.Minute) / o.TimeScale),
	})
	// On the real clock over real HTTP on a loopback port; on a virtual
	// clock in process (the same handler, without the sockets).
	host, transport := "emulator.invalid", http.RoundTripper(inProcess{w.emu})
	if !virtual {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("simulation: listen: %w", err)
		}
		srv := &http.Server{Handler: w.emu}
		go srv.Serve(ln)
		defer srv.Close()
		// At most 256 connections: thousands of clients at once would
		// otherwise open a socket each and exhaust the file descriptors
		// (ulimit -n is often 1024).
		host, transport = ln.Addr().String(), &http.Transport{MaxConnsPerHost: 256, MaxIdleConnsPerHost: 256}
	}
	api, err := cpapi.New(ctx, cpapi.Options{
		EmulatorHost: host,
		HTTPClient:   &http.Client{Transport: transport, Timeout: httpTimeout},
		Timeout:      apiTimeout,
	})
	if err != nil {
		return nil, err
	}

	// The emulator serves the Directory reads too (directory variables).
	dir, err := directory.New(ctx, directory.Options{
		EmulatorHost: host,
		HTTPClient:   &http.Client{Transport: transport, Timeout: httpTimeout},
		Timeout:      apiTimeout,
	})
	if err != nil {
		return nil, err
	}

	secrets := o.Secrets
	if secrets == nil {
		secrets = func(name string) (string, error) { return "", fmt.Errorf("secret %s: none in a local run", name) }
	}
	sealer := o.Sealer
	if sealer == nil {
		key := make([]byte, 32)
		crand.Read(key)
		if sealer, err = adapter.Sealer(base64.StdEncoding.EncodeToString(key), cfg); err != nil {
			return nil, fmt.Errorf("simulation: %w", err)
		}
	}
	cas, err := adapter.BuildCAs(ctx, cfg, secrets)
	if err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	var devCAs []*devca.Connector
	for ref, c := range cas {
		if d, ok := c.(*devca.Connector); ok {
			devCAs = append(devCAs, d)
			if o.CAFault != nil {
				d.SetFault(o.CAFault)
			}
		}
		if d, ok := c.(*devca.Connector); ok && o.CAPerSecond > 0 {
			d.SetRate(int(float64(o.CAPerSecond)*o.TimeScale+0.5), clk.Now)
			w.devcas = append(w.devcas, d)
		}
		cas[ref] = w.cas.Wrap(c)
	}

	w.store.SetClock(clk.Now)
	w.store.SetFault(o.StoreFault)
	w.store.SetAfterCommitFault(o.StoreAfterCommitFault)
	p := &pipeline.Pipeline{
		Store:            w.store,
		API:              api,
		CAs:              cas,
		Profiles:         cfg.Profiles,
		Directory:        dir,
		Inventory:        w.inv,
		Allowed:          cfg.Allowed,
		CallerID:         "certprov-local",
		RefuseIncomplete: cfg.RefuseIncomplete(),
		Schedule:         o.Schedule,
		TTL:              pipeline.DefaultTTL,
		MaxAttempts:      pipeline.DefaultMaxAttempts,
		Lease:            o.Lease,
		Log:              o.Log,
		Crash:            o.Crash,
		Sealer:           sealer,
		SweepAfter:       o.SweepAfter,
		Now:              clk.Now,
		PaceClaims:       o.Pace,
	}
	if p.Crash == nil && o.CrashRate > 0 {
		p.Crash = func(context.Context, string, string) error {
			if rng.Float64() < o.CrashRate {
				return errors.New("crash")
			}
			return nil
		}
	}
	get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, o.Log, nil }
	count := func(i int, h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if q := functionQueues[i]; o.TaskFault != nil && q != "" {
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(rw, "read body", http.StatusBadRequest)
					return
				}
				if o.TaskFault(q, body) {
					w.dropped.Add(1)
					rw.WriteHeader(http.StatusOK) // gone: nothing retries it
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			if q := functionQueues[i]; o.TaskAttempt != nil && q != "" {
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(rw, "read body", http.StatusBadRequest)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				last, done := o.TaskAttempt(q, body, tasks.RetryCount(r))
				aw := &attemptWriter{ResponseWriter: rw, code: http.StatusOK}
				if last {
					r.Header.Set(tasks.HeaderRetryCount, strconv.Itoa(pipeline.DefaultMaxAttempts-1))
					aw.dropped = &w.lastDropped
				}
				rw = aw
				if done != nil {
					defer func() { done(aw.code) }()
				}
			}
			if functionQueues[i] != "" {
				r = r.WithContext(context.WithValue(r.Context(), taskAttemptKey{}, true))
			}
			w.invoked[i].Add(1)
			start := time.Now()
			cpuprofile.InFunction(r.Context(), functionNames[i], func(ctx context.Context) { h.ServeHTTP(rw, r.WithContext(ctx)) })
			w.billedNs[i].Add(int64(billed(time.Since(start))))
		})
	}
	w.disp = embedded.New(map[tasks.Queue]http.Handler{
		tasks.QueuePoll:  count(1, adapter.Poll(get)),
		tasks.QueueIssue: count(2, adapter.Issue(get)),
		tasks.QueueClaim: count(1, adapter.ClaimTask(get)),
	}, embedded.Options{
		MaxAttempts:   pipeline.DefaultMaxAttempts,
		MinBackoff:    o.TaskMinBackoff,
		Rates:         o.rates(),
		MaxBackoff:    o.TaskMaxBackoff,
		Concurrency:   o.Concurrency,
		DuplicateRate: o.DuplicateRate,
		Seed:          int64(o.Seed),
		Clock:         clk,
	})
	defer w.disp.Close()
	p.Tasks = w.disp

	// Pub/Sub push delivery, at least once: retried with backoff on a non-2xx
	// answer, dead-lettered after the tasks' max attempts, each delivery a push
	// request as Pub/Sub sends it, numbered in its top-level deliveryAttempt
	// (as terraform configures the subscription, with a dead-letter policy).
	claim := adapter.Claim(get)
	var pubsubWG sync.WaitGroup
	var msgN atomic.Int64
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	deliver = func(data []byte) {
		if o.Published != nil {
			o.Published(data)
		}
		copies := 1
		if o.DuplicateRate > 0 && rng.Float64() < o.DuplicateRate {
			copies = 2
			w.pubsub.duplicates.Add(1)
		}
		for range copies {
			pubsubWG.Add(1)
			clk.Go(func() {
				defer pubsubWG.Done()
				n := msgN.Add(1)
				backoff := o.PubSubBackoff.Min
				for attempt := 1; ; attempt++ {
					w.invoked[0].Add(1)
					w.pubsub.deliveries.Add(1)
					rec := httptest.NewRecorder()
					req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(pushBody(data, n, attempt, clk.Now()))).WithContext(runCtx)
					start := time.Now()
					cpuprofile.InFunction(runCtx, functionNames[0], func(ctx context.Context) { claim(rec, req.WithContext(ctx)) })
					w.billedNs[0].Add(int64(billed(time.Since(start))))
					if rec.Code/100 == 2 {
						return
					}
					if attempt >= pipeline.DefaultMaxAttempts {
						w.pubsub.deadLettered.Add(1)
						return
					}
					if clk.Sleep(runCtx, backoff) != nil {
						return
					}
					backoff = min(2*backoff, max(o.PubSubBackoff.Max, o.PubSubBackoff.Min))
				}
			})
		}
	}

	// The sweep, as the scheduler runs it.
	if o.SweepEvery > 0 && o.SweepAfter > 0 {
		var sweep func()
		sweep = func() {
			if runCtx.Err() != nil {
				return
			}
			w.invoked[1].Add(1)
			var res pipeline.SweepResult
			var err error
			start := time.Now()
			cpuprofile.InFunction(runCtx, functionNames[1], func(ctx context.Context) { res, err = p.Sweep(ctx) })
			w.billedNs[1].Add(int64(billed(time.Since(start))))
			w.sweeps.add(res, err)
			clk.AfterFunc(o.SweepEvery, sweep)
		}
		clk.AfterFunc(o.SweepEvery, sweep)
	}

	if o.SampleEvery > 0 {
		w.sampleEvery(runCtx, clk, simStart, o.SampleEvery)
	}

	// The clients. While they arrive, a progress line says how many have.
	arrived := make(chan struct{})
	if o.Progress != nil && o.ProgressEvery > 0 {
		go func() {
			tick := time.NewTicker(o.ProgressEvery)
			defer tick.Stop()
			for {
				select {
				case <-arrived:
					return
				case <-tick.C:
					at := fmt.Sprintf("%6.1fs", time.Since(start).Seconds())
					if virtual {
						at += fmt.Sprintf(" (clock %6.1fs)", clk.Now().Sub(simStart).Seconds())
					}
					fmt.Fprintf(o.Progress, "%s  %d of %d clients arrived\n", at, w.emu.Len(), o.Clients)
				}
			}
		}()
	}
	clients, err := AddClients(ctx, w.emu, Customer, *o, rng.rng, &rng.mu)
	close(arrived)
	if err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	w.clients = clients

	// Wait until every process is finished, or the timeout (clock time).
	// A virtual clock looks every second of its time: a scan costs a read
	// of every pending record, and virtual seconds pass quickly.
	deadline := clk.Now().Add(o.Timeout)
	lastProgress := time.Now()
	look := 100 * time.Millisecond
	if virtual {
		look = time.Second
	}
	if o.SampleEvery > 0 {
		look = max(look, o.SampleEvery)
	}
	pending := make([]Client, len(clients))
	copy(pending, clients)
	counts := statusCounts{}
	for {
		pending = w.sweep(ctx, pending, counts)
		w.heapPeak = max(w.heapPeak, cpuprofile.HeapMiB())
		if o.Progress != nil && time.Since(lastProgress) >= o.ProgressEvery {
			lastProgress = time.Now()
			if virtual {
				fmt.Fprintf(o.Progress, "%6.1fs (clock %6.1fs)  %s\n", time.Since(start).Seconds(), clk.Now().Sub(simStart).Seconds(), counts)
			} else {
				fmt.Fprintf(o.Progress, "%6.1fs  %s\n", time.Since(start).Seconds(), counts)
			}
		}
		if len(pending) == 0 || clk.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		if err := clk.Sleep(ctx, look); err != nil {
			break
		}
	}
	w.wall = time.Since(start)
	w.simulated = clk.Now().Sub(simStart)
	if o.SampleEvery > 0 {
		w.sampleNow(ctx, w.simulated)
	}
	w.cpu = cpuprofile.ProcessCPU() - cpuStart
	if stopCPU != nil {
		w.fnCPU = stopCPU()
	}
	release()
	cancel()
	w.disp.Close()
	pubsubWG.Wait()
	if o.Reconcile != nil {
		st, problems, err := w.reconcile(ctx, o, p, devCAs)
		if err != nil {
			return nil, fmt.Errorf("simulation: %w", err)
		}
		w.reconciled, w.reconcileProblems = st, problems
	}
	return w, nil
}

// sweep returns the clients of pending whose process has not ended, and
// counts every client's state in counts (terminal ones stay counted).
func (w *World) sweep(ctx context.Context, pending []Client, counts statusCounts) []Client {
	for k := range counts {
		if !k.Terminal() {
			delete(counts, k)
		}
	}
	out := pending[:0]
	for _, c := range pending {
		rec, err := w.store.Peek(ctx, c.Key)
		if err != nil {
			counts["PENDING"]++
			out = append(out, c)
			continue
		}
		counts[rec.State]++
		if !rec.State.Terminal() {
			out = append(out, c)
		}
	}
	return out
}

// inProcess serves HTTP requests with a handler in the caller's goroutine.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

// taskAttemptKey marks the context of a task attempt's handler.
type taskAttemptKey struct{}

// InTaskAttempt reports whether ctx is a task attempt's (not a Pub/Sub
// delivery's or a sweep's).
func InTaskAttempt(ctx context.Context) bool {
	v, _ := ctx.Value(taskAttemptKey{}).(bool)
	return v
}

// functionNames index the invocation counters.
var functionNames = [3]string{"ClaimProcess", "PollSignature", "IssueCertificate"}

// functionQueues are the task queues that invoke each function ("": Pub/Sub).
var functionQueues = [3]tasks.Queue{"", tasks.QueuePoll, tasks.QueueIssue}

// pushBody is the n-th message's attempt-th push request body, as Pub/Sub
// sends it to a subscription with a dead-letter policy.
func pushBody(data []byte, n int64, attempt int, now time.Time) []byte {
	body, _ := json.Marshal(adapter.Push{
		Message:         adapter.PushMessage{Data: data, MessageID: fmt.Sprint(n), PublishTime: now},
		Subscription:    "projects/local/subscriptions/certprov-claim",
		DeliveryAttempt: attempt,
	})
	return body
}

// Default is the built-in adapter config of the local run: the development CA
// and a device and a user profile.
func Default() config.Adapter {
	return config.Adapter{
		AllowedCustomers: []string{Customer},
		CAConnections: map[string]config.CAConnection{
			cpemulator.DefaultCARef: {Type: devca.Type},
		},
		Profiles: defaultProfiles(),
	}
}

// Clients are the run's clients, in creation order.
func (w *World) Clients() []Client { return w.clients }

// Emulator is the run's API emulator.
func (w *World) Emulator() *cpemulator.Emulator { return w.emu }

// Store is the run's store.
func (w *World) Store() *memory.Store { return w.store }

// CAs records what the CA issued.
func (w *World) CAs() *CARecorder { return w.cas }

// Wall is how long the run took; Simulated how much time passed on its
// clock (the same on the real clock).
func (w *World) Wall() time.Duration      { return w.wall }
func (w *World) Simulated() time.Duration { return w.simulated }

// LastAttemptsDropped is the attempts presented as a task's last
// (Options.TaskAttempt) that failed: their task was dropped.
func (w *World) LastAttemptsDropped() int64 { return w.lastDropped.Load() }
