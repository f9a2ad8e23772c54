package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/notification"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// Pacing under the API's quota.
//
// The Certificate Provisioning API has one per-project quota of requests per
// minute. A rollout starts tens of thousands of processes within minutes, far
// more than the quota serves, so the adapter admits new claims at the pace
// the quota allows and lets the work already in flight go first:
//
//   - Every queue's dispatch rate is set from the quota (QueueRates; terraform
//     sets the same numbers from api_quota_per_minute). Instances share no
//     memory, so the pacing is the queues', as in production.
//   - A claim that meets 429 (on any delivery, not only the last) is handed to
//     a task on the rate-limited claim queue (QueueClaim) and the notification
//     acknowledged: Pub/Sub's ten deliveries are not spent, and Cloud Tasks
//     keeps the task for as long as the backlog takes.
//   - A claim task that meets 429 again hands on to a fresh claim task
//     instead of spending its attempts: quota is never a process's failure.
//
// The arithmetic (README, "Rollout under quota"; terraform/tasks.tf): an
// enrollment makes about CallsPerEnrollment = 5.6 API requests: 3 by the
// claim step (get, claim, signData), about 1.6 operations.get (the first
// poll, 2 s after signData, finds most signatures of clients that sign within
// seconds) and 1 uploadCertificate. Of the quota Q (per minute),
// QuotaHeadroom is kept for the sweep, the operator command and failures; the
// rest is the budget B = Q/60 x (1 - headroom) requests per second. The claim
// queue admits B/5.6 enrollments per second, which is what the budget can
// finish. The poll and issue queues get their share first, as caps at B x
// 2/5.6 each (more than the admitted enrollments need; issue also at most the
// CA's rate), so the work in flight never waits behind new claims and a
// backlog of it drains. A claim that meets 429 anyway (the first deliveries
// of a burst come straight from Pub/Sub) waits in the claim queue.

// QuotaHeadroom is the share of the API quota kept out of the queues' rates.
const QuotaHeadroom = 0.05

// CallsPerEnrollment is how many API requests an enrollment takes, on average,
// for the claim queue's rate: measured by the rollout benchmark (CI's: 11,161
// requests served for 2,000 paced enrollments, 5.58 each; it was 6 while the
// claim step read the process twice). terraform/tasks.tf uses the same.
const CallsPerEnrollment = 5.6

// QueueRates are the dispatch rates (per second) that keep the queues, together,
// under an API quota of quotaPerMinute requests per minute, and issue under
// caPerSecond issuances per second per CA connection (0: no CA limit).
// terraform/tasks.tf computes the same from api_quota_per_minute.
func QueueRates(quotaPerMinute, caPerSecond float64) map[tasks.Queue]float64 {
	budget := quotaPerMinute / 60 * (1 - QuotaHeadroom)
	issue := budget * 2 / CallsPerEnrollment
	if caPerSecond > 0 {
		issue = math.Min(issue, caPerSecond)
	}
	return map[tasks.Queue]float64{
		tasks.QueuePoll:  budget * 2 / CallsPerEnrollment,
		tasks.QueueIssue: issue,
		tasks.QueueClaim: budget / CallsPerEnrollment,
	}
}

// isCAQuota reports whether err is a CA's throttling answer (ca.ErrThrottled):
// like the API's 429, never the process's failure.
func isCAQuota(err error) bool { return errors.Is(err, ca.ErrThrottled) }

// caQuotaLater hands an issuance throttled by the CA on the task's last
// attempt to a fresh task instead of failing the process: the call is over,
// so its lease is freed first.
func (p *Pipeline) caQuotaLater(ctx context.Context, rec *progress.Record, err error) error {
	p.freeLease(ctx, rec, "CA: "+err.Error())
	return p.continueLater(ctx, rec, err)
}

