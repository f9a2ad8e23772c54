package pipeline_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"

	"github.com/chromeos-certprov/adapter/shared/progress"
)

// compatCase is one entry of a release's cases.json (testdata/release-*):
// a progress record and a delivery written by that release, and what the
// release had already done at the API and the CA when it wrote them.
// captureRelease writes it (capture_test.go; see the directory's README.md);
// TestReleaseCompat reads it.
type compatCase struct {
	Name  string `json:"name"`
	About string `json:"about"`
	// ProcessID is the emulated process's id (customer: the harness's).
	ProcessID string `json:"processId"`
	// Record names the file of the progress record (progress.Record JSON).
	Record string `json:"record"`
	// Replay is what had reached the API and the CA when the record was
	// written; the test makes the same calls before it delivers.
	Replay compatReplay `json:"replay"`
	// Deliver is the delivery that carries the record on.
	Deliver compatDelivery `json:"deliver"`
	// Now is the (virtual) time of the delivery.
	Now time.Time `json:"now"`
	// Want is the state the process must end in: UPLOADED or FAILED.
	Want progress.State `json:"want"`
}

// compatReplay lists the calls made before the record was captured.
type compatReplay struct {
	Claimed  bool `json:"claimed,omitempty"`
	SignData bool `json:"signData,omitempty"`
	CAIssued bool `json:"caIssued,omitempty"`
	Uploaded bool `json:"uploaded,omitempty"`
}

// compatDelivery is a captured request to one of the functions.
type compatDelivery struct {
	// Route is "claim" (a Pub/Sub push to ClaimProcess), "poll"
	// (PollSignature) or "issue" (IssueCertificate).
	Route string `json:"route"`
	// Body names the file holding the request body, byte for byte.
	Body string `json:"body"`
	// Task is the Cloud Tasks task name ("" for a push or the scheduler).
	Task string `json:"task,omitempty"`
	// Path is the request path ("" for the function's root).
	Path string `json:"path,omitempty"`
}

// clockedCA is a development CA on the test's clock: devca stamps its
// certificates with the real time, which a record written on a virtual clock
// would find not yet valid. Like devca, a repeated RequestID gets the
// certificate issued before.
type clockedCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	now  func() time.Time

	mu     sync.Mutex
	issued map[string]*x509.Certificate
	refuse error
}

// loadClockedCA reads the CA's PEM certificate and PKCS#8 key.
func loadClockedCA(certPEM, keyPEM []byte, now func() time.Time) (*clockedCA, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("compat CA: no PEM certificate or key")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("compat CA certificate: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("compat CA key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("compat CA key is not a signer")
	}
	return &clockedCA{cert: cert, key: signer, now: now, issued: map[string]*x509.Certificate{}}, nil
}

func (c *clockedCA) Issue(_ context.Context, req ca.Request) (*ca.Issued, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse != nil {
		return nil, c.refuse
	}
	if cert, ok := c.issued[req.RequestID]; ok {
		return &ca.Issued{Leaf: cert}, nil
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, &ca.Error{Kind: ca.Permanent, Reason: "CSR does not parse", Err: err}
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, &ca.Error{Kind: ca.Permanent, Reason: "CSR signature invalid", Err: err}
	}
	sum := sha256.Sum256([]byte(req.RequestID))
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(sum[:16]), Subject: csr.Subject,
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(24 * time.Hour), ExtraExtensions: csr.Extensions,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("compat CA: sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("compat CA: parse: %w", err)
	}
	c.issued[req.RequestID] = cert
	return &ca.Issued{Leaf: cert}, nil
}

func (c *clockedCA) Roots(context.Context) ([]*x509.Certificate, error) {
	return []*x509.Certificate{c.cert}, nil
}

// count is how many distinct certificates the CA issued.
func (c *clockedCA) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.issued)
}
