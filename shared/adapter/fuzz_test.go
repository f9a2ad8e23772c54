package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// FuzzTaskHandlers sends arbitrary task bodies (poll, issue, the scheduler's
// sweep) and retry headers through the two task functions, over a store that
// holds a record in every state and the API emulator. Whatever comes in, the
// handler answers 200 (done or acknowledged) or 503 (retry), never panics,
// and acknowledges a body that names no record it could act on.
func FuzzTaskHandlers(f *testing.F) {
	for _, seed := range []string{
		`{"key":"C0fuzz:p-POLLING","poll":0}`, `{"key":"C0fuzz:p-SIGNING"}`, `{"key":"C0fuzz:p-ISSUED","attempt":1}`,
		`{"key":"C0fuzz:p-FAILING"}`, `{"key":"C0fuzz:p-RECEIVED"}`, `{"key":"C0fuzz:p-SIGNED"}`, `{"sweep":true}`,
		`{"sweep":true,"key":"C0fuzz:p-POLLING"}`, `{"key":"a/b"}`, `{"key":""}`, `{"key":"__x__"}`, `not json`, `null`,
		`{"key":"C0fuzz:p-POLLING","poll":-1}`, `{"key":"C0fuzz:p-POLLING","poll":9999999999}`, `[]`, `{"key":1}`,
	} {
		f.Add([]byte(seed), "0", uint8(0))
		f.Add([]byte(seed), "9", uint8(1))
	}
	emu := cpemulator.New(cpemulator.Options{})
	srv := httptest.NewServer(emu)
	f.Cleanup(srv.Close)
	api, err := cpapi.New(context.Background(), cpapi.Options{EmulatorHost: srv.URL, Timeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, retryHeader string, which uint8) {
		store := memory.New()
		now := time.Now().UTC()
		for _, st := range []progress.State{progress.StateReceived, progress.StateClaimed, progress.StateSigning, progress.StatePolling,
			progress.StateSigned, progress.StateIssuing, progress.StateIssued, progress.StateFailing, progress.StateUploaded} {
			id := "p-" + string(st)
			if _, err := store.Create(context.Background(), &progress.Record{
				Key: progress.Key("C0fuzz", id), Customer: "C0fuzz", ProcessID: id,
				ProcessName: "customers/C0fuzz/certificateProvisioningProcesses/" + id, State: st,
				CreatedAt: now.Add(-2 * time.Hour), UpdatedAt: now.Add(-2 * time.Hour), Deadline: now.Add(time.Hour),
				OperationName:  "customers/C0fuzz/certificateProvisioningProcesses/" + id + "/operations/x",
				FailureMessage: "fuzz", SignData: []byte{0x30, 0x00}, CSR: []byte{0x30, 0x00}, CertificatePEM: "not a certificate",
			}); err != nil {
				t.Fatal(err)
			}
		}
		p := &pipeline.Pipeline{Store: store, Tasks: recordingQueue{}, API: api, Allowed: func(c string) bool { return c == "C0fuzz" },
			Log: logging.Discard, SweepAfter: time.Hour, MaxAttempts: 10, CATimeout: time.Second}
		get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, logging.Discard, nil }
		h := Poll(get)
		if which%2 == 1 {
			h = Issue(get)
		}
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set(tasks.HeaderRetryCount, retryHeader)
		rec := httptest.NewRecorder()
		h(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
		var tb pipeline.TaskBody
		if json.Unmarshal(body, &tb) != nil || (tb.Key == "" && !(which%2 == 0 && legacySweep(body))) {
			if rec.Code != http.StatusOK {
				t.Fatalf("a body that names no record (%q) was not acknowledged: %d", body, rec.Code)
			}
		}
	})
}
