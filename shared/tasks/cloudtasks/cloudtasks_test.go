package cloudtasks_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tasks/cloudtasks"
	"github.com/chromeos-certprov/adapter/shared/tooling/tasks/taskstest"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var queueSeq atomic.Int64

// queueName is a fresh queue name: the emulator keeps deleted names reserved,
// also across test runs against a long-lived emulator.
func queueName(q tasks.Queue) string {
	return fmt.Sprintf("projects/certprov-test/locations/local/queues/%s-%d-%d", q, time.Now().UnixNano(), queueSeq.Add(1))
}

// newEnqueuer creates a poll and an issue queue on the emulator at addr whose
// targets are httptest servers running targets, and an Enqueuer for them.
func newEnqueuer(t *testing.T, addr string, targets map[tasks.Queue]http.Handler, serviceAccount string) (*cloudtasks.Enqueuer, cloudtasks.Config) {
	t.Helper()
	retry := &cloudtaskspb.RetryConfig{
		MaxAttempts: 5,
		MinBackoff:  durationpb.New(50 * time.Millisecond),
		MaxBackoff:  durationpb.New(time.Second),
	}
	cfg := cloudtasks.Config{ServiceAccount: serviceAccount}
	for _, q := range []tasks.Queue{tasks.QueuePoll, tasks.QueueIssue} {
		srv := httptest.NewServer(targets[q])
		t.Cleanup(srv.Close)
		name := queueName(q)
		testenv.CloudTasksQueue(t, addr, name, retry)
		if q == tasks.QueuePoll {
			cfg.PollQueue, cfg.PollURL = name, srv.URL+"/PollSignature"
		} else {
			cfg.IssueQueue, cfg.IssueURL = name, srv.URL+"/IssueCertificate"
		}
	}
	e := dial(t, addr, cfg)
	return e, cfg
}

func dial(t *testing.T, addr string, cfg cloudtasks.Config) *cloudtasks.Enqueuer {
	t.Helper()
	opts, err := cloudtasks.Dial(t.Context(), addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	e, err := cloudtasks.New(t.Context(), cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func TestConformance(t *testing.T) {
	addr := testenv.CloudTasks(t)
	taskstest.Run(t, func(t *testing.T, targets map[tasks.Queue]http.Handler) taskstest.Enqueuer {
		e, _ := newEnqueuer(t, addr, targets, "")
		return e
	})
}

// The emulator signs the OIDC token Cloud Tasks would attach: its audience must
// be the target URL and its email the configured service account.
func TestOIDCToken(t *testing.T) {
	addr := testenv.CloudTasks(t)
	const sa = "certprov-tasks@certprov-test.iam.gserviceaccount.com"
	got := make(chan string, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("Authorization"):
		default:
		}
	})
	e, cfg := newEnqueuer(t, addr, map[tasks.Queue]http.Handler{tasks.QueuePoll: h, tasks.QueueIssue: h}, sa)
	if err := e.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueueIssue, Name: "oidc", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	var auth string
	select {
	case auth = <-got:
	case <-time.After(time.Minute):
		t.Fatal("no delivery within a minute")
	}
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		t.Fatalf("Authorization = %q, want a bearer token", auth)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want a JWT", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var claims struct {
		Aud   string `json:"aud"`
		Email string `json:"email"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("token claims: %v", err)
	}
	want := struct{ Aud, Email string }{cfg.IssueURL, sa}
	if diff := cmp.Diff(want, struct{ Aud, Email string }{claims.Aud, claims.Email}); diff != "" {
		t.Errorf("token claims (-want +got):\n%s", diff)
	}
}

func TestNoTokenWithoutServiceAccount(t *testing.T) {
	addr := testenv.CloudTasks(t)
	got := make(chan string, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("Authorization"):
		default:
		}
	})
	e, _ := newEnqueuer(t, addr, map[tasks.Queue]http.Handler{tasks.QueuePoll: h, tasks.QueueIssue: h}, "")
	if err := e.Enqueue(t.Context(), tasks.Task{Queue: tasks.QueuePoll, Name: "plain", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case auth := <-got:
		if auth != "" {
			t.Errorf("Authorization = %q, want none", auth)
		}
	case <-time.After(time.Minute):
		t.Fatal("no delivery within a minute")
	}
}

func TestEnqueueErrors(t *testing.T) {
	addr := testenv.CloudTasks(t)
	e, cfg := newEnqueuer(t, addr, map[tasks.Queue]http.Handler{tasks.QueuePoll: http.NotFoundHandler(), tasks.QueueIssue: http.NotFoundHandler()}, "")

	missing := cfg
	missing.PollQueue = queueName("never-created")
	noQueue := dial(t, addr, missing)

	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	down := dial(t, fmt.Sprintf("127.0.0.1:%d", port), cfg)

	tests := []struct {
		name     string
		e        *cloudtasks.Enqueuer
		task     tasks.Task
		wantCode codes.Code // codes.OK: not a gRPC error
		wantText string
	}{
		{"unknown queue", e, tasks.Task{Queue: "nope", Name: "a"}, codes.Unknown, `unknown queue "nope"`},
		{"bad name", e, tasks.Task{Queue: tasks.QueuePoll, Name: "a/b"}, codes.Unknown, `task name "a/b"`},
		{"queue missing", noQueue, tasks.Task{Queue: tasks.QueuePoll, Name: "a"}, codes.NotFound, missing.PollQueue},
		{"emulator down", down, tasks.Task{Queue: tasks.QueueIssue, Name: "a"}, codes.Unavailable, "create task a in " + cfg.IssueQueue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			err := tt.e.Enqueue(ctx, tt.task)
			if err == nil {
				t.Fatal("Enqueue: nil error")
			}
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("status code = %v, want %v (err %v)", got, tt.wantCode, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := cloudtasks.Config{
		PollQueue:  "projects/p/locations/europe-west1/queues/certprov-poll",
		IssueQueue: "projects/p/locations/europe-west1/queues/certprov-issue",
		PollURL:    "https://europe-west1-p.cloudfunctions.net/PollSignature",
		IssueURL:   "https://europe-west1-p.cloudfunctions.net/IssueCertificate",
	}
	tests := []struct {
		name   string
		change func(c *cloudtasks.Config)
		want   []string // substrings of the error, nil: valid
	}{
		{"valid", func(c *cloudtasks.Config) {}, nil},
		{"valid with service account", func(c *cloudtasks.Config) { c.ServiceAccount = "sa@p.iam.gserviceaccount.com" }, nil},
		{"empty", func(c *cloudtasks.Config) { *c = cloudtasks.Config{} }, []string{"PollQueue", "IssueQueue", "PollURL", "IssueURL"}},
		{"short queue id", func(c *cloudtasks.Config) { c.PollQueue = "certprov-poll" }, []string{"PollQueue"}},
		{"relative URL", func(c *cloudtasks.Config) { c.IssueURL = "/IssueCertificate" }, []string{"IssueURL"}},
		{"ftp URL", func(c *cloudtasks.Config) { c.PollURL = "ftp://host/x" }, []string{"PollURL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			if _, err := cloudtasks.New(t.Context(), c); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}
