package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tooling/testlog"
)

// failingStore fails every call, as an unavailable Firestore would.
type failingStore struct{ *memory.Store }

var errDown = errors.New("firestore unavailable")

func (failingStore) Get(context.Context, string) (*progress.Record, error) { return nil, errDown }

func (failingStore) Stale(context.Context, []progress.State, time.Time, int) ([]*progress.Record, error) {
	return nil, errDown
}

// countingQueue counts the tasks enqueued.
type countingQueue struct{ n *int }

func (q countingQueue) Enqueue(context.Context, tasks.Task) error { *q.n++; return nil }

// The scheduler's sweep has its own route on PollSignature (SweepPath); the
// body it posted to the root before ({"sweep":true}, no key) still sweeps,
// since the job may fire it between a deploy of the function and the update
// of the job. Nothing else sweeps.
func TestSweepRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, body string
		status, sweeps           int
	}{
		{"the sweep route", http.MethodPost, SweepPath, ``, http.StatusOK, 1},
		{"the sweep route ignores its body", http.MethodPost, SweepPath, `{"sweep":true}`, http.StatusOK, 1},
		{"the old request on the poll route", http.MethodPost, "/", `{"sweep":true}`, http.StatusOK, 1},
		{"a poll task that also says sweep", http.MethodPost, "/", `{"sweep":true,"key":"C0:other"}`, http.StatusOK, 0},
		{"a poll task", http.MethodPost, "/", `{"key":"C0:other"}`, http.StatusOK, 0},
		{"sweep:false", http.MethodPost, "/", `{"sweep":false}`, http.StatusOK, 0},
		{"GET", http.MethodGet, SweepPath, ``, http.StatusMethodNotAllowed, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := memory.New()
			old := time.Now().UTC().Add(-2 * time.Hour)
			if _, err := store.Create(context.Background(), &progress.Record{Key: "C0:p", Customer: "C0", ProcessID: "p",
				ProcessName: "customers/C0/certificateProvisioningProcesses/p", State: progress.StateReceived, CreatedAt: old, UpdatedAt: old}); err != nil {
				t.Fatal(err)
			}
			enqueued := 0
			p := &pipeline.Pipeline{Store: store, Tasks: countingQueue{&enqueued}, Allowed: func(string) bool { return true }, Log: testlog.New(t), SweepAfter: time.Hour}
			get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, p.Log, nil }
			rec := httptest.NewRecorder()
			Poll(get)(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
			got, err := store.Get(context.Background(), "C0:p")
			if err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status || got.Sweeps != tc.sweeps || enqueued != tc.sweeps {
				t.Errorf("status %d, sweeps %d, tasks %d; want %d, %d, %d", rec.Code, got.Sweeps, enqueued, tc.status, tc.sweeps, tc.sweeps)
			}
		})
	}
}

// The request terraform/sweep.tf has the scheduler post (its path under
// PollSignature's URL and its body) runs the sweep, with this release and, by
// its body on the root path, with the releases before the /sweep route.
func TestSchedulerRequestSweeps(t *testing.T) {
	t.Parallel()
	tf, err := os.ReadFile("../../terraform/sweep.tf")
	if err != nil {
		t.Fatal(err)
	}
	uri := regexp.MustCompile(`uri\s*=\s*"\$\{local\.run_urls\.poll\}([^"]*)"`).FindSubmatch(tf)
	body := regexp.MustCompile(`body\s*=\s*base64encode\(("(?:[^"\\]|\\.)*")\)`).FindSubmatch(tf)
	if uri == nil || body == nil {
		t.Fatal(`terraform/sweep.tf: no uri = "${local.run_urls.poll}/..." or body = base64encode("...")`)
	}
	b, err := strconv.Unquote(string(body[1]))
	if err != nil {
		t.Fatal(err)
	}
	if string(uri[1]) != SweepPath {
		t.Errorf("the scheduler posts to %q, want %q", uri[1], SweepPath)
	}
	if !legacySweep([]byte(b)) {
		t.Errorf("the scheduler's body %s does not sweep on the root path (the releases before %s)", b, SweepPath)
	}
	for _, path := range []string{string(uri[1]), "/"} {
		store := memory.New()
		old := time.Now().UTC().Add(-2 * time.Hour)
		if _, err := store.Create(context.Background(), &progress.Record{Key: "C0:p", Customer: "C0", ProcessID: "p",
			ProcessName: "customers/C0/certificateProvisioningProcesses/p", State: progress.StateReceived, CreatedAt: old, UpdatedAt: old}); err != nil {
			t.Fatal(err)
		}
		enqueued := 0
		p := &pipeline.Pipeline{Store: store, Tasks: countingQueue{&enqueued}, Log: testlog.New(t), SweepAfter: time.Hour}
		get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, p.Log, nil }
		rec := httptest.NewRecorder()
		Poll(get)(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(b)))
		if rec.Code != http.StatusOK || enqueued != 1 {
			t.Errorf("POST %s %s: status %d, %d re-drives; want 200 and 1", path, b, rec.Code, enqueued)
		}
	}
}

