package pipeline

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/csr"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/notification"
	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/progress"
)

// Claim handles one Pub/Sub notification (d.Body is the message's data): it
// reads the process, claims it, builds what the client signs and calls
// signData, recording each step first. It returns an error only when Pub/Sub
// should deliver the message again. Pub/Sub numbers deliveries when the
// subscription has a dead-letter policy; on the last one (MaxAttempts) a
// transient failure before signData is reported to the device instead of
// being left to the dead-letter topic, so no process waits forever.
func (p *Pipeline) Claim(ctx context.Context, d Delivery) error {
	p.init()
	attempt := d.Attempt
	err := p.claim(ctx, d.Body, attempt)
	if err != nil && !IsCrash(err) && p.PaceClaims && isQuota(err) {
		return p.deferClaim(ctx, d.Body, err) // quota.go
	}
	if err == nil || IsCrash(err) || !p.lastAttempt(attempt) {
		return err
	}
	ev, _, derr := notification.Decode(d.Body)
	if derr != nil {
		return err
	}
	rec, gerr := p.Store.Get(ctx, progress.Key(ev.CustomerID, ev.ProcessID))
	if gerr != nil {
		p.logger(ctx).Warn("last delivery: could not read the record to report or hand on its failure; the sweep resumes it",
			slog.String("process_id", ev.ProcessID), slog.String("customer", ev.CustomerID),
			slog.String("reason", gerr.Error()), slog.String("delivery_error", err.Error()))
		return err
	}
	if rec.State != progress.StateReceived && rec.State != progress.StateClaimed {
		return err // later states have a durable poll task that carries on
	}
	ctx = withProcess(ctx, p.logger(ctx), rec.Customer, rec.ProcessID)
	if errors.Is(err, errBusy) || isQuota(err) {
		// Contention and quota are not the process's failure: a fresh
		// task carries the claim on instead of the dead-letter topic.
		return p.continueLater(ctx, rec, err)
	}
	_, ferr := p.fail(ctx, rec, attempt, fmt.Sprintf("giving up after %d deliveries: %v", attempt, err),
		"The adapter could not start this enrollment because a service was unavailable. The device will try again later.")
	return ferr
}

func (p *Pipeline) claim(ctx context.Context, data []byte, attempt int) error {
	ev, format, err := notification.Decode(data)
	if err != nil {
		// A malformed message never gets better: acknowledge it.
		p.logger(ctx).Error("malformed notification acknowledged", slog.String("reason", err.Error()), slog.Int("size", len(data)))
		return nil
	}
	ctx = withProcess(ctx, p.logger(ctx), ev.CustomerID, ev.ProcessID)
	if p.Allowed == nil || !p.Allowed(ev.CustomerID) {
		p.logger(ctx).Warn("notification for a customer not in allowedCustomers acknowledged")
		return nil
	}
	key := progress.Key(ev.CustomerID, ev.ProcessID)
	// A process seen before goes on from its record, with no call.
	rec, err := p.Store.Get(ctx, key)
	switch {
	case err == nil:
		p.logger(ctx).Info("notification for a known process", slog.String("state", string(rec.State)))
		return p.carryOn(ctx, rec, attempt)
	case !errors.Is(err, progress.ErrNotFound):
		return fmt.Errorf("claim %s: read progress: %w", key, err)
	}
	return p.start(ctx, ev, format, attempt)
}

