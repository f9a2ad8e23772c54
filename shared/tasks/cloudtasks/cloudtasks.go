// Package cloudtasks hands tasks from one pipeline function to the next through
// Google Cloud Tasks: each tasks.Task becomes a named HTTP task that POSTs its
// JSON body to the queue's target function, with an OIDC token for the
// configured service account.
package cloudtasks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// Config says where each queue's tasks go.
type Config struct {
	// PollQueue and IssueQueue are full queue names,
	// projects/P/locations/L/queues/Q (TASKS_POLL_QUEUE, TASKS_ISSUE_QUEUE).
	PollQueue  string
	IssueQueue string
	// ClaimQueue, optional, is the full name of the claim queue
	// (TASKS_CLAIM_QUEUE); its tasks go to PollURL's ClaimPath.
	ClaimQueue string
	// PollURL and IssueURL are the target functions' URLs (POLL_SIGNATURE_URL,
	// ISSUE_CERTIFICATE_URL).
	PollURL  string
	IssueURL string
	// ServiceAccount is the email of the service account whose OIDC token Cloud
	// Tasks attaches, with the target URL as audience (TASKS_SERVICE_ACCOUNT).
	// Empty: no token (emulators, unauthenticated targets).
	ServiceAccount string
}

var (
	queueName = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/queues/[A-Za-z0-9-]+$`)
	taskID    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,500}$`)
)

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	for _, q := range []struct{ field, name, url string }{
		{"PollQueue", c.PollQueue, c.PollURL},
		{"IssueQueue", c.IssueQueue, c.IssueURL},
	} {
		if !queueName.MatchString(q.name) {
			errs = append(errs, fmt.Errorf("%s %q: want projects/P/locations/L/queues/Q", q.field, q.name))
		}
		urlField := "PollURL"
		if q.field == "IssueQueue" {
			urlField = "IssueURL"
		}
		if u, err := url.Parse(q.url); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute http(s) URL", urlField, q.url))
		}
	}
	if c.ClaimQueue != "" && !queueName.MatchString(c.ClaimQueue) {
		errs = append(errs, fmt.Errorf("ClaimQueue %q: want projects/P/locations/L/queues/Q", c.ClaimQueue))
	}
	return errors.Join(errs...)
}

// ClaimPath is the path of PollSignature that runs the claim queue's tasks.
const ClaimPath = "/claim"

// Enqueuer creates Cloud Tasks tasks. It is safe for concurrent use.
type Enqueuer struct {
	client  *cloudtasks.Client
	cfg     Config
	targets map[tasks.Queue]target
}

type target struct{ queue, url string }

// New returns an Enqueuer for cfg. Without opts the client uses Application
// Default Credentials; for an emulator pass the options from Dial.
func New(ctx context.Context, cfg Config, opts ...option.ClientOption) (*Enqueuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cloudtasks: config: %w", err)
	}
	client, err := cloudtasks.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("cloudtasks: new client: %w", err)
	}
	e := &Enqueuer{
		client: client,
		cfg:    cfg,
		targets: map[tasks.Queue]target{
			tasks.QueuePoll:  {cfg.PollQueue, cfg.PollURL},
			tasks.QueueIssue: {cfg.IssueQueue, cfg.IssueURL},
		},
	}
	if cfg.ClaimQueue != "" {
		e.targets[tasks.QueueClaim] = target{cfg.ClaimQueue, strings.TrimSuffix(cfg.PollURL, "/") + ClaimPath}
	}
	return e, nil
}

// Dial returns client options for the Cloud Tasks emulator at emulatorHost
// (host:port, CLOUD_TASKS_EMULATOR_HOST): one insecure gRPC connection and no
// authentication. The options are for one client; closing that client (or the
// Enqueuer) closes the connection.
func Dial(ctx context.Context, emulatorHost string) ([]option.ClientOption, error) {
	conn, err := grpc.NewClient(emulatorHost, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("cloudtasks: dial emulator %s: %w", emulatorHost, err)
	}
	return []option.ClientOption{option.WithGRPCConn(conn), option.WithoutAuthentication()}, nil
}

// Enqueue creates t in its queue as a named HTTP task that POSTs t.Body to the
// queue's target at t.ScheduleTime (now if zero). A name already used in that
// queue is a harmless no-op and returns nil (AlreadyExists). Cloud Tasks keeps the
// name of a task that ran or was deleted reserved for about an hour only; after
// that the name can be used again. A task without a name
// gets one from Cloud Tasks and is never deduplicated. Errors wrap the gRPC
// status (status.Code works on them); creating a named task is retried briefly
// on Unavailable, which is safe because a repeat is AlreadyExists.
func (e *Enqueuer) Enqueue(ctx context.Context, t tasks.Task) error {
	tg, ok := e.targets[t.Queue]
	if !ok {
		return fmt.Errorf("cloudtasks: enqueue %q: unknown queue %q", t.Name, t.Queue)
	}
	if t.Name != "" && !taskID.MatchString(t.Name) {
		return fmt.Errorf("cloudtasks: enqueue in %s: task name %q: want 1-500 of [A-Za-z0-9_-]", t.Queue, t.Name)
	}
	req := &cloudtaskspb.HttpRequest{
		Url:        tg.url,
		HttpMethod: cloudtaskspb.HttpMethod_POST,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       t.Body,
	}
	if e.cfg.ServiceAccount != "" {
		req.AuthorizationHeader = &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{
			ServiceAccountEmail: e.cfg.ServiceAccount,
			Audience:            tg.url,
		}}
	}
	task := &cloudtaskspb.Task{MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: req}}
	if t.Name != "" {
		task.Name = tg.queue + "/tasks/" + t.Name
	}
	if !t.ScheduleTime.IsZero() {
		task.ScheduleTime = timestamppb.New(t.ScheduleTime)
	}
	var callOpts []gax.CallOption
	if t.Name != "" {
		callOpts = append(callOpts, gax.WithRetry(func() gax.Retryer {
			return &limitedRetryer{left: 3, Retryer: gax.OnCodes([]codes.Code{codes.Unavailable}, gax.Backoff{
				Initial:    100 * time.Millisecond,
				Max:        2 * time.Second,
				Multiplier: 2,
			})}
		}))
	}
	_, err := e.client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: tg.queue, Task: task}, callOpts...)
	switch {
	case err == nil:
		return nil
	case status.Code(err) == codes.AlreadyExists:
		return nil
	case t.Name == "":
		return fmt.Errorf("cloudtasks: create task in %s: %w", tg.queue, err)
	default:
		return fmt.Errorf("cloudtasks: create task %s in %s: %w", t.Name, tg.queue, err)
	}
}

// Close closes the client and its connections.
func (e *Enqueuer) Close() error {
	if err := e.client.Close(); err != nil {
		return fmt.Errorf("cloudtasks: close: %w", err)
	}
	return nil
}

// limitedRetryer stops a gax retryer after a number of retries, so a call
// without a context deadline does not retry forever.
type limitedRetryer struct {
	gax.Retryer
	left int
}

func (r *limitedRetryer) Retry(err error) (time.Duration, bool) {
	if r.left <= 0 {
		return 0, false
	}
	r.left--
	return r.Retryer.Retry(err)
}