// Cloud Tasks counts retries from 0; a Delivery counts attempts from 1, and
// 0 is unknown.
func TestTaskAttempt(t *testing.T) {
	t.Parallel()
	for header, want := range map[string]int{"": 0, "0": 1, "1": 2, "9": 10, "-1": 0, "x": 0} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if header != "" {
			r.Header.Set(tasks.HeaderRetryCount, header)
		}
		if got := TaskAttempt(r); got != want {
			t.Errorf("%s: %q gives attempt %d, want %d", tasks.HeaderRetryCount, header, got, want)
		}
	}
}

// sweeping is get with the stale-process sweep on.
func sweeping(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) {
	p, _, _ := get(context.Background())
	p.SweepAfter = time.Hour
	return get
}

func newPipeline(store pipeline.Store) (func(context.Context) (*pipeline.Pipeline, *slog.Logger, error), *bytes.Buffer) {
	var buf bytes.Buffer
	log := logging.New(&buf, slog.LevelDebug, "test")
	p := &pipeline.Pipeline{Store: store, Allowed: func(string) bool { return false }, Log: log, Project: "proj"}
	return func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, log, nil }, &buf
}

func TestClaimAcknowledgesWhatCannotSucceed(t *testing.T) {
	t.Parallel()
	get, logs := newPipeline(memory.New())
	claim := Claim(get)
	tests := []struct {
		name, body, wantLog string
	}{
		{"not JSON", `not json`, "not a Pub/Sub push"},
		{"not a push envelope", `[1,2,3]`, "not a Pub/Sub push"},
		{"no message (an unwrapped push)", `{"certificateProvisioningProcessCreatedEventData":{}}`, "no message"},
		{"data not base64", `{"message":{"data":"%%%"},"subscription":"projects/p/subscriptions/s"}`, "not a Pub/Sub push"},
		{"too large", `{"message":{"data":"` + strings.Repeat("A", maxPush) + `"}}`, "too large"},
		{"not a notification", `{"message":{"data":"aGVsbG8="},"deliveryAttempt":1}`, "malformed notification acknowledged"},
		{"customer not allowed", `{"message":{"data":"eyJjZXJ0aWZpY2F0ZVByb3Zpc2lvbmluZ1Byb2Nlc3NDcmVhdGVkRXZlbnREYXRhIjp7ImNlcnRpZmljYXRlUHJvdmlzaW9uaW5nUHJvY2Vzc0lkIjoicCIsImN1c3RvbWVySWQiOiJjIn19"}}`, "not in allowedCustomers"},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		claim(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body)))
		if rec.Code/100 != 2 {
			t.Errorf("%s: HTTP %d, want 2xx (acknowledged)", tc.name, rec.Code)
		}
		if !strings.Contains(logs.String(), tc.wantLog) {
			t.Errorf("%s: logs lack %q", tc.name, tc.wantLog)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.Contains(line, "allowedCustomers") && !strings.Contains(line, `"severity":"ERROR"`) {
			t.Errorf("a malformed request is not logged as an error: %s", line)
		}
	}
}

