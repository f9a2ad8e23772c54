// Package adapter connects the pipeline to its platform: it builds the pipeline
// from the environment (the API client, Firestore, Cloud Tasks, the CA
// connectors), turns Pub/Sub push requests and Cloud Tasks requests into
// pipeline steps (one pipeline.Delivery each, its attempt counted from 1) and
// the scheduler's request into a sweep, answering so that only transient
// failures are retried.
package adapter

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tasks"
	"github.com/chromeos-certprov/adapter/shared/tasks/cloudtasks"
)

// maxBody bounds a task body; ours are under 200 bytes.
const maxBody = 64 << 10

// maxPush bounds a push request body. A notification is under 1 KiB; Pub/Sub
// allows 10 MB messages, which would only be a mistake here.
const maxPush = 1 << 20

// Push is the body of a Pub/Sub push request (a wrapped message), as Pub/Sub
// sends it: {"message":{"data","attributes","messageId","message_id",
// "publishTime","publish_time"},"subscription":"projects/P/subscriptions/S",
// "deliveryAttempt":N}. deliveryAttempt is there only when the subscription
// has a dead-letter policy; it counts from 1.
type Push struct {
	Message      PushMessage `json:"message"`
	Subscription string      `json:"subscription"`
	// DeliveryAttempt is 0 when Pub/Sub did not send one.
	DeliveryAttempt int `json:"deliveryAttempt,omitempty"`
}

// PushMessage is the message of a push request.
type PushMessage struct {
	Data        []byte            `json:"data"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	MessageID   string            `json:"messageId"`
	PublishTime time.Time         `json:"publishTime"`
}

// pushMessageWire is a push request's message as Pub/Sub writes it, with
// both spellings of the id and of the publish time.
type pushMessageWire struct {
	Data             []byte            `json:"data"`
	Attributes       map[string]string `json:"attributes,omitempty"`
	MessageID        string            `json:"messageId"`
	MessageIDSnake   string            `json:"message_id"`
	PublishTime      string            `json:"publishTime"`
	PublishTimeSnake string            `json:"publish_time"`
}

// MarshalJSON writes the message as Pub/Sub does.
func (m PushMessage) MarshalJSON() ([]byte, error) {
	t := m.PublishTime.UTC().Format("2006-01-02T15:04:05.000Z")
	return json.Marshal(pushMessageWire{m.Data, m.Attributes, m.MessageID, m.MessageID, t, t})
}

// DecodePush reads a push request body. It is an error when the body is not
// a JSON object with a message.
func DecodePush(body []byte) (Push, error) {
	var w struct {
		Message         *pushMessageWire `json:"message"`
		Subscription    string           `json:"subscription"`
		DeliveryAttempt *int             `json:"deliveryAttempt"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return Push{}, fmt.Errorf("push request body: %w", err)
	}
	if w.Message == nil {
		return Push{}, errors.New("push request body: no message (is the subscription's payload unwrapped?)")
	}
	m := w.Message
	p := Push{Subscription: w.Subscription, Message: PushMessage{Data: m.Data, Attributes: m.Attributes, MessageID: cmp.Or(m.MessageID, m.MessageIDSnake)}}
	if t, err := time.Parse(time.RFC3339Nano, cmp.Or(m.PublishTime, m.PublishTimeSnake)); err == nil {
		p.Message.PublishTime = t
	}
	if w.DeliveryAttempt != nil && *w.DeliveryAttempt > 0 {
		p.DeliveryAttempt = *w.DeliveryAttempt
	}
	return p, nil
}

