// Package simulation runs the whole adapter in one process with no cloud
// account: the Certificate Provisioning API emulator and its simulated clients,
// the three functions' handlers, an in-process Pub/Sub delivery, the embedded
// task dispatcher, the in-memory store and a CA. It is the local run, the load
// benchmark and the fault campaign: the same pipeline code as in production,
// only the endpoints differ.
package simulation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tasks/embedded"
)

// Customer is the customer id of the simulated clients.
const Customer = "C0local"

// Range is a uniform random duration range.
type Range struct{ Min, Max time.Duration }

func (r Range) pick(rng *rand.Rand) time.Duration {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + time.Duration(rng.Int64N(int64(r.Max-r.Min)))
}

// Options describe one run. Shares are fractions of Clients.
type Options struct {
	Clients int
	// Shares of slow clients (sign within SlowDelay), silent ones (never
	// sign), wrongly-signing ones, and processes claimed by another adapter.
	Slow, Silent, Wrong, Elsewhere float64
	// ErrorRate of API requests that fail with 429/503 before acting;
	// LostRate of requests that act but answer 503.
	ErrorRate, LostRate float64
	// FastDelay and SlowDelay are when online and slow clients sign.
	FastDelay, SlowDelay Range
	// Schedule is the poll schedule; its Deadline ends silent clients.
	Schedule config.PollSchedule
	// Arrival is the rate of new clients per second; 0: all at once.
	Arrival float64
	// Adapter is the adapter config; nil: the built-in default (Default).
	Adapter *config.Adapter
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
	// Concurrency of the task dispatcher; default 64.
	Concurrency int
}

// Scenario is what a simulated client does, and so how its process must end.
type Scenario string

const (
	Online    Scenario = "online"
	Slow      Scenario = "slow"
	Silent    Scenario = "silent"
	Wrong     Scenario = "wrong"
	Elsewhere Scenario = "claimed_elsewhere"
)

// Expected is the outcome each scenario must end in.
func (s Scenario) Expected() progress.State {
	switch s {
	case Silent, Wrong:
		return progress.StateFailed
	case Elsewhere:
		return progress.StateClaimedElsewhere
	}
	return progress.StateUploaded
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

// Report is what a run measured. JSON field names are part of the local run's
// contract (-report).
type Report struct {
	Clients            int              `json:"clients"`
	Outcomes           Outcomes         `json:"outcomes"`
	Scenarios          map[Scenario]int `json:"scenarios"`
	APICalls           map[string]int   `json:"api_calls"`
	TimeToCertificate  Percentiles      `json:"time_to_certificate_ms"`
	AddedLatency       Percentiles      `json:"added_latency_ms"`
	PerEnrollment      PerEnrollment    `json:"per_enrollment"`
	Store              memory.Stats     `json:"store"`
	Tasks              embedded.Stats   `json:"tasks"`
	Invocations        map[string]int64 `json:"invocations"`
	CertificatesIssued int64            `json:"certificates_issued"`
	WallSeconds        float64          `json:"wall_seconds"`
	EnrollmentsPerSec  float64          `json:"enrollments_per_second"`
	CPUSeconds         float64          `json:"cpu_seconds"`
	PeakRSSMiB         float64          `json:"peak_rss_mib"`
	Violations         []string         `json:"violations"`
	Unexpected         []string         `json:"unexpected"`
}

// Outcomes counts how processes ended.
type Outcomes struct {
	Uploaded         int `json:"uploaded"`
	Failed           int `json:"failed"`
	ClaimedElsewhere int `json:"claimed_elsewhere"`
	Unfinished       int `json:"unfinished"`
}

// Percentiles in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	N   int     `json:"n"`
}

// PerEnrollment divides totals by the number of clients.
type PerEnrollment struct {
	APICalls        map[string]float64 `json:"api_calls"`
	StoreReads      float64            `json:"store_reads"`
	StoreWrites     float64            `json:"store_writes"`
	Invocations     float64            `json:"function_invocations"`
	CPUMilliseconds float64            `json:"cpu_ms"`
}

// OK reports whether every process ended as its scenario expects and no
// invariant was violated.
func (r *Report) OK() bool { return len(r.Unexpected) == 0 && len(r.Violations) == 0 }

// client is one simulated client's bookkeeping.
type client struct {
	name     string
	key      string
	scenario Scenario
}

