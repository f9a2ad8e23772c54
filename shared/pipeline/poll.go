package pipeline

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/csr"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/seal"
	"github.com/chromeos-certprov/adapter/shared/store"
)

// Poll handles one poll task (d.Body is a TaskBody): it asks whether the
// client has signed, and either enqueues the next poll or verifies the
// signature, assembles the CSR and hands over to Issue. It returns an error
// only when the queue should deliver the task again. (The scheduler's sweep
// request is not a poll task: the adapter routes it to Sweep.)
func (p *Pipeline) Poll(ctx context.Context, d Delivery) error {
	p.init()
	attempt := d.Attempt
	tb, ok := decodeTask(d.Body)
	var known *opResult
	if ok && tb.Key != "" && tb.Op != "" {
		handled, res, err := p.pollTask(ctx, tb, attempt)
		if handled {
			return err
		}
		known = res
	}
	rec, err := p.read(ctx, tb, ok, len(d.Body), "poll")
	if rec == nil {
		return err
	}
	ctx = withProcess(ctx, p.logger(ctx), rec.Customer, rec.ProcessID)
	if p.noLongerServed(rec) {
		_, err := p.fail(ctx, rec, attempt, "the customer is no longer in allowedCustomers", msgNoLongerServed)
		return err
	}
	if p.PaceClaims && unclaimed(rec) {
		return p.ClaimTask(ctx, d) // quota.go: a claim that meets 429 waits in the claim queue
	}
	if rec.State == progress.StateSigning || intended(rec) {
		// signData's answer was lost, or its caller died: the process tells
		// whether it started. This task is then the record's first poll
		// (enqueued under that poll's name), so it polls on itself:
		// enqueuing "the current poll" would be a no-op.
		next, err := p.resumeSigning(ctx, rec, attempt)
		if cur, ok := stale(err); ok {
			next, err = cur, nil
		}
		if err != nil && !IsCrash(err) && p.lastAttempt(attempt) && (errors.Is(err, errBusy) || isQuota(err)) {
			// Contention (a lease left by an earlier attempt) or quota is
			// not the process's failure: a fresh task carries on.
			return p.continueLater(ctx, rec, err)
		}
		if err != nil && !IsCrash(err) && p.lastAttempt(attempt) {
			// Nothing else resumes this record: report rather than leave
			// the process in SIGNING when the queue drops this task.
			_, ferr := p.fail(ctx, rec, attempt, fmt.Sprintf("giving up on signData after %d attempts: %v", attempt, err),
				"The adapter could not start this enrollment because a service was unavailable. The device will try again later.")
			return ferr
		}
		if err != nil || next == nil {
			return err
		}
		rec = next
	}
	if rec.State == progress.StatePolling {
		if tb.Op != "" && tb.Gen != rec.Sweeps {
			// A chain of polls that a re-drive took over.
			return nil
		}
		if tb.Op != "" && tb.Poll > rec.PollCount {
			// A chain of polls ahead of its record's last checkpoint: go
			// on from the chain's number, which names the next poll.
			rec.PollCount = tb.Poll
		}
		if tb.Poll < rec.PollCount {
			// A duplicate or stale task: make sure the current one exists.
			return p.enqueuePoll(ctx, rec, rec.NextPollAt)
		}
		return p.pollOnce(ctx, rec, attempt, known)
	}
	return p.advance(ctx, rec, attempt)
}

// opResult is what asking for the signature gave (signature's results).
type opResult struct {
	sig        []byte
	apiFailure string
	done       bool
	err        error
}

// pollTask is a poll from a task that carries its operation: it asks the
// operation first and touches the record only when there is something to
// write. A poll that finds the operation not done enqueues the next poll
// (its name keeps duplicates out) and reads nothing, unless the record is
// due its checkpoint (the sweep's liveness signal). A signature is stored
// with one transaction (its read is the step's only one). handled false
// leaves the task to the record's path, with what the operation said.
func (p *Pipeline) pollTask(ctx context.Context, tb TaskBody, attempt int) (bool, *opResult, error) {
	if p.Allowed != nil && !p.Allowed(tb.Key[:max(strings.IndexByte(tb.Key, ':'), 0)]) {
		return false, nil, nil // the record's path fails it (msgNoLongerServed)
	}
	now := p.Now().UTC()
	res := &opResult{}
	res.sig, res.apiFailure, res.done, res.err = p.signature(ctx, &progress.Record{Key: tb.Key, OperationName: tb.Op})
	switch {
	case res.err != nil && !errors.Is(res.err, errPermanent) && !p.lastAttempt(attempt):
		return true, nil, res.err
	case res.err != nil || res.apiFailure != "" || !now.Before(tb.Deadline):
		return false, res, nil
	case res.done:
		return true, nil, p.storeSignature(ctx, tb, res.sig)
	case !tb.Checkpoint.IsZero() && !now.Before(tb.Checkpoint):
		return true, nil, p.checkpoint(ctx, tb, attempt)
	}
	next := tb
	next.Poll++
	next.Release = Release
	return true, nil, p.enqueuePollTask(ctx, next, p.nextPollAt(tb.Start, tb.Since, tb.Deadline, next.Poll, now))
}

