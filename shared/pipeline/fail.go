package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/progress"
)

func isTransientAPI(err error) bool { return cpapi.Transient(err) }

// isQuota reports whether err is the API's or the Directory API's 429: a
// quota answer, never the process's failure.
func isQuota(err error) bool {
	var e *cpapi.Error
	return errors.As(err, &e) && e.Code == http.StatusTooManyRequests || isDirectoryQuota(err)
}

// answered reports whether the API answered err with a status: the call is
// over on its side too. A transport failure or a timeout may still be acting.
func answered(err error) bool {
	var e *cpapi.Error
	return errors.As(err, &e) && e.Code != 0
}

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
// attempt is the delivery's (Delivery.Attempt): a failure decided on the last
// attempt is reported on that attempt, not left to a retry that will not come.
func (p *Pipeline) fail(ctx context.Context, rec *progress.Record, attempt int, reason, message string) (*progress.Record, error) {
	next, err := p.markFailing(ctx, rec, reason, message)
	if err != nil || next.State.Terminal() {
		return next, err
	}
	return p.reportFailure(ctx, next, attempt)
}

// markFailing moves rec to FAILING with the reason (for the log) and the
// message (for the device); a record already FAILING keeps its first
// decision, and one that has ended is returned as it is.
func (p *Pipeline) markFailing(ctx context.Context, rec *progress.Record, reason, message string) (*progress.Record, error) {
	message = truncate(message, maxMessage)
	p.logger(ctx).Warn("process failing", slog.String("reason", reason), slog.String("state", string(rec.State)))
	next, err := p.transition(ctx, rec.Key, nonTerminal, progress.StateFailing, func(r *progress.Record) error {
		if r.State == progress.StateFailing {
			return nil // keep the first decision
		}
		r.LastError, r.FailureMessage = reason, message
		// A poll task carries the poll count where polls that found
		// nothing wrote no record: keep the count the caller knows.
		r.PollCount = max(r.PollCount, rec.PollCount)
		progress.ReleaseLease(r)
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

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// maxReportHandoffs bounds the fresh tasks that take over a failure report
// whose setFailure did not go through by a task's last attempt; after them
// the sweep keeps trying, with an ERROR log (invariant 7).
const maxReportHandoffs = 3

// reportHandoffDelay is how long a fresh report task waits.
const reportHandoffDelay = time.Minute

// MsgFailureUnreported is the ERROR logged while a failure has not reached the
// device after every bounded retry; a log-based metric alerts on it.
const MsgFailureUnreported = "failure not reported to the device"

// reportFailure calls setFailure for a record in FAILING and ends it: FAILED
// only once the device was told (setFailure accepted), or the API shows the
// process failed or gone. Otherwise the record stays FAILING: a transient
// answer is retried by the queue, and on the last attempt (or after a
// refusal) a fresh task takes over, up to maxReportHandoffs, then the sweep.
func (p *Pipeline) reportFailure(ctx context.Context, rec *progress.Record, attempt int) (*progress.Record, error) {
	if err := p.crash(ctx, rec.Key, "fail:before-setFailure"); err != nil {
		return nil, err
	}
	if !everClaimed(rec) {
		// Failed before its claim went through (an outage on every
		// delivery): the API takes setFailure only from the claimer.
		if cerr := p.API.Claim(ctx, rec.ProcessName, p.CallerID); errors.Is(cerr, cpapi.ErrClaimRefused) {
			// A delivery of ours held the claim lease (every record starts
			// with one) and may have claimed, its answer lost: as on the
			// claim path, the API may be refusing our own repeat claim.
			p.logger(ctx).Error(MsgOwnClaimRefused, slog.Int("attempts", rec.Attempts), slog.String("reason", cerr.Error()))
			return p.transition(ctx, rec.Key, []progress.State{progress.StateFailing}, progress.StateClaimedElsewhere, func(r *progress.Record) error {
				r.LastError += "; the claim before setFailure was refused: " + cerr.Error()
				return nil
			})
		} else if cerr != nil {
			if !p.lastAttempt(attempt) {
				return nil, fmt.Errorf("claim before setFailure %s: %w", rec.Key, cerr)
			}
			return nil, p.handOffReport(ctx, rec, cerr)
		}
	}
	err := p.API.SetFailure(ctx, rec.ProcessName, rec.FailureMessage)
	note := ""
	if err != nil {
		if isTransientAPI(err) && !p.lastAttempt(attempt) {
			return nil, fmt.Errorf("setFailure %s: %w", rec.Key, err)
		}
		// Refused or out of attempts: did the API fail or end the process itself?
		proc, gerr := p.API.Get(ctx, rec.ProcessName)
		switch {
		case gerr == nil && proc.FailureMessage != "":
			note = "; setFailure failed (" + err.Error() + ") but the API shows the process failed"
		case gerr == nil && proc.IssuedCertificate != "":
			note = "; setFailure failed (" + err.Error() + ") but the API shows the process finished"
		case cpapi.IsNotFound(gerr):
			note = "; setFailure failed (" + err.Error() + "): the process no longer exists"
		default:
			if gerr != nil {
				p.logger(ctx).Warn("setFailure did not go through and the process could not be read", slog.String("reason", gerr.Error()))
			}
			return nil, p.handOffReport(ctx, rec, err)
		}
	}
	if err := p.crash(ctx, rec.Key, "fail:after-setFailure"); err != nil {
		return nil, err
	}
	next, err := p.transition(ctx, rec.Key, []progress.State{progress.StateFailing}, progress.StateFailed, func(r *progress.Record) error {
		r.FailureReported = true
		r.LastError += note
		return nil
	})
	if cur, ok := stale(err); ok && cur.State.Terminal() {
		return cur, nil // a concurrent delivery ended it first: nothing left to do
	}
	return next, err
}

// everClaimed reports whether rec's claim went through.
func everClaimed(rec *progress.Record) bool {
	for _, c := range rec.History {
		if c.To == progress.StateClaimed {
			return true
		}
	}
	return false
}

// handOffReport keeps a record FAILING whose setFailure did not go through on
// this delivery's last attempt (or was refused): it records why, and a fresh
// task tries again, up to maxReportHandoffs; after them the sweep re-drives it.
// It returns nil (this delivery is over) unless the hand-off itself failed.
func (p *Pipeline) handOffReport(ctx context.Context, rec *progress.Record, cause error) error {
	next, err := p.Store.Update(ctx, rec.Key, func(r *progress.Record) error {
		if r.State != progress.StateFailing {
			return &progress.StateError{Key: r.Key, Want: []progress.State{progress.StateFailing}, Current: r.Clone()}
		}
		r.LastError = truncate(strings.SplitN(r.LastError, "; setFailure:", 2)[0]+"; setFailure: "+cause.Error(), 2000)
		r.UpdatedAt = p.Now().UTC()
		if r.ReportHandoffs < maxReportHandoffs {
			r.ReportHandoffs++
		}
		return nil
	})
	if _, ok := stale(err); ok {
		return nil // reported or ended by another delivery meanwhile
	}
	if err != nil {
		return fmt.Errorf("setFailure %s: %v; and recording it: %w", rec.Key, cause, err)
	}
	log := p.logger(ctx).With(slog.String("reason", cause.Error()), slog.Int("report_handoffs", next.ReportHandoffs), slog.Int("sweeps", next.Sweeps))
	if next.ReportHandoffs > rec.ReportHandoffs {
		t := resumeTask(next, fmt.Sprintf("report-%s-%d", taskID(next.Key), next.ReportHandoffs), p.Now().Add(reportHandoffDelay))
		if err := p.Tasks.Enqueue(ctx, t); err != nil {
			return fmt.Errorf("setFailure %s: hand off to a fresh task: %w", rec.Key, err)
		}
		log.Warn("setFailure did not go through; a fresh task tries again")
		return nil
	}
	log.Error(MsgFailureUnreported)
	return nil
}