// Run runs a simulation to its end and reports.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Clients <= 0 {
		return nil, errors.New("simulation: clients must be positive")
	}
	if o.Schedule.Initial <= 0 {
		o.Schedule = config.DefaultPoll
	}
	if o.Timeout <= 0 {
		o.Timeout = o.Schedule.Deadline + 5*time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	cfg := Default()
	if o.Adapter != nil {
		cfg = *o.Adapter
	}
	if err := cfg.Validate(adapter.ConnectorTypes()); err != nil {
		return nil, fmt.Errorf("simulation: adapter config: %w", err)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	start := time.Now()
	cpuStart := cpuTime()

	// The API emulator, served over real HTTP on a loopback port.
	var deliver func(data []byte)
	emu := cpemulator.New(cpemulator.Options{
		Publish: func(_ context.Context, data []byte, _ map[string]string) error {
			deliver(data)
			return nil
		},
		Encoding:         cpemulator.NotifyAlternate,
		ErrorRate:        o.ErrorRate,
		LostResponseRate: o.LostRate,
		Seed:             o.Seed,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simulation: listen: %w", err)
	}
	srv := &http.Server{Handler: emu}
	go srv.Serve(ln)
	defer srv.Close()
	api, err := cpapi.New(ctx, cpapi.Options{
		Endpoint:   "http://" + ln.Addr().String() + "/",
		HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second},
	})
	if err != nil {
		return nil, err
	}

	cas, err := adapter.BuildCAs(ctx, cfg, func(name string) (string, error) { return "", fmt.Errorf("secret %s: none in a local run", name) })
	if err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	var issued func() int64 = func() int64 { return -1 }
	for _, c := range cas {
		if d, ok := c.(*devca.Connector); ok {
			if o.CAFault != nil {
				d.SetFault(o.CAFault)
			}
			prev := issued
			issued = func() int64 {
				n := prev()
				if n < 0 {
					n = 0
				}
				return n + d.Issued()
			}
		}
	}

	store := memory.New()
	var crashRNG sync.Mutex
	p := &pipeline.Pipeline{
		Store:       store,
		API:         api,
		CAs:         cas,
		Profiles:    cfg.Profiles,
		Allowed:     cfg.Allowed,
		CallerID:    "certprov-local",
		Schedule:    o.Schedule,
		TTL:         config.DefaultRecordTTL,
		MaxAttempts: config.DefaultTasksMaxAttempts,
		Lease:       5 * time.Second,
		Log:         o.Log,
	}
	if o.CrashRate > 0 {
		p.Crash = func(string) error {
			crashRNG.Lock()
			defer crashRNG.Unlock()
			if rng.Float64() < o.CrashRate {
				return errors.New("crash")
			}
			return nil
		}
	}
	get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, o.Log, nil }
	var invocations [3]atomic.Int64
	count := func(i int, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			invocations[i].Add(1)
			h.ServeHTTP(w, r)
		})
	}
	disp := embedded.New(map[tasks.Queue]http.Handler{
		tasks.QueuePoll:  count(1, adapter.Poll(get)),
		tasks.QueueIssue: count(2, adapter.Issue(get)),
	}, embedded.Options{
		MaxAttempts:   config.DefaultTasksMaxAttempts,
		MinBackoff:    100 * time.Millisecond,
		MaxBackoff:    5 * time.Second,
		Concurrency:   o.Concurrency,
		DuplicateRate: o.DuplicateRate,
		Seed:          int64(o.Seed),
	})
	defer disp.Close()
	p.Tasks = disp

	// Pub/Sub push delivery, at least once: retried with backoff on error,
	// dead-lettered after 10 attempts (as terraform configures it).
	claim := adapter.Claim(get)
	var pubsubWG sync.WaitGroup
	var deadLettered atomic.Int64
	var msgN atomic.Int64
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	deliver = func(data []byte) {
		copies := 1
		if o.DuplicateRate > 0 && rng.Float64() < o.DuplicateRate {
			copies = 2
		}
		for range copies {
			pubsubWG.Add(1)
			go func() {
				defer pubsubWG.Done()
				ev := pubsubEvent(data, msgN.Add(1))
				backoff := 100 * time.Millisecond
				for attempt := 1; ; attempt++ {
					invocations[0].Add(1)
					if err := claim(runCtx, ev); err == nil {
						return
					}
					if attempt >= 10 {
						deadLettered.Add(1)
						return
					}
					select {
					case <-runCtx.Done():
						return
					case <-time.After(backoff):
					}
					backoff = min(2*backoff, 5*time.Second)
				}
			}()
		}
	}

	// The clients.
	clients := make([]client, o.Clients)
	scen := scenarios(o, rng)
	var addErrs []error
	for i := range clients {
		if o.Arrival > 0 && i > 0 {
			time.Sleep(time.Duration(float64(time.Second) / o.Arrival))
		}
		spec := cpemulator.ClientSpec{Customer: Customer, Key: cpemulator.RSA2048}
		if i%2 == 1 {
			spec.Key = cpemulator.ECP256
		}
		if i%3 == 2 {
			spec.Kind = cpemulator.User
		}
		s := scen[i]
		switch s {
		case Online:
			spec.SignDelay = o.FastDelay.pick(rng)
		case Slow:
			spec.SignDelay = o.SlowDelay.pick(rng)
		case Silent:
			spec.Behaviour = cpemulator.Silent
		case Wrong:
			spec.Behaviour = cpemulator.Wrong
			spec.SignDelay = o.FastDelay.pick(rng)
		case Elsewhere:
			spec.ClaimedBy = "another-adapter"
		}
		name, err := emu.AddClient(ctx, spec)
		if err != nil {
			addErrs = append(addErrs, err)
			continue
		}
		snap, _ := emu.Process(name)
		clients[i] = client{name: name, key: progress.Key(Customer, snap.ID), scenario: s}
	}
	if err := errors.Join(addErrs...); err != nil {
		return nil, fmt.Errorf("simulation: add clients: %w", err)
	}

	// Wait until every process is finished, or the timeout.
	deadline := time.Now().Add(o.Timeout)
	lastProgress := time.Now()
	for {
		done, counts := finished(ctx, store, clients)
		if o.Progress != nil && time.Since(lastProgress) >= o.ProgressEvery {
			lastProgress = time.Now()
			fmt.Fprintf(o.Progress, "%6.1fs  %s\n", time.Since(start).Seconds(), counts)
		}
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wall := time.Since(start)
	cancel()
	disp.Close()
	pubsubWG.Wait()

	r := &Report{
		Clients:            o.Clients,
		Scenarios:          map[Scenario]int{},
		APICalls:           emu.Calls(),
		Store:              store.Stats(),
		Tasks:              disp.Stats(),
		CertificatesIssued: issued(),
		WallSeconds:        wall.Seconds(),
		CPUSeconds:         (cpuTime() - cpuStart).Seconds(),
		PeakRSSMiB:         peakRSSMiB(),
		Invocations: map[string]int64{
			"ClaimProcess": invocations[0].Load(), "PollSignature": invocations[1].Load(), "IssueCertificate": invocations[2].Load(),
		},
	}
	if n := deadLettered.Load(); n > 0 {
		r.Violations = append(r.Violations, fmt.Sprintf("%d Pub/Sub messages dead-lettered", n))
	}
	var ttc, added []float64
	for _, c := range clients {
		r.Scenarios[c.scenario]++
		rec, err := store.Get(context.Background(), c.key)
		snap, _ := emu.Process(c.name)
		state := progress.State("NONE")
		if err == nil {
			state = rec.State
		}
		switch state {
		case progress.StateUploaded:
			r.Outcomes.Uploaded++
			ttc = append(ttc, ms(rec.UploadedAt.Sub(rec.CreatedAt)))
			if !snap.SignedAt.IsZero() {
				added = append(added, ms(rec.UploadedAt.Sub(snap.SignedAt)-rec.CADuration))
			}
		case progress.StateFailed:
			r.Outcomes.Failed++
		case progress.StateClaimedElsewhere:
			r.Outcomes.ClaimedElsewhere++
		default:
			r.Outcomes.Unfinished++
		}
		if want := c.scenario.Expected(); state != want {
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s (%s): ended %s, want %s%s", c.name, c.scenario, state, want, history(rec)))
		}
		r.Violations = append(r.Violations, check(c, rec, snap)...)
	}
	for _, v := range emu.Violations() {
		r.Violations = append(r.Violations, fmt.Sprintf("API emulator: %+v", v))
	}
	r.TimeToCertificate = percentiles(ttc)
	r.AddedLatency = percentiles(added)
	if wall > 0 {
		r.EnrollmentsPerSec = float64(r.Outcomes.Uploaded) / wall.Seconds()
	}
	n := float64(o.Clients)
	r.PerEnrollment = PerEnrollment{
		APICalls:        map[string]float64{},
		StoreReads:      float64(r.Store.Reads) / n,
		StoreWrites:     float64(r.Store.Writes) / n,
		Invocations:     float64(r.Invocations["ClaimProcess"]+r.Invocations["PollSignature"]+r.Invocations["IssueCertificate"]) / n,
		CPUMilliseconds: r.CPUSeconds * 1000 / n,
	}
	for m, c := range r.APICalls {
		r.PerEnrollment.APICalls[m] = float64(c) / n
	}
	sort.Strings(r.Unexpected)
	return r, nil
}