// checkpoint writes the record of a chain of polls whose checkpoint is due
// (its poll count and next poll time: its update time is the sweep's sign
// that the process is alive), then enqueues the next poll.
func (p *Pipeline) checkpoint(ctx context.Context, tb TaskBody, attempt int) error {
	now := p.Now().UTC()
	next, err := p.transition(ctx, tb.Key, []progress.State{progress.StatePolling}, progress.StatePolling, func(r *progress.Record) error {
		if r.Sweeps != tb.Gen {
			return errMoved // a re-drive took this chain over
		}
		if r.PollCount > tb.Poll {
			// A duplicate whose twin wrote first and may have died before
			// enqueuing the next poll: advance makes sure that exists.
			return &progress.StateError{Key: r.Key, Want: []progress.State{progress.StatePolling}, Current: r.Clone()}
		}
		r.PollCount = tb.Poll + 1
		r.NextPollAt = p.nextPollAt(tb.Start, tb.Since, r.Deadline, r.PollCount, now)
		return nil
	})
	if err != nil {
		return p.taskWriteError(ctx, tb, err, attempt)
	}
	if err := p.crash(ctx, tb.Key, "poll:after-advance"); err != nil {
		return err
	}
	return p.enqueuePoll(ctx, next, next.NextPollAt)
}

// taskWriteError handles the failed transition of a poll that did not read
// the record first: a record that moved on is advanced from where it is; a
// missing or unreadable one acknowledges the task, as read does.
func (p *Pipeline) taskWriteError(ctx context.Context, tb TaskBody, err error, attempt int) error {
	if cur, ok := stale(err); ok {
		return p.advance(ctx, cur, attempt)
	}
	if errors.Is(err, errMoved) || p.unreadable(ctx, "poll", tb.Key, err) {
		return nil
	}
	return err
}

// unreadable reports (and logs) whether err, from reading key for a what
// task, means the task is acknowledged: its record is missing or cannot be
// read, and no retry helps. read says the same of the task's first read.
func (p *Pipeline) unreadable(ctx context.Context, what, key string, err error) bool {
	if errors.Is(err, progress.ErrNotFound) {
		p.logger(ctx).Error(what+" task for an unknown process acknowledged", slog.String("key", truncate(key, 200)))
		return true
	}
	var se *store.Error
	if errors.As(err, &se) && !se.Transient {
		// An invalid key, a record that does not decode: no retry helps.
		p.logger(ctx).Error(what+" task acknowledged: its record cannot be read", slog.String("key", truncate(key, 200)),
			slog.String("reason", truncate(se.Err.Error(), 500)))
		return true
	}
	return false
}

// unusable is a signature that cannot be used: the process fails with it.
type unusable struct {
	reason, message string
	rec             *progress.Record
}

func (e *unusable) Error() string { return e.reason }

// storeSignature hands the client's signature over to Issue: an issue task
// that carries it (and the poll's number and chain), for the issue step to
// verify, assemble and store in the write that takes the CA's lease. The
// signature costs no write of its own; until that write the record stays in
// POLLING, where a lost hand-off is found by the sweep, whose re-driven poll
// finds the signature again.
func (p *Pipeline) storeSignature(ctx context.Context, tb TaskBody, sig []byte) error {
	if err := p.crash(ctx, tb.Key, "poll:after-signed"); err != nil {
		return err
	}
	it := TaskBody{Key: tb.Key, Poll: tb.Poll, Gen: tb.Gen, Sig: sig, SignedAt: p.Now().UTC(), Release: Release}
	return p.enqueueIssueTask(ctx, it, time.Time{})
}

