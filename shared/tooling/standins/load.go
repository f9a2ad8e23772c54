package standins

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"reflect"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpuprofile"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
	"github.com/chromeos-certprov/adapter/shared/tooling/tasks/embedded"
)

// LoadOptions describe a load run on the stand-ins.
type LoadOptions struct {
	// Options are the in-process run's: the client mix (Clients, Slow,
	// Silent, Wrong, Elsewhere, FastDelay, SlowDelay, Arrival, Seed), the
	// poll Schedule and its TimeScale, API faults (ErrorRate, LostRate,
	// APIFault), Timeout, Progress and CPUByFunction. The other fault hooks
	// act inside the process and are refused here.
	simulation.Options
	// Project is the run's own project id; default: a fresh one.
	Project string
	// Dir holds the development CA's files; default: a temporary directory.
	Dir string
	// LogLevel of the functions' logs (stdout); default "error".
	LogLevel string
	// PushShards spreads the notifications over this many topics, each
	// pushed to ClaimProcess by its own subscription (see Options.PushShards);
	// default DefaultPushShards.
	PushShards int
	// Queue rate limits (see Options). Zero: Cloud Tasks' ceiling of 500
	// dispatches per second in the run's time (500·TimeScale per second of
	// the clock: a time-scaled run polls TimeScale times as often, and a
	// queue limit that did not scale would delay the polls, which the
	// in-process run's dispatcher does not), and 1000 at once.
	MaxDispatchesPerSecond  float64
	MaxConcurrentDispatches int32
	// Warmup, when positive, enrolls batches of this many clients first,
	// each in a project of its own and not measured, until the emulators'
	// CPU per enrollment falls by less than a tenth from one batch to the
	// next (at most MaxWarmupBatches). A fresh Firestore emulator's JVM
	// spends tens of seconds compiling its hot paths over the first two to
	// three thousand enrollments: without a warm-up its CPU per enrollment
	// is several times its steady value.
	Warmup int
}

// DefaultPushShards lifts the Pub/Sub emulator's push limit (two messages at
// a time per subscription) above what this machine's functions can take.
const DefaultPushShards = 8

// Result is what a load run measured: the in-process run's report, with the
// same figures and JSON fields, and what only the stand-ins have.
type Result struct {
	*simulation.Report
	StandIns Extra `json:"standins"`
}

// Extra are the figures of a stand-ins run that the in-process run has not.
type Extra struct {
	Hosts Hosts `json:"hosts"`
	// Functions is the base URL the functions were served at.
	Functions  string `json:"functions_url"`
	Project    string `json:"project"`
	PushShards int    `json:"push_shards"`
	Warmup     int    `json:"warmup_batch"`
	// WarmupCPUPerEnrollment is the emulators' CPU per enrollment in each
	// warm-up batch, in ms.
	WarmupCPUPerEnrollment []float64 `json:"warmup_emulator_cpu_ms_per_enrollment,omitempty"`
	// QueueRate is the queues' max dispatches per second.
	QueueRate float64 `json:"queue_max_dispatches_per_second"`
	// Emulators is each emulator process's CPU over the run (read from
	// /proc; the emulators are separate processes, so Report.CPUSeconds,
	// this process's CPU, does not include them). Peak RSS is since the
	// emulator started.
	Emulators          map[string]ProcessUsage `json:"emulators"`
	EmulatorCPUSeconds float64                 `json:"emulator_cpu_seconds"`
	// EmulatorCPUPerEnrollment is EmulatorCPUSeconds per client, in ms.
	EmulatorCPUPerEnrollment float64 `json:"emulator_cpu_ms_per_enrollment"`
	// Answers counts each function's HTTP answers by status.
	Answers map[string]map[string]int64 `json:"answers"`
	// MaxInFlight is the most invocations of each function at once (the
	// emulators' delivery concurrency); FunctionMs how long they took.
	MaxInFlight map[string]int64                  `json:"max_in_flight"`
	FunctionMs  map[string]simulation.Percentiles `json:"function_ms"`
	// DispatchLagMs is how late the invocations came: ClaimProcess after
	// the notification's publish time, the task functions after their
	// task's schedule time.
	DispatchLagMs map[string]simulation.Percentiles `json:"dispatch_lag_ms"`
	// PublishSeconds is how long creating the clients and publishing their
	// notifications took.
	PublishSeconds float64 `json:"publish_seconds"`
	// Notes are problems reading the figures (none when all were read).
	Notes []string `json:"notes,omitempty"`
}

