// Package scep is the CA connector for SCEP (RFC 8894) certificate
// authorities: Microsoft NDES, step-ca's SCEP provisioner, micromdm's
// scepserver and others. It sends the client's CSR, which already carries
// the challengePassword inside its signed body, in a PKCSReq signed with the
// adapter's own key (the device signs only once), and follows a PENDING
// answer with CertPoll in the same transaction.
package scep

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/smallstep/scep"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/logging"
)

// Type is the connector type name in the adapter config.
const Type = "scep"

func init() { ca.Register(Type, ca.Connector{New: ca.Adapt(New), NeedsChallenge: needsChallenge}) }

// caInfoTTL is how long GetCACaps and GetCACert answers are reused, so that
// a renewed CA or RA certificate is picked up without a restart.
const caInfoTTL = 15 * time.Minute

// maxBody bounds every answer read from the CA or NDES.
const maxBody = 4 << 20

// Connector talks to one SCEP CA.
type Connector struct {
	cfg       *config
	client    *http.Client
	signerKey *rsa.PrivateKey
	// challenge secrets, resolved by New.
	staticChallenge      string
	ndesUser, ndesPasswd string

	mu      sync.Mutex
	info    *caInfo
	fetched time.Time
	now     func() time.Time
}

// New reads the settings (JSON, see Settings), resolves the secrets they
// name through secrets, and loads or generates the adapter's signer key. It
// does not contact the CA: that happens on first use.
func New(_ context.Context, settings json.RawMessage, secrets func(envName string) (string, error)) (*Connector, error) {
	cfg, err := parseSettings(settings)
	if err != nil {
		return nil, err
	}
	c := &Connector{cfg: cfg, client: &http.Client{Timeout: cfg.timeout}, now: time.Now}
	// Errors name the setting, never its value: a password written where
	// its variable's name belongs is not echoed.
	secret := func(field, env string) string {
		if env == "" {
			return ""
		}
		v, serr := ca.Secret(secrets, field, env)
		if serr != nil {
			err = errors.Join(err, fmt.Errorf("scep settings: %w", serr))
		}
		return v
	}
	c.staticChallenge = secret("challenge.secretEnv", cfg.secretEnv)
	c.ndesUser = secret("challenge.usernameEnv", cfg.usernameEnv)
	c.ndesPasswd = secret("challenge.passwordEnv", cfg.passwordEnv)
	if keyPEM := secret("signerKeyEnv", cfg.signerKeyEnv); keyPEM != "" {
		key, kerr := parseSignerKey([]byte(keyPEM))
		if kerr != nil {
			err = errors.Join(err, fmt.Errorf("scep settings: signerKeyEnv: %w", kerr))
		}
		c.signerKey = key
	}
	if err != nil {
		return nil, err
	}
	if c.signerKey == nil {
		if c.signerKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("scep: generate the signer key: %w", err)
		}
	}
	return c, nil
}

// parseSignerKey reads a PEM RSA private key (PKCS#1 or PKCS#8). The error
// never quotes the key.
func parseSignerKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	key, err := ca.ParsePrivateKey(pemBytes)
	if err != nil {
		return nil, err
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is %T; SCEP signers need RSA", key)
	}
	if rk.N.BitLen() < 2048 {
		return nil, fmt.Errorf("the RSA key has %d bits; at least 2048 are needed", rk.N.BitLen())
	}
	return rk, nil
}

// Roots returns the CA certificates an issued leaf must chain to: the
// pinned certificate when caFingerprint is set, else every CA certificate
// of GetCACert.
func (c *Connector) Roots(ctx context.Context) (_ []*x509.Certificate, err error) {
	defer ca.Recover(ctx, "scep: Roots", &err)
	info, err := c.caInfo(ctx)
	if err != nil {
		return nil, err
	}
	return append([]*x509.Certificate(nil), info.roots...), nil
}

// caInfo returns the CA's capabilities and certificates, fetched at most
// every caInfoTTL.
func (c *Connector) caInfo(ctx context.Context) (*caInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.info != nil && c.now().Sub(c.fetched) < caInfoTTL {
		return c.info, nil
	}
	info, err := c.fetchCAInfo(ctx)
	if err != nil {
		var pe *pinError
		if errors.As(err, &pe) {
			return nil, &ca.Error{Kind: ca.Permanent, UserMessage: MsgCAIdentity, Reason: "CA fingerprint pin mismatch", Err: pe}
		}
		return nil, err
	}
	c.info, c.fetched = info, c.now()
	return info, nil
}

func (c *Connector) forgetCAInfo() {
	c.mu.Lock()
	c.info = nil
	c.mu.Unlock()
}