// deferClaim hands a notification whose claim met the quota (err, a 429) to
// the claim queue and acknowledges it (nil): the record is RECEIVED (with
// or without the signing intent) or CLAIMED, its lease freed by the failed
// call. In SIGNING (signData met the 429) the poll task that the failed call
// enqueued carries on. Otherwise, or when the record cannot be read, err is
// returned and Pub/Sub delivers the message again.
func (p *Pipeline) deferClaim(ctx context.Context, data []byte, err error) error {
	ev, _, derr := notification.Decode(data)
	if derr != nil {
		return err
	}
	rec, gerr := p.Store.Get(ctx, progress.Key(ev.CustomerID, ev.ProcessID))
	if gerr != nil {
		return err
	}
	ctx = withProcess(ctx, p.logger(ctx), rec.Customer, rec.ProcessID)
	switch rec.State {
	case progress.StateReceived, progress.StateClaimed:
		return p.enqueueClaim(ctx, rec, 1, err)
	case progress.StateSigning:
		return nil
	}
	return err
}

// enqueueClaim puts the n-th claim task of a chain for rec, as read after its
// claim met the quota, on the claim queue; its rate decides when it runs.
// The task is named for the record's version and n (the body carries n as
// its Attempt): two deliveries that met the same 429 enqueue one task, and
// every hand-off of a chain has a fresh name, also when the failed step
// wrote nothing (a 429 on the get before signData).
func (p *Pipeline) enqueueClaim(ctx context.Context, rec *progress.Record, n int, cause error) error {
	body, _ := json.Marshal(TaskBody{Key: rec.Key, Attempt: n})
	t := tasks.Task{Queue: tasks.QueueClaim, Name: fmt.Sprintf("claim-%s-%d-%d", taskID(rec.Key), rec.Version, n), Body: body}
	if err := p.Tasks.Enqueue(ctx, t); err != nil {
		return fmt.Errorf("%v; and handing the claim to the claim queue: %w", cause, err)
	}
	p.logger(ctx).Info("quota reached; the claim waits in the claim queue", slog.String("state", string(rec.State)), slog.Int("claim_task", n), slog.String("reason", cause.Error()))
	return nil
}

// unclaimed reports whether rec's claim step is still to do.
func unclaimed(rec *progress.Record) bool {
	return rec.State == progress.StateReceived || rec.State == progress.StateClaimed
}

// ClaimTask handles a task of the claim queue (d.Body is a TaskBody), and a
// poll task that finds the claim still to do when claims are paced (a fresh
// task after contention, a sweep's re-drive): it carries the process on from
// where it is, as Poll does. A 429 hands on to the next claim task; on
// the task's last attempt, contention goes to a fresh task and any other
// transient failure before signData is reported, as on the last delivery of
// the notification.
func (p *Pipeline) ClaimTask(ctx context.Context, d Delivery) error {
	p.init()
	tb, ok := decodeTask(d.Body)
	rec, err := p.read(ctx, tb, ok, len(d.Body), "claim")
	if rec == nil {
		return err
	}
	ctx = withProcess(ctx, p.logger(ctx), rec.Customer, rec.ProcessID)
	if p.noLongerServed(rec) {
		_, err := p.fail(ctx, rec, d.Attempt, "the customer is no longer in allowedCustomers", msgNoLongerServed)
		return err
	}
	err = p.advance(ctx, rec, d.Attempt)
	if err == nil || IsCrash(err) {
		return err
	}
	cur, gerr := p.Store.Get(ctx, rec.Key)
	if gerr != nil {
		return err
	}
	quota := isQuota(err)
	if quota && unclaimed(cur) {
		return p.enqueueClaim(ctx, cur, tb.Attempt+1, err)
	}
	if cur.State == progress.StateSigning && quota {
		return nil // the first poll task carries on
	}
	if !p.lastAttempt(d.Attempt) || (cur.State != progress.StateReceived && cur.State != progress.StateClaimed) {
		return err
	}
	if errors.Is(err, errBusy) || quota {
		return p.continueLater(ctx, cur, err)
	}
	_, ferr := p.fail(ctx, cur, d.Attempt, fmt.Sprintf("giving up after %d claim task attempts: %v", d.Attempt, err),
		"The adapter could not start this enrollment because a service was unavailable. The device will try again later.")
	return ferr
}
