package pipeline_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tooling/testlog"
)

const customer = "C0test"

// clock is a virtual clock shared by the pipeline and the API emulator: the
// harness moves it to each task's schedule time, so schedules, leases and
// deadlines play out without sleeping. Each reading ticks it by a
// microsecond, as a real clock moves between two writes: the memory store
// takes an update whose UpdatedAt did not change for one that set none and
// stamps it with the real time, which the sweep's query (on the virtual
// clock) then found not idle whenever the machine was slow.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Microsecond)
	return c.t
}
func (c *clock) advanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}
func (c *clock) advance(d time.Duration) { c.advanceTo(c.Now().Add(d)) }

// queue records enqueued tasks (deduplicating names, as Cloud Tasks does) so
// that a test delivers them when and as often as it wants.
type queue struct {
	mu      sync.Mutex
	names   map[string]bool
	pending []tasks.Task
	fail    func(t tasks.Task) error
}

func (q *queue) Enqueue(_ context.Context, t tasks.Task) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail != nil {
		if err := q.fail(t); err != nil {
			return err
		}
	}
	key := string(t.Queue) + "/" + t.Name
	if q.names[key] {
		return nil
	}
	q.names[key] = true
	q.pending = append(q.pending, t)
	return nil
}

// next pops the task due first.
func (q *queue) next() (tasks.Task, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return tasks.Task{}, false
	}
	sort.SliceStable(q.pending, func(i, j int) bool { return q.pending[i].ScheduleTime.Before(q.pending[j].ScheduleTime) })
	t := q.pending[0]
	q.pending = q.pending[1:]
	return t, true
}

type harness struct {
	t     *testing.T
	clk   *clock
	emu   *cpemulator.Emulator
	store *memory.Store
	q     *queue
	ca    *devca.Connector
	p     *pipeline.Pipeline
	// dup delivers every task twice, concurrently.
	dup bool
}