// check compares one process's record with what the API saw, against the
// invariants of architecture.md.
func check(c client, rec *progress.Record, snap cpemulator.Snapshot) []string {
	var v []string
	add := func(format string, args ...any) {
		v = append(v, fmt.Sprintf("%s: ", c.name)+fmt.Sprintf(format, args...)+history(rec))
	}
	if snap.SignDataCalls > 1 {
		add("signData reached the client %d times", snap.SignDataCalls)
	}
	if snap.UploadCalls > 1 {
		add("%d uploads", snap.UploadCalls)
	}
	if rec == nil {
		return v
	}
	switch rec.State {
	case progress.StateUploaded:
		if snap.UploadedPEM == "" || snap.UploadedPEM != rec.CertificatePEM {
			add("recorded UPLOADED but the API holds a different certificate")
		}
	case progress.StateFailed:
		if snap.FailureMessage == "" {
			add("failed, but the API shows no failure (setFailure missing)")
		}
		if !rec.FailureReported {
			add("failed without setFailure being confirmed")
		}
	}
	if snap.UploadCalls > 0 && rec.State != progress.StateUploaded {
		add("uploaded to the API but recorded %s", rec.State)
	}
	return v
}

func history(rec *progress.Record) string {
	if rec == nil {
		return " [no record]"
	}
	s := " ["
	for i, h := range rec.History {
		if i > 0 {
			s += " "
		}
		s += string(h.To)
	}
	if rec.LastError != "" {
		s += "; last error: " + rec.LastError
	}
	return s + "]"
}