// Claim returns ClaimProcess, the HTTP function that a Pub/Sub push
// subscription calls: it decodes the push request and runs the claim step for
// that delivery attempt. A 2xx answer acknowledges the message; any other
// makes Pub/Sub deliver it again. A request that is not a push of a message
// can never succeed, so it is logged as an error and acknowledged. get returns
// the pipeline (built once per instance).
func Claim(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p, log, err := get(ctx)
		if err != nil {
			// A broken deployment: keep the message until it is fixed.
			http.Error(w, "adapter not configured", http.StatusInternalServerError)
			return
		}
		log = log.With(logging.TraceAttrs(projectOf(p), r.Header.Get("X-Cloud-Trace-Context"), r.Header.Get("traceparent"))...)
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPush+1))
		if err != nil || len(body) > maxPush {
			log.Error("push request body unreadable or too large; acknowledged", slog.Int("size", len(body)))
			w.WriteHeader(http.StatusOK)
			return
		}
		push, err := DecodePush(body)
		if err != nil {
			log.Error("request is not a Pub/Sub push of a message; acknowledged", slog.String("reason", err.Error()), slog.Int("size", len(body)))
			w.WriteHeader(http.StatusOK)
			return
		}
		log = log.With(slog.String("message_id", push.Message.MessageID), slog.Int("delivery_attempt", push.DeliveryAttempt))
		ctx = logging.WithLogger(ctx, log)
		d := pipeline.Delivery{Body: push.Message.Data, Attempt: push.DeliveryAttempt, Name: push.Message.MessageID}
		if err := guard(ctx, log, "claim", func() error { return p.Claim(ctx, d) }); err != nil {
			retryLater(ctx, log, w, "claim step will be retried", err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

// SweepPath is the path of PollSignature's URL that the scheduler posts to
// for a Sweep (terraform: sweep.tf); every other path takes poll tasks.
const SweepPath = "/sweep"

// Poll returns PollSignature, the HTTP function for poll tasks and, at
// SweepPath, for the scheduler's sweep.
//
// Until every scheduler job posts to SweepPath, a poll task body of
// {"sweep":true} without a key (what the job posted to the root before the
// sweep had its route) still runs the sweep: the job may fire the old request
// between a deploy of the function and the update of the job.
func Poll(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) http.HandlerFunc {
	poll := taskHandler(get, tasks.QueuePoll, func(p *pipeline.Pipeline) func(context.Context, pipeline.Delivery) error {
		return func(ctx context.Context, d pipeline.Delivery) error {
			if legacySweep(d.Body) {
				logging.FromOr(ctx, p.Log).Info("sweep requested with the old body on the poll route", slog.String("want_path", SweepPath))
				_, err := p.Sweep(ctx)
				return err
			}
			return p.Poll(ctx, d)
		}
	})
	sweep := Sweep(get)
	claim := ClaimTask(get)
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case SweepPath:
			sweep(w, r)
			return
		case cloudtasks.ClaimPath:
			claim(w, r)
			return
		}
		poll(w, r)
	}
}

// legacySweep reports whether a poll task body is the scheduler's old sweep
// request: {"sweep":true} and no key.
func legacySweep(body []byte) bool {
	var b struct {
		Key   string `json:"key"`
		Sweep bool   `json:"sweep"`
	}
	return json.Unmarshal(body, &b) == nil && b.Sweep && b.Key == ""
}

