package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tasks/cloudtasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
	"github.com/chromeos-certprov/adapter/shared/tooling/testlog"
)

const actCustomer = "C0act"

// stage is a deployment on the stand-ins for the actions: the Firestore
// emulator, the Cloud Tasks emulator dispatching to PollSignature and
// IssueCertificate (served here over HTTP by the adapter's handlers), the
// API emulator and the development CA.
type stage struct {
	t     *testing.T
	vars  map[string]string // the CLI's environment
	emu   *cpemulator.Emulator
	ca    *devca.Connector
	store *firestore.Store
	// live is the deployed pipeline; strand is the same with every task
	// dropped, as Cloud Tasks drops a task whose attempts all failed.
	live, strand *pipeline.Pipeline
	// setFailureDown makes the API answer setFailure with 503.
	setFailureDown atomic.Bool
}

type dropTasks struct{}

func (dropTasks) Enqueue(context.Context, tasks.Task) error { return nil }

func newStage(t *testing.T) *stage {
	t.Helper()
	vars := seeded(t) // the Firestore emulator, a fresh collection
	tasksAddr := testenv.CloudTasks(t)
	ctx := context.Background()
	st := &stage{t: t}
	st.emu = cpemulator.New(cpemulator.Options{Fault: func(method, _ string) cpemulator.Fault {
		if method == cpemulator.MethodSetFailure && st.setFailureDown.Load() {
			return cpemulator.FaultUnavailable
		}
		return cpemulator.NoFault
	}})
	apiSrv := httptest.NewServer(st.emu)
	t.Cleanup(apiSrv.Close)
	var err error
	if st.ca, err = devca.New(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	c, err := firestore.Open(ctx, project, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st.store = firestore.New(c, vars["FIRESTORE_COLLECTION"])

	fnSrv := httptest.NewServer(nil)
	t.Cleanup(fnSrv.Close)
	n := seq.Add(1)
	loc := "projects/" + project + "/locations/us-central1"
	vars = merge(vars, map[string]string{
		"CLOUD_TASKS_EMULATOR_HOST":  tasksAddr,
		"TASKS_POLL_QUEUE":           fmt.Sprintf("%s/queues/poll-%d-%d", loc, os.Getpid(), n),
		"TASKS_ISSUE_QUEUE":          fmt.Sprintf("%s/queues/issue-%d-%d", loc, os.Getpid(), n),
		"POLL_SIGNATURE_URL":         fnSrv.URL + "/PollSignature",
		"ISSUE_CERTIFICATE_URL":      fnSrv.URL + "/IssueCertificate",
		"CERTPROV_API_EMULATOR_HOST": apiSrv.URL,
		"TASKS_MAX_ATTEMPTS":         "5",
	})
	retry := &cloudtaskspb.RetryConfig{MaxAttempts: 5, MinBackoff: durationpb.New(100 * time.Millisecond), MaxBackoff: durationpb.New(time.Second), MaxDoublings: 3}
	testenv.CloudTasksQueue(t, tasksAddr, vars["TASKS_POLL_QUEUE"], retry)
	testenv.CloudTasksQueue(t, tasksAddr, vars["TASKS_ISSUE_QUEUE"], retry)
	st.vars = vars

	opts, err := cloudtasks.Dial(ctx, tasksAddr)
	if err != nil {
		t.Fatal(err)
	}
	enq, err := cloudtasks.New(ctx, cloudtasks.Config{PollQueue: vars["TASKS_POLL_QUEUE"], IssueQueue: vars["TASKS_ISSUE_QUEUE"],
		PollURL: vars["POLL_SIGNATURE_URL"], IssueURL: vars["ISSUE_CERTIFICATE_URL"]}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enq.Close() })
	api, err := cpapi.New(ctx, cpapi.Options{EmulatorHost: apiSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	pipe := func(q pipeline.Enqueuer) *pipeline.Pipeline {
		return &pipeline.Pipeline{
			Store: st.store, Tasks: q, API: api,
			CAs: map[string]pipeline.Issuer{cpemulator.DefaultCARef: st.ca},
			Profiles: map[string]profile.Profile{cpemulator.DefaultDeviceProfileRef: {
				Subject: profile.Subject{CommonName: "${DEVICE_SERIAL_NUMBER}", Organization: []string{"Example Corp"}},
			}},
			Allowed:  func(c string) bool { return c == actCustomer },
			CallerID: "certprov-adapter-" + project, Project: project,
			Schedule:    pipeline.PollSchedule{Initial: 100 * time.Millisecond, Multiplier: 1.5, Max: time.Second, Jitter: 0.1, Deadline: time.Hour},
			MaxAttempts: 5, Lease: time.Minute, Log: testlog.New(t),
		}
	}
	st.live, st.strand = pipe(enq), pipe(dropTasks{})
	get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return st.live, st.live.Log, nil }
	mux := http.NewServeMux()
	mux.Handle("/PollSignature", adapter.Poll(get))
	mux.Handle("/IssueCertificate", adapter.Issue(get))
	fnSrv.Config.Handler = mux
	return st
}

// stranded starts a process whose tasks are all dropped after its claim:
// it waits in spec's state (POLLING for an honest client) with nothing to
// resume it, its next poll overdue. It returns the process id.
func (st *stage) stranded(spec cpemulator.ClientSpec) string {
	st.t.Helper()
	spec.Customer = actCustomer
	name, err := st.emu.AddClient(context.Background(), spec)
	if err != nil {
		st.t.Fatal(err)
	}
	snap, _ := st.emu.Process(name)
	if err := st.strand.Claim(context.Background(), pipeline.Delivery{Body: cpemulator.EncodeNotificationBinary(actCustomer, snap.ID), Attempt: 1}); err != nil {
		st.t.Fatal(err)
	}
	rec := st.record(snap.ID)
	if rec.State != progress.StatePolling {
		st.t.Fatalf("stranded in %s, want POLLING", rec.State)
	}
	time.Sleep(time.Until(rec.NextPollAt) + 10*time.Millisecond)
	return snap.ID
}

func (st *stage) record(id string) *progress.Record {
	st.t.Helper()
	rec, err := st.store.Get(context.Background(), progress.Key(actCustomer, id))
	if err != nil {
		st.t.Fatal(err)
	}
	return rec
}

func (st *stage) snapshot(id string) cpemulator.Snapshot {
	s, _ := st.emu.Process("customers/" + actCustomer + "/certificateProvisioningProcesses/" + id)
	return s
}

// waitState waits until the record of id is in state.
func (st *stage) waitState(id string, state progress.State) *progress.Record {
	st.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rec := st.record(id)
		if rec.State == state {
			return rec
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("%s: still %s after 60s, want %s (last error %q)", id, rec.State, state, rec.LastError)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRetry strands a process (every task dropped), re-drives it with
// certprov retry through the Cloud Tasks emulator and checks that it ends
// with one signData and one certificate; then the refusals.
func TestRetry(t *testing.T) {
	st := newStage(t)
	id := st.stranded(cpemulator.ClientSpec{})
	time.Sleep(300 * time.Millisecond)
	if rec := st.record(id); rec.State != progress.StatePolling || rec.PollCount != 0 {
		t.Fatalf("the dropped poll ran: %s, %d polls", rec.State, rec.PollCount)
	}

	r := runCLI(t, st.vars, "retry", id, "--json")
	if r.code != exitOK {
		t.Fatalf("retry: exit code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var v actionView
	decodeJSON(t, r, &v)
	if !v.Done || v.State != "POLLING" || v.Sweeps != 1 || v.Task == nil || v.Task.Queue != "poll" || !strings.HasPrefix(v.Task.Name, "sweep-") {
		t.Errorf("retry --json: %+v", v)
	}
	rec := st.waitState(id, progress.StateUploaded)
	snap := st.snapshot(id)
	if rec.SignDataCalls != 1 || snap.SignDataCalls != 1 || snap.SignDataRequests != 1 {
		t.Errorf("signData: record %d, API accepted %d of %d requests; want 1", rec.SignDataCalls, snap.SignDataCalls, snap.SignDataRequests)
	}
	if st.ca.Issued() != 1 || snap.UploadCalls != 1 || rec.CertificatePEM != snap.UploadedPEM {
		t.Errorf("certificates: CA issued %d, API took %d uploads; want 1 and 1, the record's", st.ca.Issued(), snap.UploadCalls)
	}
	if rec.Sweeps != 1 {
		t.Errorf("sweeps %d, want 1", rec.Sweeps)
	}
	if v := st.emu.Violations(); len(v) > 0 {
		t.Errorf("API misuse: %+v", v)
	}

	// Finished: a retry is refused, and changes nothing.
	r = runCLI(t, st.vars, "retry", id, "--json")
	if r.code != exitProblem {
		t.Fatalf("retry of an uploaded process: exit code %d, want %d\n%s%s", r.code, exitProblem, r.stdout, r.stderr)
	}
	decodeJSON(t, r, &v)
	if v.Done || v.State != "UPLOADED" || !strings.Contains(v.Refused, "the certificate was uploaded") {
		t.Errorf("retry of an uploaded process, --json: %+v", v)
	}
	r = runCLI(t, st.vars, "retry", actCustomer+":"+id)
	mustContain(t, "text refusal", r.stderr, "certprov retry "+actCustomer+":"+id+": refused: the certificate was uploaded")
	if after := st.record(id); after.Version != rec.Version {
		t.Errorf("a refused retry wrote the record (version %d, was %d)", after.Version, rec.Version)
	}

	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		code int
		has  string
	}{
		{"unknown process", []string{"nope"}, nil, exitProblem, "not found"},
		{"no process id", nil, nil, exitUsage, "want one PROCESS_ID"},
		{"no queues", []string{id}, map[string]string{"TASKS_POLL_QUEUE": ""}, exitUsage, "TASKS_POLL_QUEUE"},
	} {
		v := st.vars
		if tc.vars != nil {
			v = merge(v, tc.vars)
		}
		r := runCLI(t, v, append([]string{"retry"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.has) {
			t.Errorf("%s: exit code %d, want %d, stderr lacking %q?\n%s", tc.name, r.code, tc.code, tc.has, r.stderr)
		}
	}
}

// TestRetryRefusesWhileWaiting: a process whose next poll is ahead, or on
// which a delivery holds the lease, is refused with the reason.
func TestRetryRefusesWhileWaiting(t *testing.T) {
	st := newStage(t)
	st.strand.Schedule.Initial = time.Hour
	spec := cpemulator.ClientSpec{Customer: actCustomer, Behaviour: cpemulator.Silent}
	name, err := st.emu.AddClient(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := st.emu.Process(name)
	if err := st.strand.Claim(context.Background(), pipeline.Delivery{Body: cpemulator.EncodeNotificationBinary(actCustomer, s.ID), Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, st.vars, "retry", s.ID, "--json")
	var v actionView
	decodeJSON(t, r, &v)
	if r.code != exitProblem || !strings.Contains(v.Refused, "its next poll is due at") {
		t.Errorf("retry while a poll is scheduled: exit code %d, %+v", r.code, v)
	}
	// A delivery takes the lease (as an issue delivery does while the CA answers).
	if _, err := st.store.Update(context.Background(), progress.Key(actCustomer, s.ID), func(r *progress.Record) error {
		r.NextPollAt = time.Now().Add(-time.Minute)
		return progress.AcquireLease(r, "issue-0123", time.Now(), time.Minute)
	}); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, st.vars, "retry", s.ID)
	if r.code != exitProblem || !strings.Contains(r.stderr, "issue-0123 is acting on the process until") {
		t.Errorf("retry under a live lease: exit code %d\n%s", r.code, r.stderr)
	}
	if rec := st.record(s.ID); rec.Sweeps != 0 {
		t.Errorf("a refused retry counted a re-drive")
	}
}

// TestFail fails a process on purpose: FAILED only once setFailure went
// through; while the API refuses it the record stays FAILING (exit 3).
func TestFail(t *testing.T) {
	st := newStage(t)
	const msg = "Your administrator stopped this request. Restart the device to try again."
	id := st.stranded(cpemulator.ClientSpec{Behaviour: cpemulator.Silent})

	r := runCLI(t, st.vars, "fail", id, "--message", msg, "--json")
	if r.code != exitOK {
		t.Fatalf("fail: exit code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var v actionView
	decodeJSON(t, r, &v)
	if !v.Done || v.State != "FAILED" || !v.FailureReported || v.FailureMessage != msg || v.LastError != pipeline.OperatorReason {
		t.Errorf("fail --json: %+v", v)
	}
	snap := st.snapshot(id)
	if snap.State != cpemulator.StateFailed || snap.FailureMessage != msg || snap.SetFailureCalls != 1 || snap.FailedBy != "adapter" {
		t.Errorf("API: %s, message %q, %d setFailure calls, failed by %q", snap.State, snap.FailureMessage, snap.SetFailureCalls, snap.FailedBy)
	}
	if rec := st.record(id); rec.State != progress.StateFailed || rec.ExpireAt == nil {
		t.Errorf("record %s, expireAt %v", rec.State, rec.ExpireAt)
	}
	r = runCLI(t, st.vars, "fail", id, "--message", msg)
	if r.code != exitProblem || !strings.Contains(r.stderr, "refused: the process failed already") {
		t.Errorf("second fail: exit code %d\n%s", r.code, r.stderr)
	}

	// setFailure unavailable: the record stays FAILING, a task takes over.
	id2 := st.stranded(cpemulator.ClientSpec{Behaviour: cpemulator.Silent})
	st.setFailureDown.Store(true)
	r = runCLI(t, st.vars, "fail", id2, "--message", msg)
	if r.code != exitUnreachable || !strings.Contains(r.stderr, "setFailure did not go through") {
		t.Errorf("fail with setFailure down: exit code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	rec := st.record(id2)
	if rec.State != progress.StateFailing || rec.FailureReported || rec.ReportHandoffs != 1 || rec.FailureMessage != msg {
		t.Errorf("record after an unreported fail: %s, reported %t, hand-offs %d, message %q", rec.State, rec.FailureReported, rec.ReportHandoffs, rec.FailureMessage)
	}
	if s := st.snapshot(id2); s.State == cpemulator.StateFailed {
		t.Errorf("the API shows the process failed")
	}
	// Failing: a second fail is refused; a retry re-drives the report.
	r = runCLI(t, st.vars, "fail", id2, "--message", "other")
	if r.code != exitProblem || !strings.Contains(r.stderr, "failing already") {
		t.Errorf("fail of a failing process: exit code %d\n%s", r.code, r.stderr)
	}
	st.setFailureDown.Store(false)
	if r := runCLI(t, st.vars, "retry", id2); r.code != exitOK {
		t.Fatalf("retry of the failing process: exit code %d\n%s", r.code, r.stderr)
	}
	rec = st.waitState(id2, progress.StateFailed)
	if !rec.FailureReported || st.snapshot(id2).FailureMessage != msg {
		t.Errorf("after the retry: reported %t, device message %q", rec.FailureReported, st.snapshot(id2).FailureMessage)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		has  string
	}{
		{"no message", []string{id}, exitUsage, "--message TEXT is required"},
		{"unknown process", []string{"nope", "--message", msg}, exitProblem, "not found"},
	} {
		r := runCLI(t, st.vars, append([]string{"fail"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.has) {
			t.Errorf("%s: exit code %d, want %d, stderr lacking %q?\n%s", tc.name, r.code, tc.code, tc.has, r.stderr)
		}
	}
}