// Issue enrolls req.CSR. It first asks the CA about req's transaction with
// CertPoll (a PENDING request approved since, or an answer lost in a crash
// or timeout, is fetched rather than requested again); when the CA does not
// know the transaction, or does not implement CertPoll, it sends PKCSReq.
//
// SUCCESS returns the leaf (the certificate for the CSR's key) and chain;
// PENDING returns a ca.Pending error: call Issue again with the same req
// after RetryAfter. FAILURE is ca.Permanent with a message for the device
// (see the Msg constants); an unreachable CA or a 5xx is ca.Transient.
func (c *Connector) Issue(ctx context.Context, req ca.Request) (_ *ca.Issued, err error) {
	defer ca.Recover(ctx, "scep: Issue", &err)
	if req.RequestID == "" {
		return nil, configError("the request has no RequestID", nil)
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, configError("the CSR does not parse", err)
	}
	info, err := c.caInfo(ctx)
	if err != nil {
		return nil, err
	}
	tid := TransactionID(req.RequestID)
	log := logging.From(ctx).With("scep_transaction_id", tid, "request_id", req.RequestID)

	poll, err := asn1.Marshal(issuerAndSubject{Issuer: asn1.RawValue{FullBytes: info.issuer}, Subject: asn1.RawValue{FullBytes: csr.RawSubject}})
	if err != nil {
		return nil, configError("encode CertPoll", err)
	}
	rep, err := c.exchange(ctx, info, scep.CertPoll, tid, csr.RawSubject, poll)
	switch {
	case err == nil && rep.status == scep.SUCCESS:
		log.InfoContext(ctx, "scep: CertPoll found the certificate")
		return c.issued(csr, info, rep)
	case err == nil && rep.status == scep.PENDING:
		log.InfoContext(ctx, "scep: CertPoll: still pending")
		return nil, c.pending()
	case err == nil:
		log.DebugContext(ctx, "scep: CertPoll: transaction unknown to the CA", "fail_info", failInfoName(rep.failInfo))
	case isNetworkError(err):
		return nil, err
	default:
		// Not implemented (scepserver and step-ca answer HTTP 500), or an
		// answer that does not verify: go on with PKCSReq.
		log.DebugContext(ctx, "scep: CertPoll not answered", "error", err)
	}

	rep, err = c.exchange(ctx, info, scep.PKCSReq, tid, csr.RawSubject, req.CSR)
	if err != nil {
		return nil, err
	}
	switch rep.status {
	case scep.SUCCESS:
		return c.issued(csr, info, rep)
	case scep.PENDING:
		log.InfoContext(ctx, "scep: PKCSReq pending")
		return nil, c.pending()
	default:
		return nil, failureError(rep.failInfo, rep.failText)
	}
}

func (c *Connector) pending() error {
	return &ca.Error{Kind: ca.Pending, Reason: "SCEP pkiStatus PENDING: the CA will decide later", RetryAfter: c.cfg.pollInterval}
}

// issued picks the leaf (the certificate for the CSR's key) and its chain.
func (c *Connector) issued(csr *x509.CertificateRequest, info *caInfo, rep *certRep) (*ca.Issued, error) {
	out := &ca.Issued{}
	seen := map[string]bool{}
	for _, cert := range rep.certs {
		if out.Leaf == nil && bytes.Equal(cert.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo) {
			out.Leaf = cert
			seen[string(cert.Raw)] = true
		}
	}
	if out.Leaf == nil {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: MsgWrongCertificate, Reason: fmt.Sprintf("SUCCESS carried %d certificate(s), none for the CSR's key", len(rep.certs))}
	}
	add := func(cert *x509.Certificate) {
		if !seen[string(cert.Raw)] && isCA(cert) {
			seen[string(cert.Raw)] = true
			out.Chain = append(out.Chain, cert)
		}
	}
	for _, cert := range rep.certs {
		if !selfSigned(cert) {
			add(cert)
		}
	}
	for _, cert := range info.intermediates {
		add(cert)
	}
	return out, nil
}

// networkError is a failure to reach the CA at all.
type networkError struct{ err error }

func (e *networkError) Error() string { return e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

func isNetworkError(err error) bool {
	var ne *networkError
	return errors.As(err, &ne)
}

// exchange sends one pkiMessage and reads the CertRep.
func (c *Connector) exchange(ctx context.Context, info *caInfo, mt scep.MessageType, tid string, subject, content []byte) (*certRep, error) {
	out, err := buildMessage(info, c.signerKey, subject, mt, tid, content)
	if err != nil {
		return nil, configError("build the "+msgName(mt)+" message", err)
	}
	var httpReq *http.Request
	if info.usePOST() {
		httpReq, err = http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint("PKIOperation", ""), bytes.NewReader(out.raw))
		if err == nil {
			httpReq.Header.Set("Content-Type", "application/x-pki-message")
		}
	} else {
		httpReq, err = http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("PKIOperation", base64.StdEncoding.EncodeToString(out.raw)), nil)
	}
	if err != nil {
		return nil, configError("make the HTTP request", err)
	}
	body, err := c.do(httpReq, "PKIOperation "+msgName(mt))
	if err != nil {
		return nil, err
	}
	rep, err := parseCertRep(body, info, out, c.signerKey, tid)
	if err != nil {
		if errors.Is(err, errUnverified) {
			// Perhaps the CA or RA certificate was renewed: fetch it again next time.
			c.forgetCAInfo()
		}
		return nil, transientError("the CertRep for "+msgName(mt)+" is unusable", err)
	}
	return rep, nil
}

// msgName names the message types sent (scep.MessageType.String panics on others).
func msgName(mt scep.MessageType) string {
	switch mt {
	case scep.PKCSReq:
		return "PKCSReq"
	case scep.CertPoll:
		return "CertPoll"
	}
	return "messageType " + string(mt)
}

// get runs a GET operation (GetCACaps, GetCACert).
func (c *Connector) get(ctx context.Context, op string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(op, ""), nil)
	if err != nil {
		return nil, configError("make the HTTP request", err)
	}
	return c.do(req, op)
}

func (c *Connector) endpoint(op, message string) string {
	q := url.Values{"operation": {op}}
	if message != "" {
		q.Set("message", message)
	}
	u := *c.cfg.url
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends req and returns a 200 answer's body; anything else is a *ca.Error.
func (c *Connector) do(req *http.Request, op string) ([]byte, error) {
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, transientError("scep "+op+": the CA is unreachable", &networkError{err})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, transientError("scep "+op+": reading the answer failed", &networkError{err})
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError("scep "+op, resp.StatusCode, snippet(body))
	}
	return body, nil
}

// snippet is the start of a text answer, for the log.
func snippet(body []byte) string {
	s := strings.ToValidUTF8(string(body), "?")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