// start begins a process the store has not seen. It reads the process and
// plans the request first, so that the record is created with the signing
// intent and the bytes (in RECEIVED: nothing is claimed yet) under the lease
// of this delivery, which then claims the process and calls signData; the
// outcome is the record's next write (RECEIVED, CLAIMED, SIGNING, POLLING,
// with the operation). A process that cannot be planned (failed, gone, a
// configuration error, a failed call) gets a plain RECEIVED record and goes
// step by step, as a retry does. The record's creation is the claim's lease:
// a duplicate delivered meanwhile finds it and backs off.
func (p *Pipeline) start(ctx context.Context, ev notification.Event, format notification.Format, attempt int) error {
	key := progress.Key(ev.CustomerID, ev.ProcessID)
	now := p.Now().UTC()
	fresh := progress.New(ev.CustomerID, ev.ProcessID, ev.Name(), now)
	proc, gerr := p.API.Get(ctx, ev.Name())
	intent := false
	var pre *planned
	if gerr == nil && proc.FailureMessage == "" {
		pl, err := p.plan(ctx, fresh, proc)
		pre = &planned{pl, err}
		if err == nil {
			if stored, err := p.protect(key, pl.signData, pl.secret); err == nil {
				p.setIntent(fresh, proc, pl, stored, now)
				intent = true
			}
		}
	}
	holder := "claim"
	if intent {
		holder = "sign"
	}
	if gerr == nil {
		// A call follows under this delivery's lease (none when the read
		// failed: the error goes back to Pub/Sub or the claim queue).
		if err := progress.AcquireLease(fresh, newHolder(holder), now, p.Lease); err != nil {
			return fmt.Errorf("claim %s: %w", key, err)
		}
	}
	rec, err := p.Store.Create(ctx, fresh)
	switch {
	case errors.Is(err, progress.ErrExists):
		if rec, err = p.Store.Get(ctx, key); err != nil {
			return fmt.Errorf("claim %s: read progress: %w", key, err)
		}
		p.logger(ctx).Info("notification for a known process", slog.String("state", string(rec.State)))
		return p.carryOn(ctx, rec, attempt)
	case err != nil:
		return fmt.Errorf("claim %s: create progress: %w", key, err)
	}
	p.logger(ctx).Info("state transition", slog.String("state", string(progress.StateReceived)), slog.String("format", string(format)))
	if err := p.crash(ctx, key, "claim:after-create"); err != nil {
		return err
	}
	var next *progress.Record
	switch {
	case gerr != nil:
		next, err = p.getFailed(ctx, rec, attempt, gerr)
	case intent:
		next, err = p.claimAndSign(ctx, rec, proc, attempt)
	default:
		next, err = p.claimProcess(ctx, rec, proc, pre, attempt)
	}
	if err != nil || next == nil {
		return err
	}
	return p.advance(ctx, next, attempt)
}

// carryOn drives a known process on from a notification delivered again. A
// record created with the signing intent whose delivery still holds the
// lease (it is calling the API, or died doing so) is left to a poll task,
// which resumes it once the lease has passed, rather than contending for the
// lease until Pub/Sub gives up on the notification; the task is named as the
// first poll, which the delivery enqueues if it lives.
func (p *Pipeline) carryOn(ctx context.Context, rec *progress.Record, attempt int) error {
	if intended(rec) && rec.Leased(p.Now()) {
		return p.enqueuePoll(ctx, rec, rec.LeaseUntil.Add(time.Second))
	}
	return p.advance(ctx, rec, attempt)
}

// setIntent records in r (a new record, or one in RECEIVED or CLAIMED being
// moved to SIGNING) what signData is asked for, before the call: the plan
// from proc and the bytes (stored: sealed when they hold a secret).
func (p *Pipeline) setIntent(r *progress.Record, proc *cpapi.Process, pl *plan, stored []byte, now time.Time) {
	r.CAConnectionRef, r.ProfileRef = pl.caRef, pl.profileRef
	setSubject(r, proc) // also for a record claimed by an earlier release
	r.SPKI, r.KeyType, r.SignatureAlgorithm = pl.spki, string(pl.keyType), pl.algorithm
	if t, err := time.Parse(time.RFC3339Nano, proc.StartTime); err == nil {
		r.ProcessStart = t.UTC()
	}
	r.SignData = stored
	r.ChallengeExpiresAt = pl.challengeExpires
	r.RequestID = RequestID(r.Key)
	r.SignDataCalls++
	r.Deadline = now.Add(p.Schedule.Deadline)
	r.NextPollAt = p.nextPoll(r, 0, now)
}

// intended reports whether rec is a RECEIVED record created with the signing
// intent: its delivery may have claimed the process and called signData.
func intended(rec *progress.Record) bool {
	return rec.State == progress.StateReceived && len(rec.SignData) > 0
}

// claimAndSign claims the process of rec (in RECEIVED with the signing
// intent, under this delivery's lease) and calls signData.
func (p *Pipeline) claimAndSign(ctx context.Context, rec *progress.Record, proc *cpapi.Process, attempt int) (*progress.Record, error) {
	if ok, next, err := p.makeClaim(ctx, rec, proc, attempt); !ok {
		return next, err
	}
	return p.callSignData(ctx, rec, attempt)
}

// withProcess returns ctx with a logger that names the process, once: a ctx
// whose logger names it already is returned as it is.
func withProcess(ctx context.Context, l *slog.Logger, customer, process string) context.Context {
	key := progress.Key(customer, process)
	if named(ctx, key) {
		return ctx
	}
	ctx = logging.WithLogger(ctx, l.With(slog.String("process_id", process), slog.String("customer", customer)))
	return context.WithValue(ctx, namedKey{}, key)
}

