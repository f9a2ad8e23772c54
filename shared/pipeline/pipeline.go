// Package pipeline is the adapter's work: it moves one certificate
// provisioning process from its notification to an uploaded certificate (or a
// reported failure), one durable step at a time. Each step reads the process's
// progress record, acts, and advances the record with a compare-and-set, so a
// duplicate delivery or a crash at any line leaves nothing lost or doubled.
//
// The three entry points, Claim, Poll and Issue, are what the three functions
// call, each with one Delivery (the body and which attempt it is); they return
// an error only when a retry by the platform can help. Sweep is what the
// scheduler's request runs.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/seal"
	"github.com/chromeos-certprov/adapter/shared/tasks"
)

// Store keeps the progress records (store/firestore; tooling/store/memory).
type Store interface {
	Get(ctx context.Context, key string) (*progress.Record, error)
	Create(ctx context.Context, rec *progress.Record) (*progress.Record, error)
	Update(ctx context.Context, key string, fn func(r *progress.Record) error) (*progress.Record, error)
	// Stale lists the records that stopped moving, for Sweep: in one of
	// states and not updated since before, oldest first, at most limit.
	Stale(ctx context.Context, states []progress.State, before time.Time, limit int) ([]*progress.Record, error)
}

// Enqueuer hands a task to the next function. A task name used before is a no-op.
type Enqueuer interface {
	Enqueue(ctx context.Context, t tasks.Task) error
}

// API is the Certificate Provisioning API (cpapi.Client).
type API interface {
	Get(ctx context.Context, name string) (*cpapi.Process, error)
	Claim(ctx context.Context, name, callerID string) error
	SignData(ctx context.Context, name string, data []byte, algorithm string) (string, error)
	GetOperation(ctx context.Context, opName string) (*cpapi.Operation, error)
	UploadCertificate(ctx context.Context, name, certPEM string) error
	SetFailure(ctx context.Context, name, message string) error
}

// Issuer is a CA connection; the connectors and their registry are in ca.
type Issuer = ca.Issuer

// Challenger is the capability of a CA connection whose CSR carries a
// challenge password (SCEP), asked for at claim time.
type Challenger = ca.Challenger

// Pipeline holds what every step needs. Build it once per instance.
type Pipeline struct {
	Store    Store
	Tasks    Enqueuer
	API      API
	CAs      map[string]Issuer
	Profiles map[string]profile.Profile
	// Directory reads the directory variables' values; needed only when a
	// profile uses one.
	Directory Directory
	// Inventory, when set, records every uploaded certificate (inventory.go),
	// kept InventoryGrace past its not-after (default inventory.DefaultGrace).
	Inventory      Inventory
	InventoryGrace time.Duration
	// Allowed reports whether a customer's notifications are accepted.
	Allowed  func(customer string) bool
	CallerID string
	// Project is the Google Cloud project, for trace names in logs.
	Project  string
	Schedule PollSchedule
	// TTL is how long finished records are kept.
	TTL time.Duration
	// MaxAttempts is the task queues' max attempts: the last attempt turns a
	// transient failure into a reported one instead of an error nobody retries.
	MaxAttempts int
	// SweepAfter is how long a record may stay unchanged while not finished
	// before Sweep re-drives its process; 0 disables the sweep. It must exceed
	// the longest quiet gap of a live process (the poll schedule's intervals).
	SweepAfter time.Duration
	// SweepBudget bounds one sweep (0: only its request's own deadline):
	// shorter than the function's timeout, so a large backlog is cut at a
	// record boundary and the next sweep takes the rest.
	SweepBudget time.Duration
	// Lease bounds how long a step with an external side effect (signData, the
	// CA) may run before another delivery may take over; default 2 minutes.
	Lease time.Duration
	// RefuseIncomplete names the CA connections (by reference) whose issued
	// certificate is refused, and the process failed, when it lacks a SAN, a
	// key usage or an extended key usage the request asked for; elsewhere
	// such a certificate is uploaded with a WARNING (MsgIncompleteCertificate).
	RefuseIncomplete map[string]bool
	// CATimeout bounds each call to a CA connection (the challenge; Issue
	// with the check of its answer): at most half the Lease, which is also
	// the default, so that a slow CA is given up while the lease holds.
	CATimeout time.Duration
	Log       *slog.Logger
	// PaceClaims hands a claim that meets the API's quota (429) to the
	// claim queue (tasks.QueueClaim, run by ClaimTask) instead of leaving it
	// to Pub/Sub's redeliveries (quota.go).
	PaceClaims bool
	// Now and Jitter are replaceable in tests; defaults time.Now and rand.Float64.
	Now    func() time.Time
	Jitter func() float64
	// Sealer, when set, encrypts the signData bytes and the CSR in the record
	// whenever they carry a challenge password. Required with a Challenger.
	Sealer *seal.Sealer
	// Crash, when set, is called at every point where an instance could die
	// (before and after each external call and store write) with the step's
	// context, the progress record's key and the point; a non-nil error
	// aborts the step there as a crash would. For the fault campaign and tests.
	Crash func(ctx context.Context, key, point string) error

	once sync.Once
}