// A push body is decoded field by field as Pub/Sub documents it, whichever
// spelling of the id and publish time it carries.
func TestDecodePush(t *testing.T) {
	t.Parallel()
	publish := time.Date(2021, 2, 26, 19, 13, 55, 749e6, time.UTC)
	tests := []struct {
		name string
		body string
		want Push
	}{
		{"documented, with the attempt", documentedPush([]byte("hi"), 4), Push{
			Message:      PushMessage{Data: []byte("hi"), Attributes: map[string]string{"key": "value"}, MessageID: "2070443601311540", PublishTime: publish},
			Subscription: "projects/myproject/subscriptions/mysubscription", DeliveryAttempt: 4,
		}},
		{"snake case only, no attempt (no dead-letter policy)", `{"message":{"data":"aGk=","message_id":"7","publish_time":"2021-02-26T19:13:55.749Z"},"subscription":"projects/p/subscriptions/s"}`, Push{
			Message: PushMessage{Data: []byte("hi"), MessageID: "7", PublishTime: publish}, Subscription: "projects/p/subscriptions/s",
		}},
		{"unknown fields are ignored", `{"message":{"data":"aGk=","messageId":"7","orderingKey":"k"},"deliveryAttempt":2,"future":true}`, Push{
			Message: PushMessage{Data: []byte("hi"), MessageID: "7"}, DeliveryAttempt: 2,
		}},
	}
	for _, tc := range tests {
		got, err := DecodePush([]byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tc.name, diff)
		}
	}
	// What the stand-ins and the simulation send decodes to what they meant.
	sent := Push{Message: PushMessage{Data: []byte{0, 1, 2}, MessageID: "9", PublishTime: publish}, Subscription: "projects/p/subscriptions/s", DeliveryAttempt: 3}
	b, err := json.Marshal(sent)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"message_id":"9"`, `"publish_time":"2021-02-26T19:13:55.749Z"`, `"deliveryAttempt":3`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("encoded push %s lacks %s", b, field)
		}
	}
	if got, err := DecodePush(b); err != nil || !cmp.Equal(sent, got) {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, sent)
	}
}

func TestTaskHandlerStatus(t *testing.T) {
	t.Parallel()
	okGet, _ := newPipeline(memory.New())
	downGet, logs := newPipeline(failingStore{memory.New()})
	sweepingDown, _ := newPipeline(failingStore{memory.New()})
	sweepingDown = sweeping(sweepingDown)
	sweepingOK, _ := newPipeline(memory.New())
	sweepingOK = sweeping(sweepingOK)
	tests := []struct {
		name   string
		h      http.HandlerFunc
		method string
		body   string
		want   int
	}{
		{"malformed body acknowledged", Poll(okGet), http.MethodPost, `not json`, http.StatusOK},
		{"unknown process acknowledged", Issue(okGet), http.MethodPost, `{"key":"c:p"}`, http.StatusOK},
		{"store down is retried", Poll(downGet), http.MethodPost, `{"key":"c:p"}`, http.StatusServiceUnavailable},
		{"GET refused", Poll(okGet), http.MethodGet, ``, http.StatusMethodNotAllowed},
		{"oversized body acknowledged", Issue(okGet), http.MethodPost, strings.Repeat("x", maxBody+1), http.StatusOK},
		{"sweep (disabled) answered", Poll(okGet), http.MethodPost, `{"sweep":true}`, http.StatusOK},
		{"sweep of an empty store answered", Poll(sweepingOK), http.MethodPost, `{"sweep":true}`, http.StatusOK},
		{"sweep that cannot list records is retried", Poll(sweepingDown), http.MethodPost, `{"sweep":true}`, http.StatusServiceUnavailable},
	}
	for _, tc := range tests {
		req := httptest.NewRequest(tc.method, "/", strings.NewReader(tc.body))
		req.Header.Set(tasks.HeaderRetryCount, "2")
		req.Header.Set("X-Cloud-Trace-Context", "abc123/1;o=1")
		rec := httptest.NewRecorder()
		tc.h(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.want)
		}
	}
	if !strings.Contains(logs.String(), `"logging.googleapis.com/trace":"projects/proj/traces/abc123"`) || !strings.Contains(logs.String(), `"attempt":3`) {
		t.Errorf("retry log lacks the trace or the attempt (retry count 2: the third):\n%s", logs)
	}
}

func TestNotConfigured(t *testing.T) {
	t.Parallel()
	broken := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) {
		return nil, nil, errors.New("configuration: CERTPROV_CONFIG required")
	}
	rec := httptest.NewRecorder()
	Poll(broken)(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"key":"c:p"}`)))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500 so the task waits for a fixed deployment", rec.Code)
	}
	rec = httptest.NewRecorder()
	Claim(broken)(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(documentedPush([]byte("x"), 1))))
	if rec.Code/100 == 2 {
		t.Errorf("Claim acknowledged (HTTP %d) a message it could not process", rec.Code)
	}
}