// namedKey marks a context whose logger names a process (by its record key).
type namedKey struct{}

// named reports whether ctx's logger names the process of record key key.
func named(ctx context.Context, key string) bool {
	k, _ := ctx.Value(namedKey{}).(string)
	return k == key
}

// advance drives rec forward from whatever state it is in, as far as this
// delivery can take it. attempt is the delivery's (Delivery.Attempt).
func (p *Pipeline) advance(ctx context.Context, rec *progress.Record, attempt int) error {
	for range 16 { // each step moves the state on; the bound guards against a bug looping
		var next *progress.Record
		var err error
		switch rec.State {
		case progress.StateReceived:
			next, err = p.retryClaim(ctx, rec, attempt)
		case progress.StateClaimed:
			next, err = p.startSigning(ctx, rec, attempt)
		case progress.StateSigning:
			// The first poll task resumes a record left in SIGNING. It is
			// enqueued right after the transition, so a delivery that died
			// in between left none: make sure it exists (a no-op if it does)
			// and leave the rest to it, rather than contend for the lease
			// until Pub/Sub gives up on the notification.
			return p.enqueuePoll(ctx, rec, rec.NextPollAt)
		case progress.StatePolling:
			// The poll task carries on; make sure it exists (a no-op if it does).
			return p.enqueuePoll(ctx, rec, rec.NextPollAt)
		case progress.StateSigned, progress.StateIssuing, progress.StateIssued:
			return p.enqueueIssue(ctx, rec, time.Time{})
		case progress.StateFailing:
			_, err = p.reportFailure(ctx, rec, attempt)
			return err
		default:
			return nil // terminal: a duplicate
		}
		if err != nil {
			if cur, ok := stale(err); ok {
				rec = cur // someone else moved it: carry on from there
				continue
			}
			return err
		}
		if next == nil || next.State == rec.State {
			return nil
		}
		rec = next
	}
	return fmt.Errorf("advance %s: too many steps", rec.Key)
}