// assemble verifies sig against r's key and request and returns the CSR
// (sealed when r's request is), or why it cannot be used.
func (p *Pipeline) assemble(r *progress.Record, sig []byte) ([]byte, *unusable) {
	bad := func(reason, message string) *unusable { return &unusable{reason, message, r.Clone()} }
	signData, err := p.plain(r.Key, r.SignData)
	if err != nil {
		return nil, bad("open the signData bytes: "+err.Error(), "The adapter could not read its own request. Contact your administrator.")
	}
	// Nothing goes to the CA unless the client's signature verifies.
	if err := csr.Verify(r.SPKI, signData, sig, r.SignatureAlgorithm); err != nil {
		return nil, bad("the client's signature does not verify: "+err.Error(),
			"This device's signature did not verify, so no certificate was requested. Try again; if it repeats, contact your administrator.")
	}
	der, err := csr.Assemble(signData, sig, r.SignatureAlgorithm)
	if err != nil {
		return nil, bad("assemble the CSR: "+err.Error(), "The certificate request could not be assembled. Contact your administrator.")
	}
	if der, err = p.protect(r.Key, der, seal.Sealed(r.SignData)); err != nil {
		return nil, bad("seal the CSR: "+err.Error(), "The adapter could not keep the request safe. Contact your administrator.")
	}
	return der, nil
}

// decodeTask decodes a task body; false when it is not JSON.
func decodeTask(body []byte) (TaskBody, bool) {
	var tb TaskBody
	err := json.Unmarshal(body, &tb)
	return tb, err == nil
}

// read reads the record of a decoded task body (ok: it decoded; size: the
// body's, for the log). A nil record with a nil error means the task is
// acknowledged (malformed or unknown).
func (p *Pipeline) read(ctx context.Context, tb TaskBody, ok bool, size int, what string) (*progress.Record, error) {
	if !ok || tb.Key == "" {
		p.logger(ctx).Error("malformed "+what+" task acknowledged", slog.Int("size", size))
		return nil, nil
	}
	rec, err := p.Store.Get(ctx, tb.Key)
	if p.unreadable(ctx, what, tb.Key, err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: read progress: %w", what, tb.Key, err)
	}
	return rec, nil
}

// msgNoLongerServed is what the device of a customer removed from
// allowedCustomers is told about its process in flight.
const msgNoLongerServed = "This organization is no longer served by this certificate adapter, so the certificate request was stopped. Contact your administrator."

// noLongerServed reports whether rec's customer was removed from
// allowedCustomers while its process was in flight: the process is failed
// with msgNoLongerServed (unless it is failing already, or has ended).
func (p *Pipeline) noLongerServed(rec *progress.Record) bool {
	return p.Allowed != nil && !p.Allowed(rec.Customer) && !rec.State.Terminal() && rec.State != progress.StateFailing
}

// continueLater hands a record's work to a fresh poll task when this
// delivery met contention or a quota answer on its last attempt: neither is
// the process's failure (invariant 7). The record notes why (so the name of
// the next hand-off differs), and the task runs once the lease has passed
// (or a minute from now). A task in RECEIVED to POLLING resumes through Poll.
func (p *Pipeline) continueLater(ctx context.Context, rec *progress.Record, cause error) error {
	now := p.Now().UTC()
	next, err := p.Store.Update(ctx, rec.Key, func(r *progress.Record) error {
		if r.State.Terminal() {
			return errMoved
		}
		r.LastError = "continued in a fresh task after: " + truncate(cause.Error(), 500)
		r.UpdatedAt = now
		return nil
	})
	if errors.Is(err, errMoved) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%v; and handing on to a fresh task: %w", cause, err)
	}
	at := now.Add(time.Minute)
	if next.LeaseUntil.After(now) {
		at = next.LeaseUntil.Add(time.Second)
	}
	t := resumeTask(next, fmt.Sprintf("continue-%s-%d", taskID(next.Key), next.Version), at)
	if err := p.Tasks.Enqueue(ctx, t); err != nil {
		return fmt.Errorf("%v; and handing on to a fresh task: %w", cause, err)
	}
	p.logger(ctx).Warn("contention or quota on the last attempt; a fresh task carries on",
		slog.String("state", string(next.State)), slog.String("reason", cause.Error()), slog.Time("at", at))
	return nil
}