func (p *Pipeline) init() {
	p.once.Do(func() {
		if p.Now == nil {
			p.Now = time.Now
		}
		if p.Jitter == nil {
			p.Jitter = rand.Float64
		}
		if p.Log == nil {
			p.Log = logging.Discard
		}
		if p.Lease <= 0 {
			p.Lease = DefaultLease
		}
		if p.MaxAttempts <= 0 {
			p.MaxAttempts = DefaultMaxAttempts
		}
		if p.Schedule.Initial <= 0 {
			p.Schedule = DefaultPoll
		}
		if p.TTL <= 0 {
			p.TTL = DefaultTTL
		}
	})
}

// errCrash marks a simulated crash.
type crashError struct{ point string }

func (e *crashError) Error() string { return "simulated crash at " + e.point }

// IsCrash reports whether err is a simulated crash.
func IsCrash(err error) bool {
	var c *crashError
	return errors.As(err, &c)
}

func (p *Pipeline) crash(ctx context.Context, key, point string) error {
	if p.Crash == nil {
		return nil
	}
	if err := p.Crash(ctx, key, point); err != nil {
		return &crashError{point: point}
	}
	return nil
}

// TaskBody is the JSON body of poll and issue tasks.
type TaskBody struct {
	Key string `json:"key"`
	// Poll is the poll count the task was enqueued for; a task whose count is
	// stale is a duplicate.
	Poll int `json:"poll,omitempty"`
	// Attempt is the issue attempt the task was enqueued for.
	Attempt int `json:"attempt,omitempty"`

	// A poll task of a record in POLLING carries what its poll needs, so
	// that a poll that finds the operation not done touches no record: the
	// operation, when signData was asked for and when the process started
	// (the schedule counts from both; Start is absent before release 4), the poll deadline, when the record is next due a checkpoint
	// write (the sweep's liveness signal; zero: never) and the generation
	// of its chain of polls (the record's Sweeps when the chain started: a
	// re-drive starts a new one under fresh names). Release names the code
	// that enqueued it. A task without Op (earlier releases, re-drives,
	// hand-offs) reads the record instead.
	Op         string    `json:"op,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	Start      time.Time `json:"start,omitzero"`
	Deadline   time.Time `json:"deadline,omitzero"`
	Checkpoint time.Time `json:"checkpoint,omitzero"`
	Gen        int       `json:"gen,omitempty"`
	Release    string    `json:"release,omitempty"`

	// An issue task enqueued by the poll that found the signature carries
	// it (Sig), and when it was found (SignedAt): the issue step verifies
	// it against the record's key and request and stores the CSR in the
	// same write that takes the CA's lease (POLLING, SIGNED, ISSUING), so
	// the signature costs no write of its own. An issue task without Sig
	// (earlier releases, re-drives, hand-offs) finds its record SIGNED.
	Sig      []byte    `json:"sig,omitempty"`
	SignedAt time.Time `json:"signedAt,omitzero"`
}

// Release is the task body format's version: "2", poll tasks that carry
// their operation; "3", issue tasks that carry the signature; "4", poll
// tasks that carry the process's start (issue 15).
const Release = "4"

// taskID is a task-name-safe id for a record key.
func taskID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// RequestID is the CA idempotency key of a record key.
func RequestID(key string) string {
	sum := sha256.Sum256([]byte("certprov-request:" + key))
	return hex.EncodeToString(sum[:16])
}

// enqueuePoll enqueues r's current poll (PollCount) due at at. A record in
// POLLING with its operation gets a task that carries the operation, so that
// its polls need no read until the checkpoint write is due (checkpointEvery
// after the record's last write).
func (p *Pipeline) enqueuePoll(ctx context.Context, r *progress.Record, at time.Time) error {
	tb := TaskBody{Key: r.Key, Poll: r.PollCount}
	if r.State == progress.StatePolling && r.OperationName != "" {
		tb.Op, tb.Since, tb.Start, tb.Deadline, tb.Gen, tb.Release = r.OperationName, signingSince(r), processStart(r), r.Deadline, r.Sweeps, Release
		if p.SweepAfter > 0 {
			tb.Checkpoint = r.UpdatedAt.Add(p.checkpointEvery())
		}
	}
	return p.enqueuePollTask(ctx, tb, at)
}

// checkpointEvery is how long a chain of polls leaves its record unwritten
// at most before its next poll writes it: SweepAfter/2, and no more than
// leaves a longest gap between polls in hand before SweepAfter (at the
// least SWEEP_AFTER the configuration allows, every poll writes).
func (p *Pipeline) checkpointEvery() time.Duration {
	return max(min(p.SweepAfter/2, p.SweepAfter-2*p.Schedule.QuietestGap()), 0)
}

// enqueuePollTask enqueues poll tb.Poll of generation tb.Gen.
func (p *Pipeline) enqueuePollTask(ctx context.Context, tb TaskBody, at time.Time) error {
	return p.enqueueNamed(ctx, tasks.QueuePoll, "poll", tb, tb.Poll, at)
}

// enqueueNamed enqueues tb on q as the task named kind-<id>-<n>, and
// kind-<id>-s<gen>-<n> for a chain of generation tb.Gen > 0 (one that a
// re-drive started): names differ between generations, so a hand-off lost
// with its name used does not keep the re-driven one out.
func (p *Pipeline) enqueueNamed(ctx context.Context, q tasks.Queue, kind string, tb TaskBody, n int, at time.Time) error {
	body, _ := json.Marshal(tb)
	name := fmt.Sprintf("%s-%s-%d", kind, taskID(tb.Key), n)
	if tb.Gen > 0 {
		name = fmt.Sprintf("%s-%s-s%d-%d", kind, taskID(tb.Key), tb.Gen, n)
	}
	t := tasks.Task{Queue: q, Name: name, Body: body, ScheduleTime: at}
	if err := p.Tasks.Enqueue(ctx, t); err != nil {
		return fmt.Errorf("enqueue %s %d of %s: %w", kind, n, tb.Key, err)
	}
	return nil
}

// signingSince is when signData was last asked for on r (its last change to
// SIGNING), or its creation when none is kept.
func signingSince(r *progress.Record) time.Time {
	for i := len(r.History) - 1; i >= 0; i-- {
		if r.History[i].To == progress.StateSigning {
			return r.History[i].At
		}
	}
	return r.CreatedAt
}

func (p *Pipeline) enqueueIssue(ctx context.Context, r *progress.Record, at time.Time) error {
	return p.enqueueIssueTask(ctx, TaskBody{Key: r.Key, Attempt: r.IssueAttempts}, at)
}

// enqueueIssueTask enqueues issue task tb, named for the record's issue
// attempt (and the generation of the chain of polls that found the signature).
func (p *Pipeline) enqueueIssueTask(ctx context.Context, tb TaskBody, at time.Time) error {
	return p.enqueueNamed(ctx, tasks.QueueIssue, "issue", tb, tb.Attempt, at)
}

// nextPoll is when poll n of r comes after now, by the schedule
// (PollSchedule.Next), counting from when signData was asked for and from
// the process's start; never after r's deadline when it has one.
func (p *Pipeline) nextPoll(r *progress.Record, n int, now time.Time) time.Time {
	return p.nextPollAt(processStart(r), signingSince(r), r.Deadline, n, now)
}

// nextPollAt is when poll n comes after now, the process having started at
// start and signData having been asked for at since: by the schedule, and
// never after the deadline (zero: none).
func (p *Pipeline) nextPollAt(start, since, deadline time.Time, n int, now time.Time) time.Time {
	at := p.Schedule.Next(n, start, since, now, p.Jitter())
	if !deadline.IsZero() && at.After(deadline) {
		at = deadline
	}
	return at
}

// processStart is when r's process started, as the API said when it was
// read for the claim; a record of an earlier release does not say, and the
// schedule then counts from signData.
func processStart(r *progress.Record) time.Time {
	if !r.ProcessStart.IsZero() {
		return r.ProcessStart
	}
	return signingSince(r)
}

// transition advances rec and logs the change once.
func (p *Pipeline) transition(ctx context.Context, key string, from []progress.State, to progress.State, mutate func(r *progress.Record) error) (*progress.Record, error) {
	return p.transitionPath(ctx, key, from, []progress.State{to}, mutate)
}

// transitionPath advances rec along path in one write (progress.TransitionPath)
// and logs the change once.
func (p *Pipeline) transitionPath(ctx context.Context, key string, from []progress.State, path []progress.State, mutate func(r *progress.Record) error) (*progress.Record, error) {
	now := p.Now().UTC()
	var prev progress.State
	rec, err := progress.TransitionPath(ctx, p.Store, key, from, path, now, p.TTL, func(r *progress.Record) error {
		prev = r.State
		r.UpdatedAt = now
		if mutate != nil {
			return mutate(r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, st := range path {
		if st == prev {
			continue
		}
		r := rec
		if i < len(path)-1 {
			// A state passed on the way is logged as the record was in it.
			r = rec.Clone()
			r.State = st
		}
		p.logTransition(ctx, r, prev)
		prev = st
	}
	return rec, nil
}

func (p *Pipeline) logTransition(ctx context.Context, r *progress.Record, from progress.State) {
	var attrs []any
	if !named(ctx, r.Key) {
		// Not every path names the process in its logger (withProcess)
		// before a transition; the transition line always does, once.
		attrs = append(attrs, slog.String("process_id", r.ProcessID), slog.String("customer", r.Customer))
	}
	attrs = append(attrs,
		slog.String("state", string(r.State)),
		slog.String("from_state", string(from)),
		slog.Int64("elapsed_ms", p.Now().Sub(r.CreatedAt).Milliseconds()),
	)
	if r.CAConnectionRef != "" {
		attrs = append(attrs, slog.String("ca_connection_ref", r.CAConnectionRef))
	}
	if r.ProfileRef != "" {
		attrs = append(attrs, slog.String("profile_ref", r.ProfileRef))
	}
	level := slog.LevelInfo
	switch r.State {
	case progress.StateUploaded:
		attrs = append(attrs, slog.Int64("time_to_certificate_ms", r.UploadedAt.Sub(r.CreatedAt).Milliseconds()), slog.Int("poll_count", r.PollCount))
	case progress.StateFailing, progress.StateFailed:
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("reason", r.LastError), slog.String("failure_message", r.FailureMessage))
	case progress.StatePolling:
		if from == progress.StatePolling {
			return
		}
	}
	p.logger(ctx).Log(ctx, level, "state transition", attrs...)
}

// stale reports whether err says the record had moved on (a duplicate).
func stale(err error) (*progress.Record, bool) {
	var se *progress.StateError
	if errors.As(err, &se) {
		return se.Current, true
	}
	return nil, false
}

// errBusy says another delivery holds the lease: retry later.
var errBusy = errors.New("another delivery is working on this process; retry later")

// takeLease gives the lease on r to holder for p.Lease from now, inside a
// transition, or returns errBusy (wrapping progress.ErrLeaseHeld) while
// another delivery's lease is live.
func (p *Pipeline) takeLease(r *progress.Record, holder string, now time.Time) error {
	if err := progress.AcquireLease(r, holder, now, p.Lease); err != nil {
		return fmt.Errorf("%w: %w", errBusy, err)
	}
	return nil
}

// newHolder names a lease holder: the step and a random id, fresh for each
// delivery that takes a lease.
func newHolder(step string) string { return fmt.Sprintf("%s-%016x", step, rand.Uint64()) }

func (p *Pipeline) logger(ctx context.Context) *slog.Logger { return logging.FromOr(ctx, p.Log) }

// protect seals data for rec when it holds a secret.
func (p *Pipeline) protect(key string, data []byte, secret bool) ([]byte, error) {
	if !secret {
		return data, nil
	}
	if p.Sealer == nil {
		return nil, errors.New("a challenge password would be stored in clear: set RECORD_SEALING_KEY")
	}
	return p.Sealer.Seal(data, key)
}

// plain opens data that protect sealed.
func (p *Pipeline) plain(key string, data []byte) ([]byte, error) {
	if !seal.Sealed(data) {
		return data, nil
	}
	if p.Sealer == nil {
		return nil, errors.New("the record is sealed but no RECORD_SEALING_KEY is set")
	}
	return p.Sealer.Open(data, key)
}