// retryClaim takes over a claim whose first delivery died (its lease passed).
func (p *Pipeline) retryClaim(ctx context.Context, rec *progress.Record, attempt int) (*progress.Record, error) {
	now := p.Now().UTC()
	if rec.Leased(now) {
		return nil, errBusy
	}
	if intended(rec) {
		return p.resumeSigning(ctx, rec, attempt)
	}
	holder := newHolder("claim")
	rec, err := p.transition(ctx, rec.Key, []progress.State{progress.StateReceived}, progress.StateReceived, func(r *progress.Record) error {
		if err := p.takeLease(r, holder, now); err != nil {
			return err
		}
		r.Attempts++
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p.claimProcess(ctx, rec, nil, nil, attempt)
}

// planned is a plan made before the claim, or why it could not be made.
type planned struct {
	pl  *plan
	err error
}

// claimProcess claims the process of rec (in RECEIVED, under the claim
// lease), reading it first unless proc is given, then plans the request
// (unless pre holds the plan made from proc already) and calls signData.
func (p *Pipeline) claimProcess(ctx context.Context, rec *progress.Record, proc *cpapi.Process, pre *planned, attempt int) (*progress.Record, error) {
	if proc == nil {
		var err error
		if proc, err = p.API.Get(ctx, rec.ProcessName); err != nil {
			return p.getFailed(ctx, rec, attempt, err)
		}
	}
	if proc.FailureMessage != "" {
		return p.transition(ctx, rec.Key, []progress.State{progress.StateReceived}, progress.StateFailed, func(r *progress.Record) error {
			r.FailureMessage, r.FailureReported = proc.FailureMessage, true
			r.LastError = "the process had already failed"
			setSubject(r, proc)
			return nil
		})
	}
	if ok, next, err := p.makeClaim(ctx, rec, proc, attempt); !ok {
		return next, err
	}
	// The process just read is the one to plan from: claiming it changes
	// nothing the plan reads, so no second get. The claim and the signing
	// intent are then one write (RECEIVED, CLAIMED, SIGNING).
	return p.sign(ctx, rec, proc, pre, attempt)
}

// makeClaim claims the process of rec (in RECEIVED, under this delivery's
// lease). ok is false when the claim did not go through (refused: next, in
// CLAIMED_ELSEWHERE; or an error) or the delivery was made to die.
func (p *Pipeline) makeClaim(ctx context.Context, rec *progress.Record, proc *cpapi.Process, attempt int) (ok bool, next *progress.Record, err error) {
	if err := p.crash(ctx, rec.Key, "claim:before-claim"); err != nil {
		return false, nil, err
	}
	if err := p.API.Claim(ctx, rec.ProcessName, p.CallerID); err != nil {
		next, err := p.claimFailed(ctx, rec, proc, attempt, err)
		return false, next, err
	}
	p.logger(ctx).Info("process claimed", processIdentity(proc)...)
	if err := p.crash(ctx, rec.Key, "claim:after-claim"); err != nil {
		return false, nil, err
	}
	return true, nil, nil
}

// getFailed handles a failed read of the process of rec (in RECEIVED): a
// process that does not exist ends the record; any other error is apiError's.
func (p *Pipeline) getFailed(ctx context.Context, rec *progress.Record, attempt int, err error) (*progress.Record, error) {
	if cpapi.IsNotFound(err) {
		return p.transition(ctx, rec.Key, []progress.State{progress.StateReceived}, progress.StateFailed, func(r *progress.Record) error {
			r.LastError = "the process does not exist: " + err.Error()
			r.FailureReported = true // nothing to report to
			return nil
		})
	}
	return nil, p.claimAPIError(ctx, rec, attempt, "get process", err)
}

// claimFailed handles a claim of rec's process (rec in RECEIVED) that the API
// did not accept: a refusal leaves the process to the adapter that holds it.
func (p *Pipeline) claimFailed(ctx context.Context, rec *progress.Record, proc *cpapi.Process, attempt int, err error) (*progress.Record, error) {
	if !errors.Is(err, cpapi.ErrClaimRefused) {
		return nil, p.claimAPIError(ctx, rec, attempt, "claim", err)
	}
	if rec.Attempts > 1 {
		// An earlier delivery of ours held this claim's lease and may have
		// claimed the process, its answer lost: the API may be refusing
		// our own repeat claim. Another adapter may hold it too, so it is
		// left alone, but a person must look.
		p.logger(ctx).Error(MsgOwnClaimRefused, slog.Int("attempts", rec.Attempts), slog.String("reason", err.Error()))
	}
	return p.transition(ctx, rec.Key, []progress.State{progress.StateReceived}, progress.StateClaimedElsewhere, func(r *progress.Record) error {
		r.LastError = err.Error()
		setSubject(r, proc)
		return nil
	})
}

// claimed records the claim alone (RECEIVED to CLAIMED), when the signing
// intent cannot follow in the same write: planning met a transient failure.
func (p *Pipeline) claimed(ctx context.Context, rec *progress.Record, proc *cpapi.Process) (*progress.Record, error) {
	return p.transition(ctx, rec.Key, []progress.State{progress.StateReceived}, progress.StateClaimed, func(r *progress.Record) error {
		progress.ReleaseLease(r)
		setSubject(r, proc)
		return nil
	})
}

// failAfterClaim fails rec for a permanent problem found after this delivery
// claimed its process (rec still RECEIVED): the claim is recorded first, so
// that the report does not claim again before setFailure (an API that
// refuses a repeat claim by the same caller would leave the device untold).
func (p *Pipeline) failAfterClaim(ctx context.Context, rec *progress.Record, proc *cpapi.Process, attempt int, reason, message string) error {
	if rec.State == progress.StateReceived {
		next, err := p.claimed(ctx, rec, proc)
		if err != nil {
			return fmt.Errorf("%s; and recording the claim: %w", reason, err)
		}
		rec = next
	}
	_, err := p.fail(ctx, rec, attempt, reason, message)
	return err
}

// claimAPIError is apiError for a call made under the claim lease: a
// transient failure frees the lease, since the call is over (invariant 9),
// so that the next delivery may act at once.
func (p *Pipeline) claimAPIError(ctx context.Context, rec *progress.Record, attempt int, what string, err error) error {
	if cpapi.Transient(err) && rec.LeaseHolder != "" {
		p.freeLease(ctx, rec, what+": "+err.Error())
	}
	return p.apiError(ctx, rec, attempt, what, err)
}

// apiError turns an API failure into a retry (transient) or a permanent failure.
func (p *Pipeline) apiError(ctx context.Context, rec *progress.Record, attempt int, what string, err error) error {
	if cpapi.Transient(err) {
		return fmt.Errorf("%s %s: %w", what, rec.Key, err)
	}
	// A 4xx from the API on our own request: nothing a retry can change.
	_, ferr := p.fail(ctx, rec, attempt, fmt.Sprintf("%s: %v", what, err), "The certificate provisioning service refused a request from the adapter. Contact your administrator.")
	return ferr
}

// startSigning resolves the configuration for the process, builds the CSR body
// and calls signData once, recording the intent and the bytes first.
func (p *Pipeline) startSigning(ctx context.Context, rec *progress.Record, attempt int) (*progress.Record, error) {
	proc, err := p.API.Get(ctx, rec.ProcessName)
	if err != nil {
		return nil, p.apiError(ctx, rec, attempt, "get process", err)
	}
	return p.sign(ctx, rec, proc, nil, attempt)
}

// sign plans the request from proc for a record in CLAIMED, or in RECEIVED
// under the claim lease right after the claim (the claim is then recorded in
// the same write as the signing intent), and calls signData once.
func (p *Pipeline) sign(ctx context.Context, rec *progress.Record, proc *cpapi.Process, pre *planned, attempt int) (*progress.Record, error) {
	if pre == nil {
		pl, err := p.plan(ctx, rec, proc)
		pre = &planned{pl, err}
	}
	plan, perr := pre.pl, pre.err
	if perr != nil {
		var pe *planError
		if errors.As(perr, &pe) {
			return nil, p.failAfterClaim(ctx, rec, proc, attempt, pe.reason, pe.message)
		}
		if rec.State == progress.StateReceived {
			// The claim went through: record it (and free its lease), so
			// that the retry plans again instead of claiming again.
			if _, err := p.claimed(ctx, rec, proc); err != nil {
				return nil, fmt.Errorf("%v; and recording the claim: %w", perr, err)
			}
		}
		return nil, perr // transient (e.g. fetching a SCEP challenge)
	}
	stored, err := p.protect(rec.Key, plan.signData, plan.secret)
	if err != nil {
		return nil, p.failAfterClaim(ctx, rec, proc, attempt, err.Error(), "The adapter is not configured to keep enrollment challenges safe. Contact your administrator.")
	}
	now := p.Now().UTC()
	holder := newHolder("sign")
	from, path := []progress.State{progress.StateClaimed}, []progress.State{progress.StateSigning}
	if rec.State == progress.StateReceived {
		from, path = []progress.State{progress.StateReceived}, []progress.State{progress.StateClaimed, progress.StateSigning}
	}
	claimHolder := rec.LeaseHolder
	rec, err = p.transitionPath(ctx, rec.Key, from, path, func(r *progress.Record) error {
		if r.State == progress.StateReceived && r.LeaseHolder == claimHolder {
			progress.ReleaseLease(r) // the claim's call is over; its lease becomes signData's
		}
		if err := p.takeLease(r, holder, now); err != nil {
			return err
		}
		p.setIntent(r, proc, plan, stored, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The first poll is enqueued after signData (advance, from POLLING), so
	// that it carries the operation. Until then the notification is the
	// durable hand-off: if this instance dies now, Pub/Sub delivers it again
	// and advance enqueues the poll that resumes SIGNING (and the sweep
	// finds a record whose deliveries all failed).
	return p.callSignData(ctx, rec, attempt)
}

// callSignData calls signData for a record whose lease this delivery holds,
// then records the operation: a record in SIGNING, or one created with the
// signing intent (RECEIVED) whose claim this delivery just made, which the
// same write records (RECEIVED, CLAIMED, SIGNING, POLLING).
func (p *Pipeline) callSignData(ctx context.Context, rec *progress.Record, attempt int) (*progress.Record, error) {
	if err := p.crash(ctx, rec.Key, "sign:before-signData"); err != nil {
		return nil, err
	}
	data, err := p.plain(rec.Key, rec.SignData)
	if err != nil {
		reason := "open the signData bytes: " + err.Error()
		if rec, err = p.recordClaim(ctx, rec, true, reason); err != nil {
			return nil, err
		}
		_, ferr := p.fail(ctx, rec, attempt, reason, "The adapter could not read its own request. Contact your administrator.")
		return nil, ferr
	}
	op, err := p.API.SignData(ctx, rec.ProcessName, data, rec.SignatureAlgorithm)
	if err != nil {
		transient := cpapi.Transient(err)
		// Maybe applied, maybe not: never call again blindly; the retry
		// reads the process first. An answered error (429, 5xx) ends the
		// call, so its lease is freed for the next delivery; after a
		// timeout or a broken connection the request may still be acting,
		// so the lease stands until it passes.
		over := !transient || answered(err)
		if rec.State == progress.StateReceived {
			next, werr := p.recordClaim(ctx, rec, over, "signData: "+err.Error())
			if werr != nil {
				return nil, fmt.Errorf("signData %s: %w; and recording the claim: %v", rec.Key, err, werr)
			}
			rec = next
		} else if transient && over {
			p.freeLease(ctx, rec, "signData: "+err.Error())
		} else if transient {
			p.note(ctx, rec.Key, "signData: "+err.Error())
		}
		if transient {
			// The poll task that resumes SIGNING (it reads the process
			// first), in case no delivery of this one comes back.
			if eerr := p.enqueuePoll(ctx, rec, rec.NextPollAt); eerr != nil {
				return nil, fmt.Errorf("signData %s: %w; and enqueuing its poll: %v", rec.Key, err, eerr)
			}
			return nil, fmt.Errorf("signData %s: %w", rec.Key, err)
		}
		_, ferr := p.fail(ctx, rec, attempt, "signData: "+err.Error(), "The certificate provisioning service refused to ask this device for its signature. Contact your administrator.")
		return nil, ferr
	}
	if err := p.crash(ctx, rec.Key, "sign:after-signData"); err != nil {
		return nil, err
	}
	from, path := []progress.State{progress.StateSigning}, []progress.State{progress.StatePolling}
	if rec.State == progress.StateReceived {
		from, path = []progress.State{progress.StateReceived}, []progress.State{progress.StateClaimed, progress.StateSigning, progress.StatePolling}
	}
	now := p.Now().UTC()
	return p.transitionPath(ctx, rec.Key, from, path, func(r *progress.Record) error {
		r.OperationName = op
		// The schedule counts from signData's answer: the intent was
		// written before the claim and the call (and, from RECEIVED,
		// before the process was even read and planned).
		r.NextPollAt = now.Add(p.Schedule.Delay(0, 0, p.Jitter()))
		progress.ReleaseLease(r)
		return nil
	})
}

// recordClaim records the claim that this delivery made for rec, created
// with the signing intent (RECEIVED), when signData did not answer with an
// operation: RECEIVED, CLAIMED, SIGNING, so that what resumes it reads the
// process instead of claiming again. over: the call is over, and this
// delivery's lease is freed. A record in another state is returned as it is.
func (p *Pipeline) recordClaim(ctx context.Context, rec *progress.Record, over bool, lastError string) (*progress.Record, error) {
	if rec.State != progress.StateReceived {
		return rec, nil
	}
	holder := rec.LeaseHolder
	return p.transitionPath(ctx, rec.Key, []progress.State{progress.StateReceived}, []progress.State{progress.StateClaimed, progress.StateSigning}, func(r *progress.Record) error {
		if over && r.LeaseHolder == holder {
			progress.ReleaseLease(r)
		}
		r.LastError = lastError
		return nil
	})
}

// resumeSigning takes over a record whose signData may have been called and
// whose lease has passed: one in SIGNING (a crash or a lost answer around
// signData), or one created with the signing intent (RECEIVED), whose
// delivery may also have claimed the process or not. It asks the process, not
// the client, whether signData started (invariant 1): if so, it polls the
// process; if not, it calls signData under a fresh lease, claiming first when
// the claim is not recorded (a refusal is then the ambiguous one of a lost
// claim answer).
func (p *Pipeline) resumeSigning(ctx context.Context, rec *progress.Record, attempt int) (*progress.Record, error) {
	if rec.Leased(p.Now()) {
		return nil, errBusy
	}
	claimed := rec.State == progress.StateSigning
	proc, err := p.API.Get(ctx, rec.ProcessName)
	if err != nil {
		if !claimed {
			return p.getFailed(ctx, rec, attempt, err)
		}
		return nil, p.apiError(ctx, rec, attempt, "get process", err)
	}
	if proc.FailureMessage != "" {
		return p.apiFailed(ctx, rec, proc.FailureMessage)
	}
	from := []progress.State{rec.State}
	if proc.SignData != "" || proc.Signature != "" {
		// signData reached the client (so the claim went through): poll
		// the process itself for the signature.
		path := []progress.State{progress.StatePolling}
		if !claimed {
			path = []progress.State{progress.StateClaimed, progress.StateSigning, progress.StatePolling}
		}
		return p.transitionPath(ctx, rec.Key, from, path, func(r *progress.Record) error {
			progress.ReleaseLease(r)
			r.LastError = "signData's answer was lost; polling the process"
			return nil
		})
	}
	// The call never reached the API: take the lease and call it.
	now := p.Now().UTC()
	holder := newHolder("sign")
	relet := func(r *progress.Record) error {
		if err := p.takeLease(r, holder, now); err != nil {
			return err
		}
		if !claimed {
			r.Attempts++ // a claim attempt
		}
		r.SignDataCalls++
		// The client gets its whole deadline from the call that reaches it,
		// however late (a sweep may resume a process hours later).
		r.Deadline = now.Add(p.Schedule.Deadline)
		return nil
	}
	if claimed {
		if rec, err = p.transition(ctx, rec.Key, []progress.State{progress.StateSigning}, progress.StateSigning, relet); err != nil {
			return nil, err
		}
		return p.callSignData(ctx, rec, attempt)
	}
	if rec, err = p.transition(ctx, rec.Key, []progress.State{progress.StateReceived}, progress.StateReceived, relet); err != nil {
		return nil, err
	}
	return p.claimAndSign(ctx, rec, proc, attempt)
}

// apiFailed records that the API has already failed the process.
func (p *Pipeline) apiFailed(ctx context.Context, rec *progress.Record, msg string) (*progress.Record, error) {
	return p.transition(ctx, rec.Key, nonTerminal, progress.StateFailed, func(r *progress.Record) error {
		r.FailureReported = true
		if r.State == progress.StateFailing {
			// Failed by this adapter, whose setFailure went through (the
			// API now echoes it): the adapter's reason and message stand.
			return nil
		}
		r.FailureMessage = msg
		r.LastError = "the API failed the process: " + msg
		return nil
	})
}

var nonTerminal = []progress.State{
	progress.StateReceived, progress.StateClaimed, progress.StateSigning, progress.StatePolling,
	progress.StateSigned, progress.StateIssuing, progress.StateIssued, progress.StateFailing,
}

// plan is what the configuration and the process say to request.
type plan struct {
	caRef, profileRef string
	spki              []byte
	keyType           csr.KeyType
	algorithm         string
	signData          []byte
	challengeExpires  time.Time
	// secret: signData holds a challenge password.
	secret bool
}

// planError is a permanent problem with the process or the configuration.
type planError struct{ reason, message string }

func (e *planError) Error() string { return e.reason }

func (p *Pipeline) plan(ctx context.Context, rec *progress.Record, proc *cpapi.Process) (*plan, error) {
	pl := &plan{}
	spki, err := base64.StdEncoding.DecodeString(proc.SubjectPublicKeyInfo)
	if err != nil || len(spki) == 0 {
		return nil, &planError{"the process has no valid subjectPublicKeyInfo", "The device sent no usable public key. Try again, or contact your administrator."}
	}
	pl.spki = spki
	if _, kt, err := csr.ParseKey(spki); err != nil {
		return nil, &planError{err.Error(), "This device's key was refused: " + err.Error() + ". Ask your administrator to configure an RSA-2048 or ECDSA P-256 key."}
	} else {
		pl.keyType = kt
	}
	pl.algorithm = csr.SignatureAlgorithm(pl.keyType)
	if proc.SignatureAlgorithm != "" && proc.SignatureAlgorithm != pl.algorithm {
		return nil, &planError{fmt.Sprintf("the process asks for %s but its key is %s", proc.SignatureAlgorithm, pl.keyType), "The device's signature algorithm does not match its key. Contact your administrator."}
	}
	switch {
	case proc.GenericCaConnection != nil:
		pl.caRef = proc.GenericCaConnection.CaConnectionAdapterConfigReference
	case proc.ScepCaConnection != nil:
		pl.caRef = proc.ScepCaConnection.CaConnectionAdapterConfigReference
	}
	issuer, ok := p.CAs[pl.caRef]
	if !ok {
		return nil, &planError{fmt.Sprintf("unknown CA connection reference %q", pl.caRef), fmt.Sprintf("The certificate authority connection %q is not configured in the adapter. Ask your administrator to add it.", pl.caRef)}
	}
	vars := processVars(rec, proc)
	var tmpl csr.Template
	switch {
	case proc.ScepProfile != nil:
		pl.profileRef = "scepProfile"
		sp := proc.ScepProfile
		s := profile.Scep{
			CommonName: sp.SubjectCommonName, Organization: sp.Organization, OrganizationalUnits: sp.OrganizationalUnits,
			Locality: sp.Locality, State: sp.State, Country: sp.Country, KeyUsages: sp.KeyUsages,
			CertificateTemplateName: sp.CertificateTemplateName,
		}
		for _, san := range sp.SubjectAltNames {
			s.SubjectAltNames = append(s.SubjectAltNames, profile.SAN{Type: san.Type, Value: san.Value})
		}
		if err := p.lookupDirectory(ctx, rec, proc, s.Needs(), vars); err != nil {
			return nil, err
		}
		tmpl, err = profile.RenderScep(s, vars)
	case proc.GenericProfile != nil:
		pl.profileRef = proc.GenericProfile.ProfileAdapterConfigReference
		prof, ok := p.Profiles[pl.profileRef]
		if !ok {
			return nil, &planError{fmt.Sprintf("unknown profile reference %q", pl.profileRef), fmt.Sprintf("The certificate profile %q is not configured in the adapter. Ask your administrator to add it.", pl.profileRef)}
		}
		if err := p.lookupDirectory(ctx, rec, proc, prof.Needs(), vars); err != nil {
			return nil, err
		}
		tmpl, err = prof.Render(vars)
	default:
		return nil, &planError{"the process has no profile", "The certificate profile is missing from this request. Contact your administrator."}
	}
	if err != nil {
		return nil, &planError{"profile " + pl.profileRef + ": " + err.Error(), "The certificate could not be filled in: " + err.Error() + ". Contact your administrator."}
	}
	if ch, ok := issuer.(Challenger); ok {
		chCtx, cancel := p.caContext(ctx)
		pw, exp, err := ch.Challenge(chCtx, rec.Key)
		cancel()
		if err != nil {
			if isPermanentCA(err) {
				return nil, &planError{"challenge: " + err.Error(), userMessage(err, "The adapter could not get an enrollment challenge from the certificate authority. Contact your administrator.")}
			}
			return nil, fmt.Errorf("challenge for %s: %w", rec.Key, err)
		}
		tmpl.ChallengePassword, pl.challengeExpires = pw, exp
		pl.secret = pw != ""
	}
	body, err := csr.BuildRequestInfo(spki, tmpl)
	if err != nil {
		return nil, &planError{"build the CSR body: " + err.Error(), "The certificate request could not be built: " + err.Error() + ". Contact your administrator."}
	}
	pl.signData = body
	return pl, nil
}

// processVars are the template variables of a process.
func processVars(rec *progress.Record, proc *cpapi.Process) profile.Vars {
	var email, userID, deviceID, serial string
	if u := proc.ChromeOsUserSession; u != nil {
		email, userID = u.UserPrimaryEmail, u.UserDirectoryApiId
		if d := u.ChromeOsDevice; d != nil {
			deviceID, serial = d.DeviceDirectoryApiId, d.SerialNumber
		}
	}
	if d := proc.ChromeOsDevice; d != nil {
		deviceID, serial = d.DeviceDirectoryApiId, d.SerialNumber
	}
	return profile.NewVars(rec.Customer, rec.ProcessID, proc.ProvisioningProfileId, email, userID, deviceID, serial)
}

// setSubject records the subject of proc in r (inside a transition that
// writes anyway: no write of its own), for certprov find.
func setSubject(r *progress.Record, proc *cpapi.Process) {
	v := processVars(r, proc)
	r.DeviceID, r.DeviceSerial, r.UserEmail = v["DEVICE_DIRECTORY_ID"], v["DEVICE_SERIAL_NUMBER"], v["USER_EMAIL"]
}

// processIdentity names the device and the user of a process in the log, so
// that "what happened to device X" has an answer: the Directory API ids and
// the serial number. The user's email is personal data and not logged.
func processIdentity(proc *cpapi.Process) []any {
	var attrs []any
	dev := proc.ChromeOsDevice
	if s := proc.ChromeOsUserSession; s != nil {
		if s.UserDirectoryApiId != "" {
			attrs = append(attrs, slog.String("user_id", s.UserDirectoryApiId))
		}
		if dev == nil {
			dev = s.ChromeOsDevice
		}
	}
	if dev != nil {
		if dev.DeviceDirectoryApiId != "" {
			attrs = append(attrs, slog.String("device_id", dev.DeviceDirectoryApiId))
		}
		if dev.SerialNumber != "" {
			attrs = append(attrs, slog.String("device_serial", dev.SerialNumber))
		}
	}
	return attrs
}

// MsgOwnClaimRefused is the ERROR logged when the API refuses a claim although
// an earlier delivery of ours may have claimed the process (its answer was
// lost): a log-based metric counts it (terraform: monitoring.tf).
const MsgOwnClaimRefused = "claim refused after an earlier claim attempt of this adapter"
