package simulation

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpuprofile"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tooling/tasks/embedded"
)

// Report is what a run measured. JSON field names are part of the local run's
// contract (-report).
//
// Latencies: with Options.TimeScale S > 1 the client delays and the poll
// schedule ran S times faster than real. TimeToCertificate and AddedLatency
// are as measured (scaled time). The *Unscaled figures multiply back only
// the parts that were scaled -- the client's delay and the wait for the next
// poll -- and keep the adapter's own processing as measured:
// added = S·poll_wait + processing, time to certificate = measured +
// (S-1)·(client delay + poll wait).
type Report struct {
	Clients   int              `json:"clients"`
	Outcomes  Outcomes         `json:"outcomes"`
	Scenarios map[Scenario]int `json:"scenarios"`
	APICalls  map[string]int   `json:"api_calls"`
	TimeScale float64          `json:"time_scale"`
	// As measured (scaled time when TimeScale > 1), in milliseconds.
	TimeToCertificate Percentiles `json:"time_to_certificate_ms"`
	AddedLatency      Percentiles `json:"added_latency_ms"`
	// Multiplied back to real time.
	TimeToCertificateUnscaled Percentiles `json:"time_to_certificate_unscaled_ms"`
	AddedLatencyUnscaled      Percentiles `json:"added_latency_unscaled_ms"`
	// PollWait is from the signature being available to the poll that found
	// it (measured, scaled); Processing is from that poll to the upload minus
	// the CA's time (real time: not scaled); CATime is the CA's own time.
	PollWait           Percentiles               `json:"poll_wait_ms"`
	Processing         Percentiles               `json:"processing_ms"`
	CATime             Percentiles               `json:"ca_ms"`
	PerEnrollment      PerEnrollment             `json:"per_enrollment"`
	PerScenario        map[Scenario]ScenarioCost `json:"per_scenario"`
	Store              memory.Stats              `json:"store"`
	Tasks              embedded.Stats            `json:"tasks"`
	PubSub             PubSubStats               `json:"pubsub"`
	Invocations        map[string]int64          `json:"invocations"`
	CertificatesIssued int64                     `json:"certificates_issued"`
	CACalls            int                       `json:"ca_calls"`
	WallSeconds        float64                   `json:"wall_seconds"`
	EnrollmentsPerSec  float64                   `json:"enrollments_per_second"`
	// CPUSeconds is the whole process: the functions, and also the API
	// emulator, the simulated clients, the dispatcher and Pub/Sub delivery.
	CPUSeconds float64 `json:"cpu_seconds"`
	// FunctionCPUSeconds splits CPUSeconds by function from a CPU profile
	// (Options.CPUByFunction); "other" is the rest.
	FunctionCPUSeconds map[string]float64 `json:"function_cpu_seconds,omitempty"`
	PeakRSSMiB         float64            `json:"peak_rss_mib"`
	PeakHeapMiB        float64            `json:"peak_heap_mib"`
	// Inventoried counts the certificate inventory's entries (one per
	// uploaded certificate); Reconcile is the reconciliation's outcome
	// (Options.Reconcile).
	Inventoried int             `json:"inventoried"`
	Reconcile   *ReconcileStats `json:"reconcile,omitempty"`
	Violations  []string        `json:"violations"`
	Unexpected  []string        `json:"unexpected"`
	// Sweep adds up the stale-process sweeps of the run (Options.SweepEvery);
	// TasksDropped counts the tasks Options.TaskFault dropped.
	Sweep        *SweepStats `json:"sweep,omitempty"`
	TasksDropped int64       `json:"tasks_dropped,omitempty"`
	// Schedules is the poll schedule comparison (the local run's -compare-schedules).
	Schedules []ScheduleResult `json:"schedules,omitempty"`
	// Cost is the cost model: the run's usage at list prices (World.Report).
	Cost *Cost `json:"cost,omitempty"`
}

// SweepStats adds up a run's sweeps: how many ran, how many could not list
// the records (Errors), and what they did.
type SweepStats struct {
	Runs   int `json:"runs"`
	Errors int `json:"failed_runs"`
	pipeline.SweepResult
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
	ByFunction      map[string]float64 `json:"function_invocations_by_function"`
	CPUMilliseconds float64            `json:"cpu_ms"`
	// FunctionCPUMilliseconds is the three functions' share of CPUMilliseconds
	// (from the CPU profile, when taken).
	FunctionCPUMilliseconds float64 `json:"function_cpu_ms,omitempty"`
}

