package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// failingStore fails every call, as an unavailable Firestore would.
type failingStore struct{ *memory.Store }

var errDown = errors.New("firestore unavailable")

func (failingStore) Get(context.Context, string) (*progress.Record, error) { return nil, errDown }

func (failingStore) Stale(context.Context, []progress.State, time.Time, int) ([]*progress.Record, error) {
	return nil, errDown
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
	tests := []struct{ name, data string }{
		{"not a Pub/Sub message", `[1,2,3]`},
		{"not a notification", `{"message":{"data":"aGVsbG8="}}`},
		{"customer not allowed", `{"message":{"data":"eyJjZXJ0aWZpY2F0ZVByb3Zpc2lvbmluZ1Byb2Nlc3NDcmVhdGVkRXZlbnREYXRhIjp7ImNlcnRpZmljYXRlUHJvdmlzaW9uaW5nUHJvY2Vzc0lkIjoicCIsImN1c3RvbWVySWQiOiJjIn19"}}`},
	}
	for _, tc := range tests {
		e := event.New()
		e.SetID("1")
		e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
		e.SetSource("//pubsub.googleapis.com/projects/p/topics/t")
		if err := e.SetData("application/json", json.RawMessage(tc.data)); err != nil {
			t.Fatal(err)
		}
		if err := claim(context.Background(), e); err != nil {
			t.Errorf("%s: %v, want nil (acknowledged)", tc.name, err)
		}
	}
	for _, want := range []string{"not a Pub/Sub message", "malformed notification acknowledged", "not in allowedCustomers"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if !strings.Contains(logs.String(), `"severity":"ERROR"`) {
		t.Error("a malformed message is not logged as an error")
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
	if !strings.Contains(logs.String(), `"logging.googleapis.com/trace":"projects/proj/traces/abc123"`) || !strings.Contains(logs.String(), `"retry":2`) {
		t.Errorf("retry log lacks the trace or the retry count:\n%s", logs)
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
	if err := Claim(broken)(context.Background(), event.New()); err == nil {
		t.Error("Claim acknowledged a message it could not process")
	}
}
