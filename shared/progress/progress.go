package progress

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// State is where a process stands in the adapter's pipeline.
type State string

// The states, in pipeline order. UPLOADED, FAILED and CLAIMED_ELSEWHERE are terminal.
const (
	// StateReceived: the notification was accepted; nothing was asked of the API yet.
	StateReceived State = "RECEIVED"
	// StateClaimed: the claim succeeded for this deployment's caller instance id.
	StateClaimed State = "CLAIMED"
	// StateSigning: the bytes to sign are recorded and signData is (about to be) called.
	// A retry that finds this state must not call signData blindly (invariant 1).
	StateSigning State = "SIGNING"
	// StatePolling: signData started; the poller waits for the signature.
	StatePolling State = "POLLING"
	// StateSigned: the signature verified and the CSR is assembled; waiting for the CA.
	StateSigned State = "SIGNED"
	// StateIssuing: the CA was (about to be) asked with RequestID.
	StateIssuing State = "ISSUING"
	// StateIssued: the certificate is stored; the upload is pending.
	StateIssued State = "ISSUED"
	// StateFailing: a permanent failure is decided; setFailure is pending. A
	// record stays here until the device was told (invariant 7).
	StateFailing State = "FAILING"
	// StateUploaded: the certificate was uploaded. Terminal.
	StateUploaded State = "UPLOADED"
	// StateFailed: the process failed (reported with setFailure, or failed by the API). Terminal.
	StateFailed State = "FAILED"
	// StateClaimedElsewhere: another adapter instance holds the claim. Terminal.
	StateClaimedElsewhere State = "CLAIMED_ELSEWHERE"
)

// Terminal reports whether no further work happens in state s.
func (s State) Terminal() bool {
	return s == StateUploaded || s == StateFailed || s == StateClaimedElsewhere
}