// Load runs o.Clients enrollments through the stand-ins at hosts: the
// notifications go through the Pub/Sub emulator's push subscription to the
// functions served by functions-framework-go, the tasks through the Cloud
// Tasks emulator's queues, the progress records live in the Firestore
// emulator. It reports like simulation.Run.
func Load(ctx context.Context, hosts Hosts, o LoadOptions) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.defaults()
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "certprov-standins-")
		if err != nil {
			return nil, fmt.Errorf("standins: %w", err)
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	var warm []float64
	if o.Warmup > 0 {
		var err error
		if warm, err = warmUp(ctx, hosts, o); err != nil {
			return nil, err
		}
	}
	env, err := Start(ctx, hosts, Options{
		Project:  o.Project,
		Customer: simulation.Customer,
		Emulator: cpemulator.Options{
			Encoding:         cpemulator.NotifyAlternate,
			ErrorRate:        o.ErrorRate,
			LostResponseRate: o.LostRate,
			Fault:            o.APIFault,
			Seed:             o.Seed,
		},
		Schedule: o.Schedule,
		Dir:      o.Dir,
		LogLevel: o.LogLevel,
		Measure:  true,

		PushShards:              o.PushShards,
		MaxDispatchesPerSecond:  o.MaxDispatchesPerSecond,
		MaxConcurrentDispatches: o.MaxConcurrentDispatches,
	})
	if err != nil {
		return nil, err
	}
	defer env.Close()

	res := &Result{StandIns: Extra{Hosts: hosts, Project: o.Project, PushShards: o.PushShards, Warmup: o.Warmup, WarmupCPUPerEnrollment: warm, QueueRate: o.MaxDispatchesPerSecond, Functions: env.Functions, Emulators: map[string]ProcessUsage{}}}
	emulators := map[string]string{"firestore": hosts.Firestore, "pubsub": hosts.PubSub, "cloudtasks": hosts.Tasks}
	before := map[string]ProcessUsage{}
	for name, addr := range emulators {
		u, err := usageOf(addr)
		if err != nil {
			res.StandIns.Notes = append(res.StandIns.Notes, fmt.Sprintf("%s emulator CPU not read: %v", name, err))
			continue
		}
		before[name] = u
	}
	var stopCPU func() map[string]float64
	if o.CPUByFunction {
		if stopCPU, err = cpuprofile.Start(); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	cpuStart := cpuprofile.ProcessCPU()

	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	clients, err := simulation.AddClients(ctx, env.Emu, env.Customer, o.Options, rng, nil)
	if err != nil {
		if stopCPU != nil {
			stopCPU()
		}
		return nil, fmt.Errorf("standins: %w", err)
	}
	if err := env.WaitPublished(ctx); err != nil {
		if stopCPU != nil {
			stopCPU()
		}
		return nil, err
	}
	res.StandIns.PublishSeconds = time.Since(start).Seconds()

	heapPeak := wait(ctx, env, clients, &o, start)
	wall := time.Since(start)
	cpu := cpuprofile.ProcessCPU() - cpuStart
	var fnCPU map[string]float64
	if stopCPU != nil {
		fnCPU = stopCPU()
	}
	for name, b := range before {
		u, err := usageOf(emulators[name])
		if err != nil || u.PID != b.PID {
			res.StandIns.Notes = append(res.StandIns.Notes, fmt.Sprintf("%s emulator CPU not read at the end: %v", name, err))
			continue
		}
		u.CPUSeconds -= b.CPUSeconds
		res.StandIns.Emulators[name] = u
		res.StandIns.EmulatorCPUSeconds += u.CPUSeconds
	}
	res.StandIns.EmulatorCPUPerEnrollment = res.StandIns.EmulatorCPUSeconds * 1000 / float64(len(clients))

	r := simulation.Summarize(ctx, o.TimeScale, clients, env.Emu, env.Store.Get, env.CARecorder())
	m := env.Measures()
	r.Store = m.Store
	r.Invocations = m.Invocations
	res.StandIns.Answers = m.Answers
	res.StandIns.MaxInFlight = m.MaxInFlight
	res.StandIns.FunctionMs = m.Duration
	res.StandIns.DispatchLagMs = m.DispatchLag
	r.PubSub.Deliveries = m.Invocations[ClaimProcess]
	r.Tasks = embedded.Stats{Enqueued: int(m.Enqueued), Duplicates: int(m.EnqueueDuplicates)}
	for _, fn := range []string{PollSignature, IssueCertificate} {
		r.Tasks.Dispatched += int(m.Invocations[fn])
		for code, n := range m.Answers[fn] {
			if strings.HasPrefix(code, "2") {
				r.Tasks.Succeeded += int(n)
			} else {
				r.Tasks.FailedAttempts += int(n)
			}
		}
	}
	_, certs := env.CARecorder().Totals()
	r.CertificatesIssued = int64(certs)
	r.WallSeconds = wall.Seconds()
	r.CPUSeconds = cpu.Seconds()
	r.FunctionCPUSeconds = fnCPU
	r.PeakRSSMiB = cpuprofile.PeakRSSMiB()
	r.PeakHeapMiB = heapPeak
	r.Finish()
	res.Report = r

	wipeFirestore(hosts.Firestore, o.Project)
	return res, nil
}

// supported are the simulation.Options fields a load run on the stand-ins
// uses; the others act inside the in-process run and must be left zero.
var supported = map[string]bool{
	"Clients": true, "Slow": true, "Silent": true, "Wrong": true, "Elsewhere": true,
	"ErrorRate": true, "LostRate": true, "APIFault": true, "FastDelay": true, "SlowDelay": true,
	"Schedule": true, "TimeScale": true, "Arrival": true, "Seed": true, "Timeout": true,
	"Progress": true, "ProgressEvery": true, "CPUByFunction": true,
}

// Validate refuses options a load run on the stand-ins cannot honour: no
// clients, or a simulation option that acts only inside the in-process run.
func (o *LoadOptions) Validate() error {
	if o.Clients <= 0 {
		return errors.New("standins: clients must be positive")
	}
	var refused []string
	v := reflect.ValueOf(o.Options)
	for i := range v.NumField() {
		if f := v.Type().Field(i); f.IsExported() && !supported[f.Name] && !v.Field(i).IsZero() {
			refused = append(refused, f.Name)
		}
	}
	if len(refused) > 0 {
		err := fmt.Errorf("standins: not supported on the stand-ins: %s", strings.Join(refused, ", "))
		if slices.Contains(refused, "SlowAtCheckIns") {
			// The functions take the check-ins from the code, not scaled to
			// the run's time scale as the clients' would be.
			err = fmt.Errorf("%w (slow clients that sign at the check-ins: give -slow-delay MIN-MAX on the stand-ins)", err)
		}
		return err
	}
	return nil
}

// MaxWarmupBatches bounds the warm-up.
const MaxWarmupBatches = 8

// warmUp enrolls batches of o.Warmup online clients, quickly, each in a
// project of its own, until the emulators' CPU per enrollment levels off. It
// returns that CPU per batch.
func warmUp(ctx context.Context, hosts Hosts, o LoadOptions) ([]float64, error) {
	var cpu []float64
	for i := range MaxWarmupBatches {
		w := LoadOptions{
			Options: simulation.Options{
				Clients:   o.Warmup,
				FastDelay: simulation.Range{Max: 200 * time.Millisecond},
				Schedule:  pipeline.PollSchedule{Initial: 100 * time.Millisecond, Multiplier: 1.5, Max: time.Second, Jitter: 0.2, Deadline: 2 * time.Minute},
				Timeout:   3 * time.Minute,
				Seed:      o.Seed + uint64(i) + 1,
			},
			Project:                 fmt.Sprintf("%s-warmup%d", o.Project, i),
			LogLevel:                o.LogLevel,
			PushShards:              o.PushShards,
			MaxDispatchesPerSecond:  o.MaxDispatchesPerSecond,
			MaxConcurrentDispatches: o.MaxConcurrentDispatches,
		}
		r, err := Load(ctx, hosts, w)
		if err != nil {
			return cpu, fmt.Errorf("standins: warm-up: %w", err)
		}
		if !r.OK() || r.Outcomes.Uploaded != o.Warmup {
			return cpu, fmt.Errorf("standins: warm-up: %d of %d uploaded; unexpected %v, violations %v", r.Outcomes.Uploaded, o.Warmup, r.Unexpected, r.Violations)
		}
		c := r.StandIns.EmulatorCPUPerEnrollment
		cpu = append(cpu, c)
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "warm-up batch %d: %d enrollments in %.1fs, emulators' CPU %.2f ms per enrollment\n", i+1, o.Warmup, r.WallSeconds, c)
		}
		if len(r.StandIns.Notes) > 0 {
			return cpu, nil // the emulators' CPU cannot be read: one batch
		}
		if i > 0 && c > 0.9*cpu[i-1] {
			return cpu, nil
		}
	}
	return cpu, nil
}

