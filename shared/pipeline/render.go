package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/csr"
	"github.com/chromeos-certprov/adapter/shared/progress"
)

// Rendered is what ClaimProcess would ask a process's client to sign.
type Rendered struct {
	CAConnectionRef, ProfileRef string
	KeyType                     csr.KeyType
	SignatureAlgorithm          string
	// RequestInfo is the DER CertificationRequestInfo that signData would send.
	RequestInfo []byte
	// ChallengeExpiresAt is when a fetched SCEP challenge expires (zero: none, or it does not).
	ChallengeExpiresAt time.Time
	// Challenge: RequestInfo holds a challenge password.
	Challenge bool
}

// RefusedError is a process the claim would fail: Reason is recorded and
// logged, Message is what setFailure would show the device.
type RefusedError struct{ Reason, Message string }

func (e *RefusedError) Error() string { return e.Reason }

// Render builds what the claim of customer's process processID would send to
// signData for proc, through the claim's own plan (the operator CLI's
// "certprov render"). Like the claim it calls the CA connection only for a
// challenge (SCEP). A permanent problem is a *RefusedError.
func (p *Pipeline) Render(ctx context.Context, customer, processID string, proc *cpapi.Process) (*Rendered, error) {
	p.init()
	rec := &progress.Record{Key: progress.Key(customer, processID), Customer: customer, ProcessID: processID}
	pl, err := p.plan(ctx, rec, proc)
	if err != nil {
		var pe *planError
		if errors.As(err, &pe) {
			return nil, &RefusedError{Reason: pe.reason, Message: pe.message}
		}
		return nil, err
	}
	return &Rendered{
		CAConnectionRef: pl.caRef, ProfileRef: pl.profileRef, KeyType: pl.keyType, SignatureAlgorithm: pl.algorithm,
		RequestInfo: pl.signData, ChallengeExpiresAt: pl.challengeExpires, Challenge: pl.secret,
	}, nil
}
