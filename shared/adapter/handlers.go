// Package adapter connects the pipeline to its platform: it builds the pipeline
// from the environment (the API client, Firestore, Cloud Tasks, the CA
// connectors) and turns Pub/Sub events and Cloud Tasks requests into pipeline
// steps, answering so that only transient failures are retried.
package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// maxBody bounds a task body; ours are under 200 bytes.
const maxBody = 64 << 10

// pubsubMessage is the data of a google.cloud.pubsub.topic.v1.messagePublished event.
type pubsubMessage struct {
	Message struct {
		Data            []byte            `json:"data"`
		Attributes      map[string]string `json:"attributes"`
		MessageID       string            `json:"messageId"`
		DeliveryAttempt *int              `json:"deliveryAttempt"`
	} `json:"message"`
	Subscription string `json:"subscription"`
	// DeliveryAttempt is set when the subscription has a dead-letter policy.
	DeliveryAttempt *int `json:"deliveryAttempt"`
}

// Claim returns the CloudEvent function: it decodes the Pub/Sub message and
// runs the claim step. get returns the pipeline (built once per instance).
func Claim(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) func(context.Context, event.Event) error {
	return func(ctx context.Context, e event.Event) error {
		p, log, err := get(ctx)
		if err != nil {
			return err // a broken deployment: keep the message until it is fixed
		}
		if tp, ok := e.Extensions()["traceparent"].(string); ok {
			log = log.With(logging.TraceAttrs(projectOf(p), "", tp)...)
		}
		log = log.With(slog.String("event_id", e.ID()))
		ctx = logging.WithLogger(ctx, log)
		var m pubsubMessage
		if err := json.Unmarshal(e.Data(), &m); err != nil {
			log.Error("event is not a Pub/Sub message; acknowledged", slog.String("reason", err.Error()), slog.String("type", e.Type()))
			return nil
		}
		if m.Message.MessageID != "" {
			ctx = logging.WithLogger(ctx, log.With(slog.String("message_id", m.Message.MessageID)))
		}
		attempt := 0
		if m.Message.DeliveryAttempt != nil {
			attempt = *m.Message.DeliveryAttempt
		} else if m.DeliveryAttempt != nil {
			attempt = *m.DeliveryAttempt
		}
		err = p.ClaimDelivery(ctx, m.Message.Data, attempt)
		if err != nil {
			logging.From(ctx).Warn("claim step will be retried", slog.String("reason", err.Error()))
		}
		return err
	}
}

// Poll returns the HTTP function for poll tasks.
func Poll(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) http.HandlerFunc {
	return taskHandler(get, tasks.QueuePoll, func(p *pipeline.Pipeline) func(context.Context, []byte, int) error { return p.Poll })
}

// Issue returns the HTTP function for issue tasks.
func Issue(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) http.HandlerFunc {
	return taskHandler(get, tasks.QueueIssue, func(p *pipeline.Pipeline) func(context.Context, []byte, int) error { return p.Issue })
}

func taskHandler(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error), q tasks.Queue, step func(*pipeline.Pipeline) func(context.Context, []byte, int) error) http.HandlerFunc {
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
		retry := tasks.RetryCount(r)
		if err := step(p)(ctx, body, retry); err != nil {
			level := slog.LevelWarn
			if errors.Is(err, context.Canceled) {
				level = slog.LevelInfo
			}
			log.Log(ctx, level, string(q)+" step will be retried", slog.String("reason", err.Error()), slog.Int("retry", retry))
			http.Error(w, "retry", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

// projectOf is the project for trace names.
func projectOf(p *pipeline.Pipeline) string {
	if p == nil {
		return ""
	}
	return p.Project
}