// ScenarioCost is what the clients of one scenario cost, per client.
type ScenarioCost struct {
	Clients  int                `json:"clients"`
	APICalls map[string]float64 `json:"api_calls"`
	// Reads and writes of the clients' own records (not the sweep's
	// queries); set by World.Report.
	StoreReads  float64 `json:"store_reads"`
	StoreWrites float64 `json:"store_writes"`
}

// PubSubStats counts the in-process Pub/Sub deliveries.
type PubSubStats struct {
	Deliveries   int64 `json:"deliveries"`
	Duplicates   int64 `json:"injected_duplicates"`
	DeadLettered int64 `json:"dead_lettered"`
}

// OK reports whether every process ended as its scenario expects and no
// invariant was violated.
func (r *Report) OK() bool { return len(r.Unexpected) == 0 && len(r.Violations) == 0 }

// Peeker reads a progress record without counting it as a store read.
type Peeker func(ctx context.Context, key string) (*progress.Record, error)

// Summarize fills the parts of a report that come from the processes
// themselves: outcomes, latencies, API calls (total and per scenario),
// unexpected outcomes and invariant violations. cas may be nil when the CA
// is not observed. The caller adds the costs (store, invocations, CPU) and
// calls Finish.
func Summarize(ctx context.Context, scale float64, clients []Client, emu *cpemulator.Emulator, peek Peeker, cas *CARecorder) *Report {
	if scale <= 0 {
		scale = 1
	}
	r := &Report{
		Clients:     len(clients),
		Scenarios:   map[Scenario]int{},
		APICalls:    emu.Calls(),
		TimeScale:   scale,
		PerScenario: map[Scenario]ScenarioCost{},
		Invocations: map[string]int64{},
	}
	var ttc, added, ttcU, addedU, wait, proc, caT []float64
	for _, c := range clients {
		r.Scenarios[c.Scenario]++
		rec, err := peek(ctx, c.Key)
		if err != nil {
			rec = nil
		}
		snap, _ := emu.Process(c.Name)
		sc := r.PerScenario[c.Scenario]
		if sc.APICalls == nil {
			sc.APICalls = map[string]float64{}
		}
		sc.Clients++
		for m, n := range snap.Requests {
			sc.APICalls[m] += float64(n)
		}
		r.PerScenario[c.Scenario] = sc
		state := progress.State("NONE")
		if rec != nil {
			state = rec.State
		}
		switch state {
		case progress.StateUploaded:
			r.Outcomes.Uploaded++
			t := rec.UploadedAt.Sub(rec.CreatedAt)
			ttc = append(ttc, ms(t))
			caT = append(caT, ms(rec.CADuration))
			if !snap.SignedAt.IsZero() && !rec.SignedAt.IsZero() {
				delay := snap.SignedAt.Sub(snap.SignDataAt)
				w := rec.SignedAt.Sub(snap.SignedAt)
				p := rec.UploadedAt.Sub(rec.SignedAt) - rec.CADuration
				added = append(added, ms(w+p))
				wait = append(wait, ms(w))
				proc = append(proc, ms(p))
				addedU = append(addedU, scale*ms(w)+ms(p))
				ttcU = append(ttcU, ms(t)+(scale-1)*ms(delay+w))
			}
		case progress.StateFailed:
			r.Outcomes.Failed++
		case progress.StateClaimedElsewhere:
			r.Outcomes.ClaimedElsewhere++
		default:
			r.Outcomes.Unfinished++
		}
		if want := c.Scenario.Expected(); state != want {
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s (%s): ended %s, want %s%s", c.Name, c.Scenario, state, want, history(rec)))
		}
		var is *Issuance
		if cas != nil {
			i := cas.Get(pipeline.RequestID(c.Key))
			is = &i
		}
		r.Violations = append(r.Violations, check(c, rec, snap, is)...)
	}
	for s, sc := range r.PerScenario {
		for m := range sc.APICalls {
			sc.APICalls[m] /= float64(sc.Clients)
		}
		r.PerScenario[s] = sc
	}
	for _, v := range emu.Violations() {
		r.Violations = append(r.Violations, fmt.Sprintf("API emulator: %+v", v))
	}
	if cas != nil {
		r.CACalls, _ = cas.Totals()
	}
	r.TimeToCertificate = percentiles(ttc)
	r.AddedLatency = percentiles(added)
	r.TimeToCertificateUnscaled = percentiles(ttcU)
	r.AddedLatencyUnscaled = percentiles(addedU)
	r.PollWait = percentiles(wait)
	r.Processing = percentiles(proc)
	r.CATime = percentiles(caT)
	slices.Sort(r.Unexpected)
	return r
}

