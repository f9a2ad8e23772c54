// Package devca is the built-in development CA: it issues certificates itself,
// from a key and certificate read from files or generated at start. It is for
// local runs, tests and benchmarks, and for trying a configuration before a real
// CA is connected. It revokes too (ca.Revoker): the revoked certificates are in
// the CRL it signs and serves (crl.go).
package devca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/strictjson"
)

// Type is the connector type name in the adapter config.
const Type = "dev"

func init() { ca.Register(Type, ca.Connector{New: ca.Adapt(New)}) }

// Settings of a development CA connection.
type Settings struct {
	// CertFile and KeyFile hold a PEM CA certificate and its PEM private key
	// (PKCS#8, PKCS#1 or SEC 1). KeyEnv names an environment variable (a secret)
	// holding the key instead of KeyFile. With neither, a CA is generated at
	// start (one per process: fine for a local run, not for a deployment).
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	KeyEnv   string `json:"keyEnv,omitempty"`
	// Validity of issued certificates when the request has none; default 24h.
	Validity string `json:"validity,omitempty"`
	// CommonName of a generated CA; default "certprov development CA".
	CommonName string `json:"commonName,omitempty"`
}

// Connector issues certificates with the CA's key.
type Connector struct {
	cert     *x509.Certificate
	key      crypto.Signer
	validity time.Duration

	mu     sync.Mutex
	issued map[string]*x509.Certificate // by RequestID
	fault  func(req ca.Request) error
	// revoked holds the revoked certificates' CRL entries, by serial (hex).
	revoked   map[string]x509.RevocationListEntry
	crlNumber int64
	rate      *rate // SetRate (rate.go)

	count atomic.Int64
}

// New reads settings (JSON) and loads or generates the CA.
func New(_ context.Context, settings json.RawMessage, secrets func(string) (string, error)) (*Connector, error) {
	var s Settings
	if len(bytes.TrimSpace(settings)) > 0 {
		if err := strictjson.Unmarshal(settings, &s); err != nil {
			return nil, fmt.Errorf("dev CA settings: %w", err)
		}
	}
	var errs []error
	validity := 24 * time.Hour
	if s.Validity != "" {
		d, err := time.ParseDuration(s.Validity)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("dev CA settings: validity %q is not a positive duration", s.Validity))
		}
		validity = d
	}
	if s.KeyFile != "" && s.KeyEnv != "" {
		errs = append(errs, errors.New("dev CA settings: keyFile and keyEnv are both set"))
	}
	if (s.CertFile == "") != (s.KeyFile == "" && s.KeyEnv == "") {
		errs = append(errs, errors.New("dev CA settings: certFile needs keyFile or keyEnv, and they need certFile"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c := &Connector{validity: validity, issued: map[string]*x509.Certificate{}, revoked: map[string]x509.RevocationListEntry{}}
	if s.CertFile == "" {
		cn := s.CommonName
		if cn == "" {
			cn = "certprov development CA"
		}
		cert, key, err := Generate(cn)
		if err != nil {
			return nil, err
		}
		c.cert, c.key = cert, key
		return c, nil
	}
	certPEM, err := os.ReadFile(s.CertFile)
	if err != nil {
		return nil, fmt.Errorf("dev CA settings: certFile: %w", err)
	}
	var keyPEM []byte
	if s.KeyFile != "" {
		if keyPEM, err = os.ReadFile(s.KeyFile); err != nil {
			return nil, fmt.Errorf("dev CA settings: keyFile: %w", err)
		}
	} else {
		v, err := ca.Secret(secrets, "keyEnv", s.KeyEnv)
		if err != nil {
			return nil, fmt.Errorf("dev CA settings: %w", err) // never the value: it may be the key itself
		}
		keyPEM = []byte(v)
	}
	if c.cert, c.key, err = parse(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("dev CA settings: %w", err)
	}
	return c, nil
}

// Generate makes a self-signed EC P-256 CA.
func Generate(cn string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("dev CA: generate key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("dev CA: self-sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func parse(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	certs, err := ca.ParseChain(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("certFile: %w", err)
	}
	cert := certs[0]
	signer, err := ca.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("the CA key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil || !bytes.Equal(pub, cert.RawSubjectPublicKeyInfo) {
		return nil, nil, errors.New("the CA key does not match the CA certificate")
	}
	if !cert.IsCA {
		return nil, nil, errors.New("the CA certificate is not a CA (basicConstraints)")
	}
	return cert, signer, nil
}

// Certificate is the CA's certificate.
func (c *Connector) Certificate() *x509.Certificate { return c.cert }

// Roots returns the CA certificate.
func (c *Connector) Roots(context.Context) ([]*x509.Certificate, error) {
	return []*x509.Certificate{c.cert}, nil
}

// Issued counts certificates issued (a repeated RequestID issues none).
func (c *Connector) Issued() int64 { return c.count.Load() }

// SetFault makes Issue return fn's error, when not nil, before issuing
// (outages and refusals for tests and the fault campaign).
func (c *Connector) SetFault(fn func(req ca.Request) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = fn
}

var oidExtensionRequestSAN = []int{2, 5, 29, 17}

// Issue signs the CSR's key and requested extensions. The same RequestID
// returns the certificate issued before.
func (c *Connector) Issue(ctx context.Context, req ca.Request) (_ *ca.Issued, err error) {
	defer ca.Recover(ctx, "dev: Issue", &err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fault != nil {
		if err := c.fault(req); err != nil {
			return nil, err
		}
	}
	if req.RequestID == "" {
		return nil, &ca.Error{Kind: ca.Permanent, Reason: "request without a request id", UserMessage: "The adapter made an invalid certificate request. Contact your administrator."}
	}
	if cert, ok := c.issued[req.RequestID]; ok {
		return &ca.Issued{Leaf: cert}, nil
	}
	if c.rate != nil {
		if err := c.rate.take(); err != nil {
			return nil, err
		}
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, &ca.Error{Kind: ca.Permanent, Reason: "CSR does not parse", Err: err, UserMessage: "The certificate authority could not read the certificate request. Contact your administrator."}
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, &ca.Error{Kind: ca.Permanent, Reason: "CSR signature invalid", Err: err, UserMessage: "The certificate request was not signed by this device's key. Try again later."}
	}
	validity := req.Validity
	if validity <= 0 {
		validity = c.validity
	}
	sum := sha256.Sum256([]byte(req.RequestID))
	serial := new(big.Int).SetBytes(sum[:16])
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      csr.Subject,
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(validity),
		// The CSR's requested extensions (SAN, key usage, EKU, template name)
		// are copied as they are.
		ExtraExtensions: csr.Extensions,
	}
	if !hasExtension(csr, oidExtensionRequestSAN) && csr.Subject.CommonName == "" {
		return nil, &ca.Error{Kind: ca.Permanent, Reason: "CSR names no subject", UserMessage: "The certificate request names no one. Ask your administrator to check the certificate profile."}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.key)
	if err != nil {
		return nil, &ca.Error{Kind: ca.Permanent, Reason: "sign certificate", Err: err, UserMessage: "The certificate authority could not issue the certificate. Contact your administrator."}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("dev CA: parse issued certificate: %w", err)
	}
	c.issued[req.RequestID] = cert
	c.count.Add(1)
	return &ca.Issued{Leaf: cert}, nil
}

func hasExtension(csr *x509.CertificateRequest, oid []int) bool {
	for _, e := range csr.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}
