package adapter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tasks/cloudtasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tooling/testlog"
)

// quotaAPI answers every call 429, as the API does once its quota is spent.
type quotaAPI struct{ pipeline.API }

func (quotaAPI) Get(_ context.Context, name string) (*cpapi.Process, error) {
	return nil, &cpapi.Error{Method: "get", Name: name, Code: http.StatusTooManyRequests, Transient: true}
}

// queueRecorder keeps the queues of the tasks enqueued.
type queueRecorder struct{ queues *[]tasks.Queue }

func (q queueRecorder) Enqueue(_ context.Context, t tasks.Task) error {
	*q.queues = append(*q.queues, t.Queue)
	return nil
}

// PollSignature runs the claim queue's tasks at cloudtasks.ClaimPath: a claim
// task that meets 429 hands on to the next claim task and is acknowledged,
// where a poll task on the root path is retried, unless claims are paced
// (then a poll task that finds the claim to do hands it on too).
func TestClaimRoute(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path   string
		paced  bool
		status int
		queues int
	}{
		{cloudtasks.ClaimPath, false, http.StatusOK, 1},
		{"/", false, http.StatusServiceUnavailable, 0},
		{"/", true, http.StatusOK, 1},
	} {
		t.Run(fmt.Sprintf("%s paced %v", tc.path, tc.paced), func(t *testing.T) {
			t.Parallel()
			store := memory.New()
			now := time.Now().UTC()
			if _, err := store.Create(context.Background(), &progress.Record{Key: "C0:p", Customer: "C0", ProcessID: "p",
				ProcessName: "customers/C0/certificateProvisioningProcesses/p", State: progress.StateReceived, CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			var queues []tasks.Queue
			p := &pipeline.Pipeline{Store: store, Tasks: queueRecorder{&queues}, API: quotaAPI{}, Allowed: func(string) bool { return true },
				Log: testlog.New(t), PaceClaims: tc.paced}
			get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, p.Log, nil }
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(`{"key":"C0:p","attempt":1}`))
			req.Header.Set(tasks.HeaderRetryCount, "0")
			Poll(get)(rec, req)
			claims := 0
			for _, q := range queues {
				if q == tasks.QueueClaim {
					claims++
				}
			}
			if rec.Code != tc.status || claims != tc.queues {
				t.Errorf("status %d, claim tasks %d; want %d, %d", rec.Code, claims, tc.status, tc.queues)
			}
		})
	}
}