// Finish computes the per-enrollment figures from the totals.
func (r *Report) Finish() {
	if r.WallSeconds > 0 {
		r.EnrollmentsPerSec = float64(r.Outcomes.Uploaded) / r.WallSeconds
	}
	n := float64(r.Clients)
	if n == 0 {
		return
	}
	var inv int64
	by := map[string]float64{}
	for f, c := range r.Invocations {
		inv += c
		by[f] = float64(c) / n
	}
	r.PerEnrollment = PerEnrollment{
		APICalls:        map[string]float64{},
		StoreReads:      float64(r.Store.Reads) / n,
		StoreWrites:     float64(r.Store.Writes) / n,
		Invocations:     float64(inv) / n,
		ByFunction:      by,
		CPUMilliseconds: r.CPUSeconds * 1000 / n,
	}
	if len(r.FunctionCPUSeconds) > 0 {
		var f float64
		for _, name := range functionNames {
			f += r.FunctionCPUSeconds[name]
		}
		r.PerEnrollment.FunctionCPUMilliseconds = f * 1000 / n
	}
	for m, c := range r.APICalls {
		r.PerEnrollment.APICalls[m] = float64(c) / n
	}
}

// Report summarises the run o described.
func (w *World) Report(o *Options) *Report {
	ctx := context.Background()
	r := Summarize(ctx, o.TimeScale, w.clients, w.emu, w.store.Peek, w.cas)
	r.Store = w.store.Stats()
	r.Tasks = w.disp.Stats()
	r.TasksDropped = w.dropped.Load()
	w.sweeps.mu.Lock()
	if w.sweeps.runs > 0 {
		r.Sweep = &SweepStats{Runs: w.sweeps.runs, Errors: w.sweeps.errors, SweepResult: w.sweeps.res}
	}
	w.sweeps.mu.Unlock()
	r.PubSub = PubSubStats{Deliveries: w.pubsub.deliveries.Load(), Duplicates: w.pubsub.duplicates.Load(), DeadLettered: w.pubsub.deadLettered.Load()}
	_, certs := w.cas.Totals()
	r.CertificatesIssued = int64(certs)
	r.WallSeconds = w.wall.Seconds()
	r.CPUSeconds = w.cpu.Seconds()
	r.FunctionCPUSeconds = w.fnCPU
	r.PeakRSSMiB = cpuprofile.PeakRSSMiB()
	r.PeakHeapMiB = w.heapPeak
	for i, name := range functionNames {
		r.Invocations[name] = w.invoked[i].Load()
	}
	if n := r.PubSub.DeadLettered; n > 0 {
		r.Violations = append(r.Violations, fmt.Sprintf("%d Pub/Sub messages dead-lettered", n))
	}
	var invProblems []string
	r.Inventoried, invProblems = w.inventoried(ctx)
	r.Unexpected = append(r.Unexpected, invProblems...)
	r.Reconcile = w.reconciled
	r.Unexpected = append(r.Unexpected, w.reconcileProblems...)
	r.Finish()
	w.storeByScenario(r)
	r.Cost = w.cost(r)
	return r
}

// storeByScenario adds each scenario's reads and writes per client.
func (w *World) storeByScenario(r *Report) {
	for _, c := range w.clients {
		sc := r.PerScenario[c.Scenario]
		if sc.Clients == 0 {
			continue
		}
		reads, writes := w.store.Counts(c.Key)
		sc.StoreReads += float64(reads) / float64(sc.Clients)
		sc.StoreWrites += float64(writes) / float64(sc.Clients)
		r.PerScenario[c.Scenario] = sc
	}
}