func scenarios(o Options, rng *rand.Rand) []Scenario {
	n := o.Clients
	s := make([]Scenario, 0, n)
	for _, share := range []struct {
		sc Scenario
		f  float64
	}{{Slow, o.Slow}, {Silent, o.Silent}, {Wrong, o.Wrong}, {Elsewhere, o.Elsewhere}} {
		for range int(share.f*float64(n) + 0.5) {
			if len(s) < n {
				s = append(s, share.sc)
			}
		}
	}
	for len(s) < n {
		s = append(s, Online)
	}
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// statusCounts is a progress line.
type statusCounts map[progress.State]int

func (c statusCounts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%d ", k, c[progress.State(k)])
	}
	return s
}

func finished(ctx context.Context, s *memory.Store, clients []client) (bool, statusCounts) {
	counts := statusCounts{}
	done := true
	for _, c := range clients {
		rec, err := s.Peek(ctx, c.key)
		if err != nil {
			counts["PENDING"]++
			done = false
			continue
		}
		counts[rec.State]++
		if !rec.State.Terminal() {
			done = false
		}
	}
	return done, counts
}

func pubsubEvent(data []byte, n int64) event.Event {
	e := event.New()
	e.SetID(fmt.Sprintf("local-%d", n))
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetSource("//pubsub.googleapis.com/projects/local/topics/certprov")
	body, _ := json.Marshal(map[string]any{
		"message":      map[string]any{"data": data, "messageId": fmt.Sprint(n)},
		"subscription": "projects/local/subscriptions/certprov-claim",
	})
	_ = e.SetData("application/json", body)
	return e
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	slices.Sort(v)
	at := func(q float64) float64 {
		i := int(q*float64(len(v))+0.5) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	return Percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99), N: len(v)}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.Sys) / (1 << 20)
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}
