package simulation

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"sync"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
)

// CARecorder wraps CA connections and records, per request id, every call and
// every distinct certificate the CA returned, so that "at most one
// certificate issued per process" is checked at the CA rather than trusted
// from the CA's own deduplication.
type CARecorder struct {
	mu   sync.Mutex
	byID map[string]*Issuance
	// answer, when set, answers an issuance instead of the CA (SetAnswer).
	answer func(req ca.Request) *ca.Issued
}

// Issuance is what the CA did for one request id.
type Issuance struct {
	Calls  int
	Errors int
	// Certs are the SHA-256 fingerprints (hex) of the distinct leaves returned.
	Certs []string
	// Time is the CA's time over all calls.
	Time time.Duration
}

// NewCARecorder returns an empty recorder.
func NewCARecorder() *CARecorder { return &CARecorder{byID: map[string]*Issuance{}} }

// Wrap returns iss recording into r. A connection that fetches challenges
// (pipeline.Challenger) keeps doing so; one that revokes (ca.Revoker, and
// no Challenger) too.
func (r *CARecorder) Wrap(iss pipeline.Issuer) pipeline.Issuer {
	w := &recordingIssuer{Issuer: iss, r: r}
	if ch, ok := iss.(pipeline.Challenger); ok {
		return &recordingChallenger{recordingIssuer: w, ch: ch}
	}
	if rv, ok := iss.(ca.Revoker); ok {
		return &recordingRevoker{recordingIssuer: w, rv: rv}
	}
	return w
}

// SetAnswer makes the wrapped connections answer req with f(req) instead of
// asking the CA whenever f returns non-nil (the fault campaign's garbage
// certificates); what it answers is recorded as issued. Call it before Wrap's
// connections are used.
func (r *CARecorder) SetAnswer(f func(req ca.Request) *ca.Issued) { r.answer = f }

// Get returns a copy of what the CA did for requestID.
func (r *CARecorder) Get(requestID string) Issuance {
	r.mu.Lock()
	defer r.mu.Unlock()
	if is, ok := r.byID[requestID]; ok {
		c := *is
		c.Certs = append([]string(nil), is.Certs...)
		return c
	}
	return Issuance{}
}

// Totals returns the calls and the distinct certificates over every request id.
func (r *CARecorder) Totals() (calls, certs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, is := range r.byID {
		calls += is.Calls
		certs += len(is.Certs)
	}
	return calls, certs
}

func (r *CARecorder) record(id string, leaf *x509.Certificate, err error, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	is := r.byID[id]
	if is == nil {
		is = &Issuance{}
		r.byID[id] = is
	}
	is.Calls++
	is.Time += d
	if err != nil {
		is.Errors++
		return
	}
	if leaf == nil {
		return
	}
	fp := Fingerprint(leaf.Raw)
	for _, c := range is.Certs {
		if c == fp {
			return
		}
	}
	is.Certs = append(is.Certs, fp)
}

// Fingerprint is the hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// PEMFingerprint is the Fingerprint of the first certificate in a PEM text
// ("" if there is none).
func PEMFingerprint(p string) string {
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return ""
	}
	return Fingerprint(b.Bytes)
}

type recordingIssuer struct {
	pipeline.Issuer
	r *CARecorder
}

func (w *recordingIssuer) Issue(ctx context.Context, req ca.Request) (*ca.Issued, error) {
	start := time.Now()
	var iss *ca.Issued
	var err error
	if w.r.answer != nil {
		iss = w.r.answer(req)
	}
	if iss == nil {
		iss, err = w.Issuer.Issue(ctx, req)
	}
	var leaf *x509.Certificate
	if iss != nil {
		leaf = iss.Leaf
	}
	w.r.record(req.RequestID, leaf, err, time.Since(start))
	return iss, err
}

type recordingChallenger struct {
	*recordingIssuer
	ch pipeline.Challenger
}

func (w *recordingChallenger) Challenge(ctx context.Context, processKey string) (string, time.Time, error) {
	return w.ch.Challenge(ctx, processKey)
}

type recordingRevoker struct {
	*recordingIssuer
	rv ca.Revoker
}

func (w *recordingRevoker) Revoke(ctx context.Context, r ca.Revocation) error {
	return w.rv.Revoke(ctx, r)
}
