package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// The operator's actions (certprov retry, certprov fail): one process at a
// time, through the same code paths as the sweep and the pipeline's own
// failures.

// ActionRefusedError says why an operator's action left a process alone: it
// cannot help that process, or not yet.
type ActionRefusedError struct {
	// Action is "retry" or "fail".
	Action string
	// Record is the record as the action found it.
	Record *progress.Record
	// Reason says why, for a person.
	Reason string
}

func (e *ActionRefusedError) Error() string {
	return fmt.Sprintf("%s %s refused: %s", e.Action, e.Record.Key, e.Reason)
}

// Retry re-drives one process now, for an operator, exactly as the sweep
// re-drives an idle one: the re-drive is counted in the record's Sweeps (it
// is one of the MaxRedrives), and a task under a fresh name resumes the
// process from its state (PollSignature up to POLLING, IssueCertificate from
// SIGNED, the failure report in FAILING). Every step is safe to run twice,
// so a re-drive never calls signData a second time and never has a second
// certificate issued: the task reads the record (and the process) and does
// what is left.
//
// It refuses, with a *ActionRefusedError, where a re-drive cannot help: a
// finished process (RetryRefusal says which), a live lease (a delivery is
// acting on the process), a poll still scheduled, and a process whose
// re-drives are used up (the sweep fails it next). It returns the record
// after the re-drive and the task enqueued.
func (p *Pipeline) Retry(ctx context.Context, key string) (*progress.Record, tasks.Task, error) {
	p.init()
	now := p.Now().UTC()
	customer, processID, _ := strings.Cut(key, ":")
	var res SweepResult
	return p.redriveIdle(ctx, customer, processID, key, now, func(r *progress.Record) error {
		if why := RetryRefusal(r, now); why != "" {
			return &ActionRefusedError{Action: "retry", Record: r.Clone(), Reason: why}
		}
		return nil
	}, "process re-driven by an operator", &res)
}

// RetryRefusal says why a re-drive of r at now cannot help ("" when it can),
// by the sweep's rules: the sweep never touches a finished record, acts only
// on a record idle longer than any lease and any poll gap, and fails a
// process (instead of re-driving it) once its re-drives are used up, unless
// its failure is waiting to be reported.
func RetryRefusal(r *progress.Record, now time.Time) string {
	switch r.State {
	case progress.StateUploaded:
		return "the certificate was uploaded: the process is finished"
	case progress.StateFailed:
		return fmt.Sprintf("the process failed and the device was told (%q); the device starts a new process by itself, after about 24 hours or a reboot", r.FailureMessage)
	case progress.StateClaimedElsewhere:
		return "another adapter instance holds the claim: the process is not this adapter's to drive"
	}
	if r.Leased(now) {
		return leaseHeld(r)
	}
	// (Polls that carry their operation write the record only at
	// checkpoints: a re-drive of a live chain starts a new generation of
	// polls, and the old chain stops at its next checkpoint.)
	if r.State == progress.StatePolling && r.NextPollAt.After(now) {
		return fmt.Sprintf("the process is waiting for the device to sign and its next poll is due at %s (deadline %s): retry after that if the record has not moved",
			r.NextPollAt.UTC().Format(time.RFC3339), r.Deadline.UTC().Format(time.RFC3339))
	}
	if r.State != progress.StateFailing && r.Sweeps >= MaxRedrives {
		return fmt.Sprintf("the process was re-driven %d times already (the sweep's limit): the sweep fails it at its next pass; fail it now to tell the device", r.Sweeps)
	}
	return ""
}

// OperatorReason is the LastError of a process failed by Fail.
const OperatorReason = "failed on purpose by an operator (certprov fail)"

// Fail fails a process on purpose, for an operator, through the pipeline's
// own failure path: the record moves to FAILING with message (what the
// device is told) and OperatorReason, then setFailure reports it and the
// record ends FAILED, only once the API accepted setFailure (or shows the
// process failed or gone; invariant 7). This call is the failure's one
// delivery and so its last: a setFailure that does not go through is handed
// to a fresh task, as on a task's last attempt, and the record stays
// FAILING until the device was told.
//
// It refuses, with a *ActionRefusedError, a finished process, one already
// failing (its failure is decided and being reported: Retry re-drives the
// report), and one on which a delivery holds a live lease (it is acting
// on the API or the CA right now). The checks and the move to FAILING are
// one transaction. It returns the record as the call left it.
func (p *Pipeline) Fail(ctx context.Context, key, message string) (*progress.Record, error) {
	p.init()
	message = strings.TrimSpace(message)
	if message == "" {
		return nil, errors.New("fail: the message for the device is empty")
	}
	customer, processID, _ := strings.Cut(key, ":")
	ctx = withProcess(ctx, p.logger(ctx), customer, processID)
	now := p.Now().UTC()
	rec, err := p.transition(ctx, key, nonTerminal, progress.StateFailing, func(r *progress.Record) error {
		if why := FailRefusal(r, now); why != "" {
			return &ActionRefusedError{Action: "fail", Record: r.Clone(), Reason: why}
		}
		r.LastError, r.FailureMessage = OperatorReason, truncate(message, maxMessage)
		progress.ReleaseLease(r)
		return nil
	})
	if cur, ok := stale(err); ok {
		return nil, &ActionRefusedError{Action: "fail", Record: cur, Reason: FailRefusal(cur, now)}
	}
	if err != nil {
		return nil, err
	}
	p.logger(ctx).Warn("process failing", slog.String("reason", OperatorReason), slog.String("state", string(rec.State)))
	next, err := p.reportFailure(ctx, rec, p.MaxAttempts)
	if err != nil {
		return nil, err
	}
	if next == nil {
		// Handed off to a fresh task: the record says where it stands.
		return p.Store.Get(ctx, key)
	}
	return next, nil
}

// FailRefusal says why failing r on purpose at now cannot be done ("" when
// it can).
func FailRefusal(r *progress.Record, now time.Time) string {
	switch r.State {
	case progress.StateUploaded:
		return "the certificate was uploaded: the process is finished"
	case progress.StateFailed:
		return fmt.Sprintf("the process failed already and the device was told (%q)", r.FailureMessage)
	case progress.StateClaimedElsewhere:
		return "another adapter instance holds the claim: the process is not this adapter's to fail"
	case progress.StateFailing:
		return fmt.Sprintf("the process is failing already (%q) and the report to the device is pending: retry re-drives the report", r.FailureMessage)
	}
	if r.Leased(now) {
		return leaseHeld(r)
	}
	return ""
}

func leaseHeld(r *progress.Record) string {
	who := r.LeaseHolder
	if who == "" {
		who = "a delivery"
	}
	return fmt.Sprintf("%s is acting on the process until %s (its lease): try again after that", who, r.LeaseUntil.UTC().Format(time.RFC3339))
}