func (o *LoadOptions) defaults() {
	if o.Schedule.Initial <= 0 {
		o.Schedule = pipeline.DefaultPoll
	}
	if o.Timeout <= 0 {
		o.Timeout = o.Schedule.Deadline + 5*time.Minute
	}
	if o.TimeScale <= 0 {
		o.TimeScale = 1
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	if o.MaxDispatchesPerSecond <= 0 {
		o.MaxDispatchesPerSecond = 500 * o.TimeScale
	}
	if o.PushShards <= 0 {
		o.PushShards = DefaultPushShards
	}
	if o.LogLevel == "" {
		o.LogLevel = "error"
	}
	if o.Project == "" {
		o.Project = fmt.Sprintf("standins-load-%d", time.Now().UnixNano()%1e12)
	}
}

// wait returns when every client's process has ended (its record is in a
// terminal state), at o.Timeout or when ctx ends. To keep its own reads off
// the Firestore emulator, it reads a record only when the API emulator shows
// the process ended (uploaded, failed, or claimed by another adapter), and
// every record still pending once in a while. It returns the peak heap seen.
func wait(ctx context.Context, env *Env, clients []simulation.Client, o *LoadOptions, start time.Time) float64 {
	deadline := start.Add(o.Timeout)
	pending := append([]simulation.Client(nil), clients...)
	var heapPeak float64
	lastProgress, lastFull := time.Now(), time.Now()
	for {
		full := time.Since(lastFull) > 10*time.Second
		if full {
			lastFull = time.Now()
		}
		counts := map[cpemulator.State]int{}
		out := pending[:0]
		for _, c := range pending {
			snap, _ := env.Emu.Process(c.Name)
			ended := snap.State == cpemulator.StateUploaded || snap.State == cpemulator.StateFailed || c.Scenario == simulation.Elsewhere
			if ended || full {
				if rec, err := env.Store.Get(ctx, c.Key); err == nil && rec.State.Terminal() {
					continue
				}
			}
			counts[snap.State]++
			out = append(out, c)
		}
		pending = out
		heapPeak = max(heapPeak, heapMiB())
		if o.Progress != nil && time.Since(lastProgress) >= o.ProgressEvery {
			lastProgress = time.Now()
			fmt.Fprintf(o.Progress, "%6.1fs  ended=%d %s\n", time.Since(start).Seconds(), len(clients)-len(pending), stateCounts(counts))
		}
		if len(pending) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return heapPeak
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func stateCounts(c map[cpemulator.State]int) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c)) {
		fmt.Fprintf(&b, "%s=%d ", k, c[k])
	}
	return b.String()
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func heapMiB() float64 {
	metrics.Read(heapSample)
	if heapSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(heapSample[0].Value.Uint64()) / (1 << 20)
}

func usageOf(addr string) (ProcessUsage, error) {
	pid, err := ListenerPID(addr)
	if err != nil {
		return ProcessUsage{}, err
	}
	return ReadUsage(pid)
}

// wipeFirestore deletes the run's documents from the emulator (best effort).
func wipeFirestore(addr, project string) {
	req, err := http.NewRequest(http.MethodDelete, fmt.Sprintf("http://%s/emulator/v1/projects/%s/databases/(default)/documents", addr, project), nil)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if resp, err := http.DefaultClient.Do(req.WithContext(ctx)); err == nil {
		resp.Body.Close()
	}
}
