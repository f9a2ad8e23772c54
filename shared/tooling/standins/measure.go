package standins

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/store"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpuprofile"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// Function names, as deployed (the entry points).
const (
	ClaimProcess     = "ClaimProcess"
	PollSignature    = "PollSignature"
	IssueCertificate = "IssueCertificate"
)

var functionNames = [3]string{ClaimProcess, PollSignature, IssueCertificate}

// meter is what a measured Env counts. Each function has its own pipeline,
// built by adapter.FromEnv from the same environment as the registered
// function's (adapter.Lazy does nothing else), so its store and task client
// are its own, as in a deployment where each function is a separate instance.
type meter struct {
	stores   [3]*firestore.Store
	cas      *simulation.CARecorder
	invoked  [3]atomic.Int64
	inFlight [3]atomic.Int64

	mu          sync.Mutex
	answers     [3]map[int]int64 // HTTP status -> count
	maxInFlight [3]int64
	durations   [3][]float64 // ms
	lags        [3][]float64 // ms from the publish time (claim) or the task's schedule time (ETA) to the invocation
	taskNames   map[string]bool
	enqueued    int64
	enqueueDups int64
}

// Measures are the counts of a measured Env (Options.Measure).
type Measures struct {
	// Store sums the three functions' Firestore store counters (operations
	// made through the store interface, as Firestore bills them).
	Store store.Stats
	// Invocations counts function invocations (each delivery and each retry).
	Invocations map[string]int64
	// Answers counts each function's answers by HTTP status: 5xx when Pub/Sub
	// (ClaimProcess) or Cloud Tasks (the task functions) should deliver again.
	Answers map[string]map[string]int64
	// Enqueued counts the tasks created in the Cloud Tasks queues;
	// EnqueueDuplicates the successful CreateTask calls for a task name
	// already created (answered AlreadyExists, which the pipeline takes as
	// done).
	Enqueued, EnqueueDuplicates int64
	// MaxInFlight is the most invocations of each function that ran at
	// once: how many deliveries the Pub/Sub emulator's push and the Cloud
	// Tasks emulator's queues had outstanding.
	MaxInFlight map[string]int64
	// Duration is how long each function's invocations took, in ms.
	Duration map[string]simulation.Percentiles
	// DispatchLag is how late each invocation came, in ms: for
	// ClaimProcess from the message's publish time (the push backlog), for
	// the task functions from the task's schedule time (the queue's rate
	// limit and concurrency, and the emulator's own delay).
	DispatchLag map[string]simulation.Percentiles
}

// CARecorder returns the recorder that saw every issuance of a measured Env
// (nil otherwise).
func (e *Env) CARecorder() *simulation.CARecorder {
	if e.meter == nil {
		return nil
	}
	return e.meter.cas
}

// Measures returns the counts so far of a measured Env (zero otherwise).
func (e *Env) Measures() Measures {
	m := Measures{Invocations: map[string]int64{}, Answers: map[string]map[string]int64{},
		MaxInFlight: map[string]int64{}, Duration: map[string]simulation.Percentiles{}, DispatchLag: map[string]simulation.Percentiles{}}
	if e.meter == nil {
		return m
	}
	for i, name := range functionNames {
		if s := e.meter.stores[i]; s != nil {
			st := s.Stats()
			m.Store.Reads += st.Reads
			m.Store.Writes += st.Writes
			m.Store.Transactions += st.Transactions
			m.Store.Conflicts += st.Conflicts
			m.Store.Aborted += st.Aborted
		}
		m.Invocations[name] = e.meter.invoked[i].Load()
		a := map[string]int64{}
		e.meter.mu.Lock()
		for code, n := range e.meter.answers[i] {
			a[strconv.Itoa(code)] = n
		}
		m.MaxInFlight[name] = e.meter.maxInFlight[i]
		m.Duration[name] = percentiles(e.meter.durations[i])
		m.DispatchLag[name] = percentiles(e.meter.lags[i])
		e.meter.mu.Unlock()
		m.Answers[name] = a
	}
	e.meter.mu.Lock()
	m.Enqueued, m.EnqueueDuplicates = e.meter.enqueued, e.meter.enqueueDups
	e.meter.mu.Unlock()
	return m
}

func (m *meter) lag(i int, d time.Duration) {
	m.mu.Lock()
	m.lags[i] = append(m.lags[i], float64(d)/float64(time.Millisecond))
	m.mu.Unlock()
}

// begin counts an invocation of function i; the returned func ends it with
// its HTTP answer.
func (m *meter) begin(i int) func(code int) {
	m.invoked[i].Add(1)
	n := m.inFlight[i].Add(1)
	start := time.Now()
	m.mu.Lock()
	m.maxInFlight[i] = max(m.maxInFlight[i], n)
	m.mu.Unlock()
	return func(code int) {
		d := time.Since(start)
		m.inFlight[i].Add(-1)
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.answers[i] == nil {
			m.answers[i] = map[int]int64{}
		}
		m.answers[i][code]++
		m.durations[i] = append(m.durations[i], float64(d)/float64(time.Millisecond))
	}
}