// Record is the progress of one process: one Firestore document per process.
// Field names are the document's field names.
type Record struct {
	// Key is the document id (see Key); it is not stored as a field.
	Key         string `firestore:"-" json:"key"`
	Customer    string `firestore:"customer" json:"customer"`
	ProcessID   string `firestore:"processId" json:"processId"`
	ProcessName string `firestore:"processName" json:"processName"`
	State       State  `firestore:"state" json:"state"`
	// Version increases by one on every write.
	Version   int64     `firestore:"version" json:"version"`
	CreatedAt time.Time `firestore:"createdAt" json:"createdAt"`
	UpdatedAt time.Time `firestore:"updatedAt" json:"updatedAt"`
	History   []Change  `firestore:"history" json:"history"`

	// The process's subject, as the API described it when the process was
	// read for its claim: the device's Directory API id and serial number (a
	// device, or an affiliated user's device) and the user's primary email (a
	// user session). The operator CLI finds processes by them (certprov find).
	// Empty on a record of an earlier release, or when the API gave none.
	DeviceID     string `firestore:"deviceId,omitempty" json:"deviceId,omitempty"`
	DeviceSerial string `firestore:"deviceSerial,omitempty" json:"deviceSerial,omitempty"`
	UserEmail    string `firestore:"userEmail,omitempty" json:"userEmail,omitempty"`

	CAConnectionRef string `firestore:"caConnectionRef,omitempty" json:"caConnectionRef,omitempty"`
	ProfileRef      string `firestore:"profileRef,omitempty" json:"profileRef,omitempty"`
	// SPKI is the process's DER SubjectPublicKeyInfo: the signature and the
	// issued certificate are checked against it.
	SPKI []byte `firestore:"spki,omitempty" json:"spki,omitempty"`
	// KeyType is "RSA-2048" or "EC-P256", from the process's SubjectPublicKeyInfo.
	KeyType            string `firestore:"keyType,omitempty" json:"keyType,omitempty"`
	SignatureAlgorithm string `firestore:"signatureAlgorithm,omitempty" json:"signatureAlgorithm,omitempty"`
	// SignData holds the exact bytes sent to signData (the DER CertificationRequestInfo).
	SignData []byte `firestore:"signData,omitempty" json:"signData,omitempty"`
	// SignDataCalls counts signData calls made (at most one may reach the client).
	SignDataCalls int    `firestore:"signDataCalls" json:"signDataCalls"`
	OperationName string `firestore:"operationName,omitempty" json:"operationName,omitempty"`
	// ProcessStart is the process's startTime, as the API said when it was
	// read for the claim: the client's check-ins count from it (the poll
	// schedule's). Zero on a record of an earlier release.
	ProcessStart time.Time `firestore:"processStart" json:"processStart"`
	// Deadline is when polling gives up and the process is failed.
	Deadline   time.Time `firestore:"deadline" json:"deadline"`
	PollCount  int       `firestore:"pollCount" json:"pollCount"`
	NextPollAt time.Time `firestore:"nextPollAt" json:"nextPollAt"`
	// SignedAt is when the adapter first saw the client's signature.
	SignedAt time.Time `firestore:"signedAt" json:"signedAt"`
	CSR      []byte    `firestore:"csr,omitempty" json:"csr,omitempty"`
	// ChallengeExpiresAt is when a fetched SCEP challenge inside the CSR expires
	// (zero: it does not). A signature that arrives later fails the process.
	ChallengeExpiresAt time.Time `firestore:"challengeExpiresAt" json:"challengeExpiresAt"`
	// RequestID is the idempotency key sent to the CA.
	RequestID      string    `firestore:"requestId,omitempty" json:"requestId,omitempty"`
	IssueAttempts  int       `firestore:"issueAttempts" json:"issueAttempts"`
	CertificatePEM string    `firestore:"certificatePem,omitempty" json:"certificatePem,omitempty"`
	IssuedAt       time.Time `firestore:"issuedAt" json:"issuedAt"`
	// The issued certificate's serial number (hex), subject and validity,
	// read from it when it is stored (ISSUED), so that a query shows them
	// without parsing CertificatePEM. Empty on a record of an earlier release.
	CertificateSerial    string    `firestore:"certificateSerial,omitempty" json:"certificateSerial,omitempty"`
	CertificateSubject   string    `firestore:"certificateSubject,omitempty" json:"certificateSubject,omitempty"`
	CertificateNotBefore time.Time `firestore:"certificateNotBefore" json:"certificateNotBefore"`
	CertificateNotAfter  time.Time `firestore:"certificateNotAfter" json:"certificateNotAfter"`
	// CADuration is how long the CA took to issue, for the added-latency figure.
	CADuration time.Duration `firestore:"caDuration" json:"caDuration"`
	UploadedAt time.Time     `firestore:"uploadedAt" json:"uploadedAt"`
	// LeaseUntil guards a step with an external side effect (signData, the CA):
	// while it is in the future another delivery backs off instead of acting.
	// Written only by AcquireLease and ReleaseLease.
	LeaseUntil time.Time `firestore:"leaseUntil" json:"leaseUntil"`
	// LeaseHolder names the delivery that holds the lease until LeaseUntil;
	// empty on a record written by an earlier release (an unknown holder).
	LeaseHolder string `firestore:"leaseHolder,omitempty" json:"leaseHolder,omitempty"`
	// Attempts counts deliveries that found work to do.
	Attempts  int    `firestore:"attempts" json:"attempts"`
	LastError string `firestore:"lastError,omitempty" json:"lastError,omitempty"`
	// FailureMessage is what setFailure tells the device (or what the API reported).
	FailureMessage string `firestore:"failureMessage,omitempty" json:"failureMessage,omitempty"`
	// FailureReported is true once setFailure succeeded or the API had failed the process itself.
	FailureReported bool `firestore:"failureReported" json:"failureReported"`
	// ReportHandoffs counts the fresh tasks that took over reporting a failure
	// whose setFailure had not gone through by a task's last attempt.
	ReportHandoffs int `firestore:"reportHandoffs" json:"reportHandoffs,omitempty"`
	// Sweeps counts how often the stale-process sweep found this record idle
	// and re-drove it.
	Sweeps int `firestore:"sweeps" json:"sweeps,omitempty"`
	// ExpireAt is the Firestore TTL field: set when the record becomes terminal.
	ExpireAt *time.Time `firestore:"expireAt" json:"expireAt,omitempty"`
}

