// Package ca defines what the pipeline asks of a certificate authority (Issuer,
// and the optional Challenger), how a CA connector reports failure (every
// error says whether a retry can help), and the registry through which each
// connector package under shared/ca makes its type known (Register, New).
package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Request is one certificate request.
type Request struct {
	// CSR is the DER PKCS#10 request, signed by the client's key.
	CSR []byte
	// RequestID is stable for one process: a connector passes it to the CA as an
	// idempotency key where the CA has one, so a retry never issues twice.
	RequestID string
	// Validity is the requested lifetime; zero means the CA's default.
	Validity time.Duration
	// TemplateName names a CA-side certificate template, where the protocol has one.
	TemplateName string
}

// Issued is what a CA returned.
type Issued struct {
	// Leaf is the issued certificate; only it is uploaded.
	Leaf *x509.Certificate
	// Chain holds the intermediates, leaf first excluded, as the CA returned them.
	Chain []*x509.Certificate
}

// Kind says whether a retry of the same request can succeed.
type Kind int

const (
	// Transient failures (outage, throttling, timeout) are retried with backoff.
	Transient Kind = iota + 1
	// Permanent failures (refusal, bad configuration) end the process.
	Permanent
	// Pending means the CA accepted the request and will decide later
	// (SCEP PENDING, EST 202): ask again after RetryAfter with the same request.
	Pending
)

func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Pending:
		return "pending"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is a CA failure. UserMessage is written for the person at the device;
// Reason carries the CA's own words for the log.
type Error struct {
	Kind        Kind
	UserMessage string
	Reason      string
	RetryAfter  time.Duration
	Err         error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("ca %s: %s", e.Kind, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrThrottled is wrapped by a Transient error that says the CA's rate or
// quota was reached (CAS RESOURCE_EXHAUSTED, the development CA's rate): as
// the API's 429, never a process's failure.
var ErrThrottled = errors.New("the CA's issuance rate was reached")

// KindOf returns the kind of err: an *Error's own kind, Transient for anything else.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Transient
}