// measuredPath is where a measured Env serves function fn.
func measuredPath(project, fn string) string { return "/measured/" + project + "/" + fn }

// registerMeasured builds the three functions' pipelines from the process
// environment and registers, with functions-framework-go, the same HTTP
// handlers as the function packages do (adapter.Claim, adapter.Poll,
// adapter.Issue) at measuredPath, wrapped to count invocations and answers. The pipelines' CA
// connections are wrapped by a CARecorder and their task clients by a
// counter. Call it after the environment is set and before the server starts.
func (e *Env) registerMeasured(ctx context.Context) error {
	m := &meter{cas: simulation.NewCARecorder(), taskNames: map[string]bool{}}
	var pipes [3]*pipeline.Pipeline
	var logs [3]*slog.Logger
	for i, name := range functionNames {
		p, log, err := adapter.FromEnv(ctx, os.LookupEnv, name)
		if err != nil {
			return fmt.Errorf("standins: build %s: %w", name, err)
		}
		fs, ok := p.Store.(*firestore.Store)
		if !ok {
			return fmt.Errorf("standins: %s: store is %T, not the Firestore store", name, p.Store)
		}
		m.stores[i] = fs
		for ref, c := range p.CAs {
			p.CAs[ref] = m.cas.Wrap(c)
		}
		p.Tasks = countingEnqueuer{next: p.Tasks, m: m}
		pipes[i], logs[i] = p, log
	}
	get := func(i int) func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) {
		return func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return pipes[i], logs[i], nil }
	}

	claim := adapter.Claim(get(0))
	if err := funcframework.RegisterHTTPFunctionContext(ctx, measuredPath(e.Project, ClaimProcess), func(w http.ResponseWriter, r *http.Request) {
		end := m.begin(0)
		// The push backlog: how long after its publish time the message came.
		if body, err := io.ReadAll(r.Body); err == nil {
			if push, err := adapter.DecodePush(body); err == nil && !push.Message.PublishTime.IsZero() {
				m.lag(0, time.Since(push.Message.PublishTime))
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		cpuprofile.InFunction(r.Context(), ClaimProcess, func(ctx context.Context) { claim(sw, r.WithContext(ctx)) })
		end(sw.code)
	}); err != nil {
		return fmt.Errorf("standins: register %s: %w", ClaimProcess, err)
	}
	for i, h := range map[int]http.Handler{1: adapter.Poll(get(1)), 2: adapter.Issue(get(2))} {
		name := functionNames[i]
		base := measuredPath(e.Project, name)
		// Deployed, each function is its own service, served at "/":
		// PollSignature's /sweep and /claim are paths of its own. Here the
		// twin's base is stripped from them, as from the function's root.
		twin := http.StripPrefix(base, h)
		fn := func(w http.ResponseWriter, r *http.Request) {
			end := m.begin(i)
			if eta, err := strconv.ParseFloat(r.Header.Get("X-CloudTasks-TaskETA"), 64); err == nil {
				m.lag(i, time.Since(time.Unix(0, int64(eta*1e9))))
			}
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			cpuprofile.InFunction(r.Context(), name, func(ctx context.Context) { twin.ServeHTTP(sw, r.WithContext(ctx)) })
			end(sw.code)
		}
		for _, path := range []string{base, base + "/"} {
			if err := funcframework.RegisterHTTPFunctionContext(ctx, path, fn); err != nil {
				return fmt.Errorf("standins: register %s: %w", name, err)
			}
		}
	}
	e.meter = m
	return nil
}

// percentiles as simulation.Report computes them (nearest rank).
func percentiles(v []float64) simulation.Percentiles {
	if len(v) == 0 {
		return simulation.Percentiles{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	at := func(q float64) float64 {
		i := int(q*float64(len(v))+0.5) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	return simulation.Percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99), N: len(v)}
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// countingEnqueuer counts the tasks created, and the CreateTask calls for a
// name already created (the queue answers AlreadyExists; a no-op).
type countingEnqueuer struct {
	next pipeline.Enqueuer
	m    *meter
}

func (c countingEnqueuer) Enqueue(ctx context.Context, t tasks.Task) error {
	err := c.next.Enqueue(ctx, t)
	if err != nil {
		return err
	}
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	k := string(t.Queue) + "/" + t.Name
	if t.Name != "" && c.m.taskNames[k] {
		c.m.enqueueDups++
		return nil
	}
	if t.Name != "" {
		c.m.taskNames[k] = true
	}
	c.m.enqueued++
	return nil
}