func (p *Pipeline) pollOnce(ctx context.Context, rec *progress.Record, attempt int, known *opResult) error {
	ctx = withProcess(ctx, p.logger(ctx), rec.Customer, rec.ProcessID)
	now := p.Now().UTC()
	// The poll at the deadline asks once more: a signature that arrived since
	// the last poll is still used. (A poll task that asked already says so.)
	if known == nil {
		known = &opResult{}
		known.sig, known.apiFailure, known.done, known.err = p.signature(ctx, rec)
	}
	sig, apiFailure, done, err := known.sig, known.apiFailure, known.done, known.err
	if err != nil {
		if !errors.Is(err, errPermanent) && !p.lastAttempt(attempt) {
			return err
		}
		if errors.Is(err, errPermanent) {
			_, ferr := p.fail(ctx, rec, attempt, err.Error(), "The certificate provisioning service returned an unreadable answer. Contact your administrator.")
			return ferr
		}
		// The last attempt of this task: carry on with the next poll instead.
		p.logger(ctx).Warn("poll failed on its last attempt; scheduling the next poll", slog.String("reason", err.Error()))
		done = false
	}
	if apiFailure != "" {
		_, err := p.apiFailed(ctx, rec, apiFailure)
		return err
	}
	if !done {
		if !now.Before(rec.Deadline) {
			rec.PollCount++ // this poll: the failure records every poll made
			_, err := p.fail(ctx, rec, attempt, fmt.Sprintf("no signature after %d polls by the deadline %s", rec.PollCount, rec.Deadline.Format(time.RFC3339)),
				"This device did not answer the certificate request in time. Make sure it is online and signed in, then try again.")
			return err
		}
		n := rec.PollCount
		next, err := p.transition(ctx, rec.Key, []progress.State{progress.StatePolling}, progress.StatePolling, func(r *progress.Record) error {
			if r.PollCount > n {
				return &progress.StateError{Key: r.Key, Want: []progress.State{progress.StatePolling}, Current: r.Clone()}
			}
			r.PollCount = n + 1
			r.NextPollAt = p.nextPoll(r, r.PollCount, now)
			return nil
		})
		if err != nil {
			if cur, ok := stale(err); ok {
				// A duplicate delivery advanced it and may have died before
				// enqueuing the next poll: make sure that exists.
				return p.advance(ctx, cur, attempt)
			}
			return err
		}
		if err := p.crash(ctx, rec.Key, "poll:after-advance"); err != nil {
			return err
		}
		return p.enqueuePoll(ctx, next, next.NextPollAt)
	}
	return p.storeSignature(ctx, TaskBody{Key: rec.Key, Poll: rec.PollCount, Gen: rec.Sweeps}, sig)
}

var errPermanent = errors.New("permanent")

// signature asks the operation (or, when its name was lost, the process) for
// the client's signature.
func (p *Pipeline) signature(ctx context.Context, rec *progress.Record) (sig []byte, apiFailure string, done bool, err error) {
	if rec.OperationName != "" {
		op, err := p.API.GetOperation(ctx, rec.OperationName)
		if err != nil {
			if !isTransientAPI(err) {
				return nil, "", false, fmt.Errorf("%w: operations.get: %v", errPermanent, err)
			}
			return nil, "", false, fmt.Errorf("operations.get %s: %w", rec.Key, err)
		}
		if !op.Done {
			return nil, "", false, nil
		}
		if op.ErrorMessage != "" || op.ErrorCode != 0 {
			msg := op.ErrorMessage
			if msg == "" {
				msg = fmt.Sprintf("signData failed with code %d", op.ErrorCode)
			}
			return nil, msg, true, nil
		}
		return op.Signature, "", true, nil
	}
	proc, err := p.API.Get(ctx, rec.ProcessName)
	if err != nil {
		if !isTransientAPI(err) {
			return nil, "", false, fmt.Errorf("%w: get process: %v", errPermanent, err)
		}
		return nil, "", false, fmt.Errorf("get process %s: %w", rec.Key, err)
	}
	if proc.FailureMessage != "" {
		return nil, proc.FailureMessage, true, nil
	}
	if proc.Signature == "" {
		return nil, "", false, nil
	}
	sig, err = base64.StdEncoding.DecodeString(proc.Signature)
	if err != nil {
		return nil, "", false, fmt.Errorf("%w: the process's signature is not base64", errPermanent)
	}
	return sig, "", true, nil
}