// cost is the cost model of the run r reports: its usage per enrollment at
// Prices, with the functions at DeployedSizes.
func (w *World) cost(r *Report) *Cost {
	n := float64(r.Clients)
	if n == 0 {
		return nil
	}
	var requests, billedNs int64
	by := map[string]float64{}
	for i, f := range functionNames {
		requests += w.invoked[i].Load()
		b := w.billedNs[i].Load()
		billedNs += b
		by[f] = time.Duration(b).Seconds() / n
	}
	ended := r.Outcomes.Uploaded + r.Outcomes.Failed + r.Outcomes.ClaimedElsewhere
	c := Cost{
		Prices: Prices, Sizes: DeployedSizes, RunSecondsBy: by,
		FirestoreReads: float64(r.Store.Reads) / n, FirestoreWrites: float64(r.Store.Writes) / n,
		// Every finished record expires through the TTL field: one delete.
		FirestoreDeletes: float64(ended) / n,
		RunRequests:      float64(requests) / n,
		RunSeconds:       time.Duration(billedNs).Seconds() / n,
		// A task costs its creation (an API call, a name used before
		// too) and each push attempt.
		TaskOps: float64(r.Tasks.Enqueued+r.Tasks.Duplicates+r.Tasks.Dispatched) / n,
		// The notification's publish and each push, at the minimum size.
		PubSubBytes: (n + float64(r.PubSub.Deliveries)) * Prices.PubSubMinRequestBytes / n,
	}
	if w.logs != nil {
		c.LogBytes, c.LogEntries = float64(w.logs.bytes.Load())/n, float64(w.logs.lines.Load())/n
	}
	c = costOf(c)
	return &c
}

// check compares one process's record with what the API and the CA saw,
// against the invariants of architecture.md. is is nil when the CA was not
// observed.
func check(c Client, rec *progress.Record, snap cpemulator.Snapshot, is *Issuance) []string {
	var v []string
	add := func(format string, args ...any) {
		v = append(v, fmt.Sprintf("%s: ", c.Name)+fmt.Sprintf(format, args...)+history(rec))
	}
	if snap.SignDataCalls > 1 {
		add("signData reached the client %d times", snap.SignDataCalls)
	}
	if snap.UploadCalls > 1 {
		add("%d uploads (%d repeats of the same certificate)", snap.UploadCalls, snap.RepeatedUploads)
	}
	if is != nil {
		if len(is.Certs) > 1 {
			add("the CA issued %d different certificates", len(is.Certs))
		}
		if snap.UploadedPEM != "" && len(is.Certs) > 0 && !slices.Contains(is.Certs, PEMFingerprint(snap.UploadedPEM)) {
			add("the uploaded certificate is not the one the CA issued")
		}
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

// statusCounts is a progress line.
type statusCounts map[progress.State]int

func (c statusCounts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, string(k))
	}
	slices.Sort(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%d ", k, c[progress.State(k)])
	}
	return s
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

// ScheduleResult is one row of the poll schedule comparison
// (shared/tooling/schedule). Latencies are unscaled.
type ScheduleResult struct {
	Name              string      `json:"name"`
	Schedule          string      `json:"schedule"`
	AddedLatency      Percentiles `json:"added_latency_ms"`
	TimeToCertificate Percentiles `json:"time_to_certificate_ms"`
	// OperationsGet per enrollment over the run (its deadline: RunDeadline).
	OperationsGet float64 `json:"operations_get_per_enrollment"`
	// OperationsGetSigned per client that signed (online and slow).
	OperationsGetSigned float64 `json:"operations_get_per_signed_client"`
	// SilentPolls is what a client that never signs costs until Deadline
	// (computed from the schedule); OperationsGetAtDeadline is the run's
	// per-enrollment figure with its silent clients costing that.
	RunDeadline             string   `json:"run_deadline"`
	Deadline                string   `json:"deadline"`
	SilentPolls             int      `json:"silent_polls_at_deadline"`
	OperationsGetAtDeadline float64  `json:"operations_get_per_enrollment_at_deadline"`
	Outcomes                Outcomes `json:"outcomes"`
	OK                      bool     `json:"ok"`
}
