package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/progress"
)

func isTransientAPI(err error) bool { return cpapi.Transient(err) }

func isPermanentCA(err error) bool { return ca.KindOf(err) == ca.Permanent }

func userMessage(err error, def string) string {
	var ce *ca.Error
	if errors.As(err, &ce) && ce.UserMessage != "" {
		return ce.UserMessage
	}
	return def
}

// maxMessage bounds the device message.
const maxMessage = 500

// fail decides a permanent failure: it records the reason (for the log) and
// the message (for the device), then reports it with setFailure.
func (p *Pipeline) fail(ctx context.Context, rec *progress.Record, reason, message string) (*progress.Record, error) {
	next, err := p.markFailing(ctx, rec, reason, message)
	if err != nil || next.State.Terminal() {
		return next, err
	}
	return p.reportFailure(ctx, next, retryOf(ctx))
}

// markFailing moves rec to FAILING with the reason (for the log) and the
// message (for the device); a record already FAILING keeps its first
// decision, and one that has ended is returned as it is.
func (p *Pipeline) markFailing(ctx context.Context, rec *progress.Record, reason, message string) (*progress.Record, error) {
	if len(message) > maxMessage {
		message = message[:maxMessage-3] + "..."
	}
	p.logger(ctx).Warn("process failing", slog.String("reason", reason), slog.String("state", string(rec.State)))
	next, err := p.transition(ctx, rec.Key, nonTerminal, progress.StateFailing, func(r *progress.Record) error {
		if r.State == progress.StateFailing {
			return nil // keep the first decision
		}
		r.LastError, r.FailureMessage = reason, message
		r.LeaseUntil = time.Time{}
		return nil
	})
	if err != nil {
		if cur, ok := stale(err); ok && cur.State.Terminal() {
			return cur, nil
		}
		return nil, err
	}
	return next, nil
}

// retryKey carries the delivery's retry count to fail, which the steps reach
// from many places: a failure decided on the last attempt is reported on that
// attempt, not left to a retry that will not come.
type retryKey struct{}

func withRetry(ctx context.Context, retry int) context.Context {
	return context.WithValue(ctx, retryKey{}, retry)
}

func retryOf(ctx context.Context) int {
	r, _ := ctx.Value(retryKey{}).(int)
	return r
}

// reportFailure calls setFailure for a record in FAILING and ends it.
func (p *Pipeline) reportFailure(ctx context.Context, rec *progress.Record, retry int) (*progress.Record, error) {
	if err := p.crash("fail:before-setFailure"); err != nil {
		return nil, err
	}
	err := p.API.SetFailure(ctx, rec.ProcessName, rec.FailureMessage)
	reported := err == nil
	if err != nil {
		if isTransientAPI(err) && !p.lastAttempt(retry) {
			return nil, fmt.Errorf("setFailure %s: %w", rec.Key, err)
		}
		// Refused or out of attempts: did the API fail the process itself?
		if proc, gerr := p.API.Get(ctx, rec.ProcessName); gerr == nil && proc.FailureMessage != "" {
			reported = true
		} else {
			p.logger(ctx).Error("setFailure failed; the device was not told", slog.String("reason", err.Error()))
		}
	}
	if err := p.crash("fail:after-setFailure"); err != nil {
		return nil, err
	}
	return p.transition(ctx, rec.Key, []progress.State{progress.StateFailing}, progress.StateFailed, func(r *progress.Record) error {
		r.FailureReported = reported
		if !reported {
			r.LastError += "; setFailure failed: " + err.Error()
		}
		return nil
	})
}