// Sweep returns the HTTP handler of the scheduler's sweep request (served by
// PollSignature at SweepPath): it runs pipeline.Sweep and answers 503 when the
// sweep could not list the records, so that the scheduler retries. The body
// is ignored.
func Sweep(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) http.HandlerFunc {
	return schedulerRoute(get, func(ctx context.Context, w http.ResponseWriter, _ *http.Request, p *pipeline.Pipeline, log *slog.Logger) {
		if err := guard(ctx, log, "sweep", func() error { _, err := p.Sweep(ctx); return err }); err != nil {
			retryLater(ctx, log, w, "sweep will be retried", err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// schedulerRoute is what the Cloud Scheduler routes (the sweep, the
// reconciliation) share before their work: the configured pipeline (500
// without one), its logger with the request's trace in ctx, and POST only.
func schedulerRoute(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error), serve func(ctx context.Context, w http.ResponseWriter, r *http.Request, p *pipeline.Pipeline, log *slog.Logger)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p, log, err := get(ctx)
		if err != nil {
			http.Error(w, "adapter not configured", http.StatusInternalServerError)
			return
		}
		log = log.With(logging.TraceAttrs(projectOf(p), r.Header.Get("X-Cloud-Trace-Context"), r.Header.Get("traceparent"))...)
		ctx = logging.WithLogger(ctx, log)
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		serve(ctx, w, r, p, log)
	}
}

// ClaimTask returns the HTTP handler of the claim queue's tasks (served by
// PollSignature at cloudtasks.ClaimPath): the claims that met the API's quota.
func ClaimTask(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) http.HandlerFunc {
	return taskHandler(get, tasks.QueueClaim, func(p *pipeline.Pipeline) func(context.Context, pipeline.Delivery) error { return p.ClaimTask })
}

// Issue returns the HTTP function for issue tasks and, at ReconcilePath,
// for the scheduler's reconciliation.
func Issue(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) http.HandlerFunc {
	issue := taskHandler(get, tasks.QueueIssue, func(p *pipeline.Pipeline) func(context.Context, pipeline.Delivery) error { return p.Issue })
	reconcile := Reconcile(get)
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == ReconcilePath {
			reconcile(w, r)
			return
		}
		issue(w, r)
	}
}

// TaskAttempt is the attempt (from 1, as pipeline.Delivery counts) of the
// task that r delivers: Cloud Tasks' X-CloudTasks-TaskRetryCount counts the
// earlier attempts (0 on the first). Without a valid header it is 0: unknown.
func TaskAttempt(r *http.Request) int {
	n, err := strconv.Atoi(r.Header.Get(tasks.HeaderRetryCount))
	if err != nil || n < 0 {
		return 0
	}
	return n + 1
}

func taskHandler(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error), q tasks.Queue, step func(*pipeline.Pipeline) func(context.Context, pipeline.Delivery) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p, log, err := get(ctx)
		if err != nil {
			http.Error(w, "adapter not configured", http.StatusInternalServerError)
			return
		}
		log = log.With(logging.TraceAttrs(projectOf(p), r.Header.Get("X-Cloud-Trace-Context"), r.Header.Get("traceparent"))...)
		log = log.With(slog.String("task", r.Header.Get(tasks.HeaderTaskName)))
		ctx = logging.WithLogger(ctx, log)
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			// Cloud Tasks retries any non-2xx: acknowledge what can never succeed.
			log.Error(string(q) + " task body unreadable or too large; acknowledged")
			w.WriteHeader(http.StatusOK)
			return
		}
		d := pipeline.Delivery{Body: body, Attempt: TaskAttempt(r), Name: r.Header.Get(tasks.HeaderTaskName)}
		if err := guard(ctx, log, string(q), func() error { return step(p)(ctx, d) }); err != nil {
			retryLater(ctx, log, w, string(q)+" step will be retried", err, slog.Int("attempt", d.Attempt))
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

// retryLater answers 503, so that the platform delivers the request again,
// and logs why: at WARN, or INFO when the request was cancelled.
func retryLater(ctx context.Context, log *slog.Logger, w http.ResponseWriter, msg string, err error, attrs ...any) {
	level := slog.LevelWarn
	if errors.Is(err, context.Canceled) {
		level = slog.LevelInfo
	}
	log.Log(ctx, level, msg, append([]any{slog.String("reason", err.Error())}, attrs...)...)
	http.Error(w, "retry", http.StatusServiceUnavailable)
}

// msgPanic is the ERROR logged when a step panicked.
const msgPanic = "a step panicked; answered 503 so that it is retried"

// guard runs a step so that no panic crosses the function (invariant 8): a
// panic (a bug in the adapter or in a library under it) is logged at ERROR
// with its stack, as JSON, and becomes an error, which the function answers
// with 503 so the platform retries it with backoff; a process it leaves
// behind is resumed by a retry or by the sweep. Without it the framework
// would answer 500 and print the panic as plain text.
func guard(ctx context.Context, log *slog.Logger, step string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			log.ErrorContext(ctx, msgPanic, slog.String("step", step), slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("%s step panicked: %v", step, v)
		}
	}()
	return fn()
}

// projectOf is the project for trace names.
func projectOf(p *pipeline.Pipeline) string {
	if p == nil {
		return ""
	}
	return p.Project
}