// New returns the record of a process just notified, for a store to create:
// RECEIVED at now, with the delivery that creates it counted as its first
// attempt. The caller takes the claim's lease on it (AcquireLease).
func New(customer, processID, processName string, now time.Time) *Record {
	return &Record{
		Key: Key(customer, processID), Customer: customer, ProcessID: processID, ProcessName: processName,
		State: StateReceived, CreatedAt: now, UpdatedAt: now,
		History:  []Change{{To: StateReceived, At: now}},
		Attempts: 1,
	}
}

// Change is one state change, kept in the record's history.
type Change struct {
	From State     `firestore:"from" json:"from"`
	To   State     `firestore:"to" json:"to"`
	At   time.Time `firestore:"at" json:"at"`
}

// Key is the document id for a customer's process. Neither part may contain ':'
// (the notification decoder enforces a strict character set).
func Key(customer, processID string) string { return customer + ":" + processID }

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	c := *r
	c.History = slices.Clone(r.History)
	c.SignData = slices.Clone(r.SignData)
	c.CSR = slices.Clone(r.CSR)
	c.SPKI = slices.Clone(r.SPKI)
	if r.ExpireAt != nil {
		t := *r.ExpireAt
		c.ExpireAt = &t
	}
	return &c
}

// Errors every store returns for these conditions (wrapped or not).
var (
	ErrNotFound = errors.New("progress record not found")
	ErrExists   = errors.New("progress record already exists")
)

// Updater is the part of a store that Transition needs.
type Updater interface {
	// Update reads the record in a transaction, calls fn on it and, if fn returns
	// nil, writes it back with Version+1 and UpdatedAt set. If fn returns an error
	// nothing is written and Update returns that error. fn may run more than once
	// when the transaction is retried on contention.
	Update(ctx context.Context, key string, fn func(r *Record) error) (*Record, error)
}

// StateError says a transition found the record in a state it does not start from.
type StateError struct {
	Key     string
	Want    []State
	Current *Record
}

func (e *StateError) Error() string {
	return fmt.Sprintf("progress %s: state is %s, want one of %v", e.Key, e.Current.State, e.Want)
}

// Transition moves the record from one of the states in from to state to, in one
// transaction, applying mutate to the record first. Every edge from a state of
// from to to must be in the state machine (Allowed); otherwise nothing is read
// or written and the error wraps ErrNotInMachine. It returns a *StateError
// (with the current record) when the record is in no state of from: that is how
// a duplicate delivery learns it has nothing to do. When to is terminal the TTL
// field is set to now+ttl and the lease is released.
func Transition(ctx context.Context, s Updater, key string, from []State, to State, now time.Time, ttl time.Duration, mutate func(r *Record) error) (*Record, error) {
	return TransitionPath(ctx, s, key, from, []State{to}, now, ttl, mutate)
}

// TransitionPath is Transition along several edges in one write: from a
// state of from through each state of path in turn, each change kept in the
// history (a re-entry of the state the record is in is none). It merges
// transitions that need no durable point between them (the claim and the
// signing intent; the operation and the signature) without adding edges to
// the state machine: every edge on the way must be in it.
func TransitionPath(ctx context.Context, s Updater, key string, from []State, path []State, now time.Time, ttl time.Duration, mutate func(r *Record) error) (*Record, error) {
	if len(path) == 0 {
		return nil, fmt.Errorf("progress transition %s: %w: an empty path", key, ErrNotInMachine)
	}
	to := path[len(path)-1]
	if err := checkEdges(from, path[0]); err != nil {
		return nil, fmt.Errorf("progress transition %s: %w", key, err)
	}
	for i := 1; i < len(path); i++ {
		if err := checkEdges(path[i-1:i], path[i]); err != nil {
			return nil, fmt.Errorf("progress transition %s: %w", key, err)
		}
	}
	rec, err := s.Update(ctx, key, func(r *Record) error {
		if !slices.Contains(from, r.State) {
			return &StateError{Key: key, Want: from, Current: r.Clone()}
		}
		if mutate != nil {
			if err := mutate(r); err != nil {
				return err
			}
		}
		for _, st := range path {
			if r.State != st {
				r.History = append(r.History, Change{From: r.State, To: st, At: now})
			}
			r.State = st
		}
		if to.Terminal() {
			exp := now.Add(ttl)
			r.ExpireAt = &exp
			ReleaseLease(r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("progress transition %s to %s: %w", key, to, err)
	}
	return rec, nil
}