func newHarness(t *testing.T, emuOpts cpemulator.Options) *harness {
	t.Helper()
	h := &harness{t: t, clk: &clock{t: time.Now().UTC().Truncate(time.Second)}}
	emuOpts.Now = h.clk.Now
	h.emu = cpemulator.New(emuOpts)
	srv := httptest.NewServer(h.emu)
	t.Cleanup(srv.Close)
	api, err := cpapi.New(context.Background(), cpapi.Options{EmulatorHost: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	h.ca, err = devca.New(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.store = memory.New()
	h.store.SetClock(h.clk.Now) // UpdatedAt on the harness clock, as the sweep reads it
	h.q = &queue{names: map[string]bool{}}
	h.p = &pipeline.Pipeline{
		Store:       h.store,
		Tasks:       h.q,
		API:         api,
		CAs:         map[string]pipeline.Issuer{cpemulator.DefaultCARef: h.ca},
		Profiles:    testProfiles(),
		Allowed:     func(c string) bool { return c == customer },
		CallerID:    "certprov-test",
		Schedule:    pipeline.PollSchedule{Initial: 2 * time.Second, Multiplier: 1.5, Max: time.Minute, Jitter: 0.2, Deadline: time.Hour},
		MaxAttempts: 5,
		Lease:       time.Minute,
		Now:         h.clk.Now,
		Log:         testlog.New(t),
	}
	return h
}

func testProfiles() map[string]profile.Profile {
	return map[string]profile.Profile{
		cpemulator.DefaultDeviceProfileRef: {
			Subject:         profile.Subject{CommonName: "${DEVICE_SERIAL_NUMBER}", Organization: []string{"Example"}},
			SubjectAltNames: []profile.SAN{{Type: profile.SANURI, Value: "urn:device:${DEVICE_DIRECTORY_ID}"}},
		},
		cpemulator.DefaultUserProfileRef: {
			Subject:         profile.Subject{CommonName: "${USER_EMAIL}"},
			SubjectAltNames: []profile.SAN{{Type: profile.SANEmail, Value: "${USER_EMAIL}"}, {Type: profile.SANUPN, Value: "${USER_EMAIL}"}},
		},
		"needs_user": {Subject: profile.Subject{CommonName: "${USER_EMAIL}"}},
	}
}

// add creates a client and returns its process name and notification.
func (h *harness) add(spec cpemulator.ClientSpec) (string, []byte) {
	h.t.Helper()
	if spec.Customer == "" {
		spec.Customer = customer
	}
	name, err := h.emu.AddClient(context.Background(), spec)
	if err != nil {
		h.t.Fatalf("AddClient: %v", err)
	}
	snap, _ := h.emu.Process(name)
	data := cpemulator.EncodeNotificationBinary(snap.Customer, snap.ID)
	return name, data
}

func (h *harness) key(name string) string {
	snap, _ := h.emu.Process(name)
	return progress.Key(snap.Customer, snap.ID)
}

// claim delivers a notification like Pub/Sub: again after an error, up to
// attempts times, moving the clock on by a backoff each time.
func (h *harness) claim(data []byte, attempts int) error {
	var err error
	for i := 0; i < attempts; i++ {
		if err = h.p.Claim(context.Background(), pipeline.Delivery{Body: data}); err == nil {
			return nil
		}
		h.clk.advance(90 * time.Second) // past the lease
	}
	return err
}

// drain delivers every task until none is left, like a queue with
// MaxAttempts: a failed delivery is retried later as the next attempt.
// It returns how many deliveries it made.
func (h *harness) drain() int {
	h.t.Helper()
	n := 0
	for {
		t, ok := h.q.next()
		if !ok {
			return n
		}
		h.clk.advanceTo(t.ScheduleTime)
		for attempt := 1; attempt <= h.p.MaxAttempts; attempt++ {
			n++
			err := h.deliver(t, attempt)
			if err == nil {
				break
			}
			h.clk.advance(90 * time.Second)
		}
		if n > 10000 {
			h.t.Fatal("drain: more than 10000 deliveries")
		}
	}
}

// nextIssue delivers the poll tasks, in schedule order, until the issue task
// comes, and returns it undelivered.
func (h *harness) nextIssue() tasks.Task {
	h.t.Helper()
	for {
		task, ok := h.q.next()
		if !ok {
			h.t.Fatal("no issue task")
		}
		h.clk.advanceTo(task.ScheduleTime)
		if task.Queue == tasks.QueueIssue {
			return task
		}
		if err := h.p.Poll(context.Background(), pipeline.Delivery{Body: task.Body, Attempt: 1}); err != nil {
			h.t.Fatalf("poll: %v", err)
		}
	}
}

// deliver delivers t as its attempt-th delivery (from 1).
func (h *harness) deliver(t tasks.Task, attempt int) error {
	d := pipeline.Delivery{Body: t.Body, Attempt: attempt, Name: t.Name}
	step := h.p.Poll
	switch t.Queue {
	case tasks.QueueIssue:
		step = h.p.Issue
	case tasks.QueueClaim:
		step = h.p.ClaimTask
	}
	if !h.dup {
		return step(context.Background(), d)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = step(context.Background(), d) }()
	}
	wg.Wait()
	if errs[0] != nil && errs[1] != nil {
		return errs[0]
	}
	return nil
}

func (h *harness) record(name string) *progress.Record {
	h.t.Helper()
	rec, err := h.store.Get(context.Background(), h.key(name))
	if err != nil {
		h.t.Fatalf("record of %s: %v", name, err)
	}
	return rec
}

func (h *harness) snap(name string) cpemulator.Snapshot {
	s, ok := h.emu.Process(name)
	if !ok {
		h.t.Fatalf("no process %s", name)
	}
	return s
}

// wantUploaded checks that name ended with one uploaded certificate that
// chains to the development CA and holds the client's key.
func (h *harness) wantUploaded(name string) {
	h.t.Helper()
	rec, s := h.record(name), h.snap(name)
	if rec.State != progress.StateUploaded {
		h.t.Fatalf("%s: state %s, want UPLOADED (last error %q, history %v)", name, rec.State, rec.LastError, rec.History)
	}
	if s.SignDataCalls != 1 || s.UploadCalls != 1 {
		h.t.Errorf("%s: signData %d, uploads %d; want 1 and 1", name, s.SignDataCalls, s.UploadCalls)
	}
	block, rest := pem.Decode([]byte(s.UploadedPEM))
	if block == nil || len(strings.TrimSpace(string(rest))) != 0 {
		h.t.Fatalf("%s: uploaded PEM is not exactly one block", name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		h.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(h.ca.Certificate())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: h.clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		// The dev CA stamps real time; verify at real time too.
		if _, err2 := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err2 != nil {
			h.t.Errorf("%s: certificate does not chain to the development CA: %v", name, err2)
		}
	}
	if string(cert.RawSubjectPublicKeyInfo) != string(s.SPKI) {
		h.t.Errorf("%s: certificate key is not the client's", name)
	}
	if rec.ExpireAt == nil || rec.CertificatePEM != s.UploadedPEM {
		h.t.Errorf("%s: record lacks expireAt or the uploaded certificate", name)
	}
}

// wantFailed checks that name failed, reported with setFailure once, with a
// message containing want.
func (h *harness) wantFailed(name, want string) {
	h.t.Helper()
	rec, s := h.record(name), h.snap(name)
	if rec.State != progress.StateFailed || !rec.FailureReported {
		h.t.Fatalf("%s: state %s reported %v, want FAILED and reported (last error %q)", name, rec.State, rec.FailureReported, rec.LastError)
	}
	if !strings.Contains(s.FailureMessage, want) {
		h.t.Errorf("%s: device message %q, want it to contain %q", name, s.FailureMessage, want)
	}
	if s.UploadCalls != 0 {
		h.t.Errorf("%s: %d uploads on a failed process", name, s.UploadCalls)
	}
}

func (h *harness) noViolations() {
	h.t.Helper()
	if v := h.emu.Violations(); len(v) > 0 {
		h.t.Errorf("API misuse: %+v", v)
	}
}

var errCrash = errors.New("crash")

// crashOnce makes the pipeline die once at point.
func (h *harness) crashOnce(point string) *int {
	var mu sync.Mutex
	hits := new(int)
	h.p.Crash = func(_ context.Context, _, at string) error {
		mu.Lock()
		defer mu.Unlock()
		if at == point && *hits == 0 {
			*hits = 1
			return errCrash
		}
		return nil
	}
	return hits
}
