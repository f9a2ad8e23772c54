package adapter

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// recordingQueue takes every task and delivers none (the steps under test
// need none delivered).
type recordingQueue struct{}

func (recordingQueue) Enqueue(context.Context, tasks.Task) error { return nil }

// documentedPush is a push request body exactly as Pub/Sub's documentation
// shows it (cloud.google.com/pubsub/docs/push, "How push endpoints receive
// messages"), with deliveryAttempt at the top level, as Pub/Sub adds it when
// the subscription has a dead-letter policy, and data replaced.
func documentedPush(data []byte, attempt int) string {
	return `{
    "message": {
        "attributes": {
            "key": "value"
        },
        "data": "` + base64.StdEncoding.EncodeToString(data) + `",
        "messageId": "2070443601311540",
        "message_id": "2070443601311540",
        "publishTime": "2021-02-26T19:13:55.749Z",
        "publish_time": "2021-02-26T19:13:55.749Z"
    },
    "subscription": "projects/myproject/subscriptions/mysubscription",
    "deliveryAttempt": ` + strconv.Itoa(attempt) + `
}`
}

// serveFunctions starts functions-framework-go, as the deployed functions
// are served, with every function registered so far, and returns its base
// URL. The server cannot be stopped; it ends with the test binary.
func serveFunctions(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	go func() { _ = funcframework.StartHostPort("127.0.0.1", strconv.Itoa(port)) }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("functions-framework-go did not listen on %s", addr)
	return ""
}

// TestDeliveryAttemptReachesTheClaim: a push body as Pub/Sub sends it, served
// by functions-framework-go, gives the claim step its delivery attempt. On
// the last attempt a claim that keeps failing is failed, its report handed to
// a fresh task, and acknowledged, instead of being dead-lettered with the
// device never told.
func TestDeliveryAttemptReachesTheClaim(t *testing.T) {
	ctx := context.Background()
	emu := cpemulator.New(cpemulator.Options{Fault: func(method, _ string) cpemulator.Fault {
		if method == cpemulator.MethodClaim {
			return cpemulator.FaultUnavailable // an outage that outlasts every delivery
		}
		return cpemulator.NoFault
	}})
	apiSrv := httptest.NewServer(emu)
	t.Cleanup(apiSrv.Close)
	api, err := cpapi.New(ctx, cpapi.Options{EmulatorHost: apiSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	log := logging.New(&logs, slog.LevelDebug, "ClaimProcess")
	store := memory.New()
	p := &pipeline.Pipeline{Store: store, Tasks: recordingQueue{}, API: api, Log: log, Project: "proj",
		Allowed: func(c string) bool { return c == "C0push" }, CallerID: "certprov-test", MaxAttempts: 3}
	get := func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, log, nil }

	if err := funcframework.RegisterHTTPFunctionContext(ctx, "/push-attempt/", Claim(get)); err != nil {
		t.Fatal(err)
	}
	base := serveFunctions(t)

	tests := []struct {
		name        string
		attempt     int
		wantAck     bool
		wantState   progress.State
		wantReports int
		// wantHandoffs: fresh tasks that took the report over. The API
		// takes setFailure only from the claimer, and the claim is down:
		// the record stays FAILING (the device was not told yet).
		wantHandoffs int
	}{
		{"first delivery during the outage is redelivered", 1, false, progress.StateReceived, 0, 0},
		{"last delivery decides the failure, hands its report on and is acknowledged", p.MaxAttempts, true, progress.StateFailing, 0, 1},
	}
	for _, tc := range tests {
		name, err := emu.AddClient(ctx, cpemulator.ClientSpec{Customer: "C0push"})
		if err != nil {
			t.Fatal(err)
		}
		snap, _ := emu.Process(name)
		data := cpemulator.EncodeNotificationBinary(snap.Customer, snap.ID)
		req, _ := http.NewRequest(http.MethodPost, base+"/push-attempt/projects/myproject/topics/mytopic", strings.NewReader(documentedPush(data, tc.attempt)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ack := resp.StatusCode/100 == 2; ack != tc.wantAck {
			t.Errorf("%s: HTTP %d, acknowledged %v, want %v", tc.name, resp.StatusCode, ack, tc.wantAck)
		}
		rec, err := store.Get(ctx, progress.Key(snap.Customer, snap.ID))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		after, _ := emu.Process(name)
		if rec.State != tc.wantState || after.Requests[cpemulator.MethodSetFailure] != tc.wantReports || rec.ReportHandoffs != tc.wantHandoffs {
			t.Errorf("%s: state %s, setFailure tried %d times, %d report hand-offs; want %s, %d and %d (last error %q)",
				tc.name, rec.State, after.Requests[cpemulator.MethodSetFailure], rec.ReportHandoffs, tc.wantState, tc.wantReports, tc.wantHandoffs, rec.LastError)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs.String())
	}
}
