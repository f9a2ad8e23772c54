// Package est is the CA connector for Enrollment over Secure Transport
// (RFC 7030), through the client of github.com/globalsign/est.
//
// Settings (the "settings" object of a caConnections entry of type "est"):
//
//	{
//	  "url": "https://est.example.com:8443",  // required: https, host[:port], no path
//	  "label": "devices",                     // optional: the additional path segment (/.well-known/est/<label>/...)
//	  "usernameEnv": "EST_USERNAME",          // optional, with passwordEnv: HTTP basic authentication
//	  "passwordEnv": "EST_PASSWORD",
//	  "clientCertFile": "est-client.pem",     // optional, with clientKeyEnv: TLS client authentication
//	  "clientKeyEnv": "EST_CLIENT_KEY",       //   (PEM certificate chain file; PEM private key secret)
//	  "caFile": "est-tls-ca.pem",             // optional: PEM anchors for the server's TLS certificate
//	  "caPin": "5f3c…",                       // optional: SHA-256 (hex) of the CA certificate leaves must chain to
//	  "timeout": "30s"                        // optional: bound of each request to the server, default 30s
//	}
//
// Secrets are named by environment variable (usernameEnv, passwordEnv,
// clientKeyEnv) and read through the secrets function given to New; the
// username is read the same way for convenience. They are never logged or put
// in errors.
//
// Trust: the TLS connection is verified against caFile, or the system roots
// when caFile is not set; there is no way to turn verification off. Roots
// returns the CA certificates from /cacerts (cached for an hour): with caPin,
// only the certificate with that SHA-256 fingerprint, which must be among
// them (else a Permanent error); without it, the self-signed ones. The other
// /cacerts certificates are the intermediates returned as Issued.Chain, since
// /simpleenroll returns the leaf alone.
//
// Issue posts the CSR, unchanged, to /simpleenroll. EST has no template or
// validity parameter: the CA (and the label) decide, so ca.Request.TemplateName
// and Validity are not sent. Answers:
//
//   - 200: the certificate.
//   - 202 with Retry-After: ca.Error{Kind: Pending, RetryAfter}; the pipeline
//     asks again later with the same CSR, as RFC 7030 4.2.3 wants (the client
//     re-sends the same request), so the device signs only once.
//   - 408, 429, 5xx, network failures, timeouts: Transient.
//   - other 4xx (400 invalid request, 401 bad credentials, 403 refused, 404
//     wrong URL or label): Permanent, with a UserMessage for the person at the
//     device and the server's text as Reason. A TLS certificate the adapter
//     cannot verify, or a TLS client certificate the server refuses, is
//     Permanent too (a configuration problem no retry can fix).
//
// EST has no idempotency key: a retry after a lost 200 may make the CA issue a
// second certificate. Retries only follow failures, and the pipeline stores
// the certificate it gets and uploads exactly one per process; a CA that
// renews by subject will see at most a repeated enrollment.
package est

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/strictjson"
	globalsign "github.com/globalsign/est"
)

// Settings is the connector's JSON settings object.
type Settings struct {
	// URL is the server's base URL, https://host[:port].
	URL string `json:"url"`
	// Label is the optional additional path segment (RFC 7030 3.2.2).
	Label string `json:"label,omitempty"`
	// UsernameEnv and PasswordEnv name the secrets for HTTP basic authentication.
	UsernameEnv string `json:"usernameEnv,omitempty"`
	PasswordEnv string `json:"passwordEnv,omitempty"`
	// ClientCertFile is a PEM file with the TLS client certificate (chain,
	// leaf first); ClientKeyEnv names the secret holding its PEM private key.
	ClientCertFile string `json:"clientCertFile,omitempty"`
	ClientKeyEnv   string `json:"clientKeyEnv,omitempty"`
	// CAFile is a PEM file of trust anchors for the server's TLS certificate.
	CAFile string `json:"caFile,omitempty"`
	// CAPin is the hex SHA-256 of the DER CA certificate issued leaves must
	// chain to; it must be among the /cacerts certificates.
	CAPin string `json:"caPin,omitempty"`
	// Timeout bounds each request to the server (a Go duration); default
	// DefaultTimeout. The caller's context deadline, when shorter, wins.
	Timeout string `json:"timeout,omitempty"`
}

// DefaultTimeout bounds each request when the settings name no timeout:
// globalsign's client builds an http.Client without one.
const DefaultTimeout = 30 * time.Second

// DefaultRetryAfter is the wait on a 202 without a usable Retry-After.
const DefaultRetryAfter = 5 * time.Minute

// caCertsTTL is how long /cacerts answers are reused.
const caCertsTTL = time.Hour

// Connector enrolls with one EST server.
type Connector struct {
	client  globalsign.Client
	api     estAPI // &client; a seam for tests
	pin     []byte
	timeout time.Duration

	mu      sync.Mutex
	cacerts []*x509.Certificate
	fetched time.Time
}

// estAPI is what the connector asks of globalsign's client.
type estAPI interface {
	CACerts(ctx context.Context) ([]*x509.Certificate, error)
	Enroll(ctx context.Context, r *x509.CertificateRequest) (*x509.Certificate, error)
}

var (
	labelRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
)

// Type is the connector type name in the adapter config.
const Type = "est"

func init() { ca.Register(Type, ca.Connector{New: ca.Adapt(New)}) }

// New checks settings, reads the files and secrets they name, and makes the
// client. It does not contact the server.
func New(ctx context.Context, settings json.RawMessage, secrets func(envName string) (string, error)) (*Connector, error) {
	var s Settings
	if err := strictjson.Unmarshal(settings, &s); err != nil {
		return nil, fmt.Errorf("est settings: %w", err)
	}
	c := &Connector{client: globalsign.Client{DisableKeepAlives: true}, timeout: DefaultTimeout}
	c.api = &c.client
	var errs []error
	// Errors name a setting that may hold a secret (a URL's password or
	// query, a password written where its variable's name belongs), never
	// its value.
	secret := func(field, name string) string {
		v, err := ca.Secret(secrets, field, name)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}

	u, err := url.Parse(s.URL)
	switch {
	case s.URL == "":
		errs = append(errs, errors.New("url is required (https://host[:port])"))
	case err != nil:
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL
		}
		errs = append(errs, fmt.Errorf("url is not a URL: %v", err))
	case u.User != nil:
		errs = append(errs, errors.New("url must not carry credentials: name them with usernameEnv and passwordEnv"))
	case u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		(u.Path != "" && u.Path != "/" && u.Path != "/.well-known/est" && u.Path != "/.well-known/est/"):
		errs = append(errs, errors.New("url must be https://host[:port], without a path, query or fragment"))
	default:
		c.client.Host = u.Host
	}
	if s.Label != "" {
		if labelRE.MatchString(s.Label) {
			c.client.AdditionalPathSegment = s.Label
		} else {
			errs = append(errs, fmt.Errorf("label %q must be one URL path segment (letters, digits, . _ ~ -)", s.Label))
		}
	}
	if (s.UsernameEnv == "") != (s.PasswordEnv == "") {
		errs = append(errs, errors.New("usernameEnv and passwordEnv go together"))
	} else if s.UsernameEnv != "" {
		c.client.Username = secret("usernameEnv", s.UsernameEnv)
		c.client.Password = secret("passwordEnv", s.PasswordEnv)
	}
	if (s.ClientCertFile == "") != (s.ClientKeyEnv == "") {
		errs = append(errs, errors.New("clientCertFile and clientKeyEnv go together"))
	} else if s.ClientCertFile != "" {
		certPEM, err := os.ReadFile(s.ClientCertFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("clientCertFile: %w", err))
		}
		keyPEM := secret("clientKeyEnv", s.ClientKeyEnv)
		if err == nil && keyPEM != "" {
			pair, err := tls.X509KeyPair(certPEM, []byte(keyPEM))
			if err != nil {
				errs = append(errs, fmt.Errorf("clientCertFile with the clientKeyEnv key: %w", err))
			} else {
				for _, der := range pair.Certificate {
					cert, err := x509.ParseCertificate(der)
					if err != nil {
						errs = append(errs, fmt.Errorf("clientCertFile: %w", err))
						break
					}
					c.client.Certificates = append(c.client.Certificates, cert)
				}
				c.client.PrivateKey = pair.PrivateKey
			}
		}
	}
	if s.CAFile != "" {
		b, err := os.ReadFile(s.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("caFile: %w", err))
		} else if certs, err := ca.ParseChain(b); err != nil {
			errs = append(errs, fmt.Errorf("caFile %s: %w", s.CAFile, err))
		} else {
			pool := x509.NewCertPool()
			for _, cert := range certs {
				pool.AddCert(cert)
			}
			c.client.ExplicitAnchor = pool
		}
	}
	if s.CAPin != "" {
		pin, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(strings.ToLower(s.CAPin), "sha256:"), ":", ""))
		if err != nil || len(pin) != sha256.Size {
			errs = append(errs, fmt.Errorf("caPin %q is not a hex SHA-256 fingerprint (64 hex digits)", s.CAPin))
		}
		c.pin = pin
	}
	if s.Timeout != "" {
		d, err := time.ParseDuration(s.Timeout)
		if err != nil || d <= 0 {
			errs = append(errs, errors.New("timeout is not a positive duration (like \"30s\")"))
		}
		c.timeout = d
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("est settings: %w", err)
	}
	return c, nil
}

// Issue enrolls req.CSR with /simpleenroll (see the package doc for the
// answers and their kinds).
func (c *Connector) Issue(ctx context.Context, req ca.Request) (_ *ca.Issued, err error) {
	defer ca.Recover(ctx, "est: Issue", &err)
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgBadCSR, Reason: "the CSR does not parse", Err: err}
	}
	// /cacerts first: once the CA has issued, nothing else may fail.
	cacerts, err := c.caCerts(ctx)
	if err != nil {
		return nil, err
	}
	_, chain, err := c.split(cacerts)
	if err != nil {
		return nil, err
	}
	leaf, err := c.enroll(ctx, csr)
	if err != nil {
		return nil, classify("simpleenroll", err)
	}
	if k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(csr.PublicKey) {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgBadAnswer, Reason: "the EST server returned a certificate for another key"}
	}
	return &ca.Issued{Leaf: leaf, Chain: chain}, nil
}

// Roots returns the CA certificates issued leaves must chain to: the pinned
// one, or the self-signed certificates of /cacerts.
func (c *Connector) Roots(ctx context.Context) (_ []*x509.Certificate, err error) {
	defer ca.Recover(ctx, "est: Roots", &err)
	cacerts, err := c.caCerts(ctx)
	if err != nil {
		return nil, err
	}
	roots, _, err := c.split(cacerts)
	return roots, err
}

// caCerts returns /cacerts, fetched at most once an hour.
func (c *Connector) caCerts(ctx context.Context) ([]*x509.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cacerts != nil && time.Since(c.fetched) < caCertsTTL {
		return c.cacerts, nil
	}
	reqCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	certs, err := c.api.CACerts(reqCtx)
	if err != nil {
		return nil, classify("cacerts", err)
	}
	if len(certs) == 0 {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgBadAnswer, Reason: "/cacerts returned no certificates"}
	}
	c.cacerts, c.fetched = certs, time.Now()
	return certs, nil
}

// enroll posts csr to /simpleenroll within the request timeout.
func (c *Connector) enroll(ctx context.Context, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.api.Enroll(ctx, csr)
}

// split divides /cacerts into roots and intermediates.
func (c *Connector) split(certs []*x509.Certificate) (roots, intermediates []*x509.Certificate, err error) {
	for _, cert := range certs {
		var isRoot bool
		if c.pin != nil {
			sum := sha256.Sum256(cert.Raw)
			isRoot = bytes.Equal(sum[:], c.pin)
		} else {
			isRoot = bytes.Equal(cert.RawIssuer, cert.RawSubject) && cert.CheckSignatureFrom(cert) == nil
		}
		if isRoot {
			roots = append(roots, cert)
		} else {
			intermediates = append(intermediates, cert)
		}
	}
	switch {
	case len(roots) > 0:
		return roots, intermediates, nil
	case c.pin != nil:
		return nil, nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgSettings,
			Reason: fmt.Sprintf("the pinned CA certificate (caPin %x) is not among the %d /cacerts certificates", c.pin, len(certs))}
	}
	// No self-signed certificate: trust what the server named.
	return slices.Clone(certs), nil, nil
}

const (
	msgBadCSR       = "The certificate request could not be read. Ask your administrator to check the adapter."
	msgSettings     = "The certificate authority settings are not usable. Ask your administrator to check the adapter's EST settings."
	msgBadAnswer    = "The certificate authority sent an answer the adapter could not use. Ask your administrator to check the EST server."
	msgUnavailable  = "The certificate authority is not reachable at the moment. The adapter retries; if this lasts, ask your administrator."
	msgPending      = "The certificate authority is holding the request for approval. The adapter asks again later."
	msgBadRequest   = "The certificate authority refused the request as invalid. Ask your administrator to check the certificate profile and the EST server."
	msgUnauthorized = "The certificate authority did not accept the adapter's credentials. Ask your administrator to check the adapter's EST settings."
	msgForbidden    = "The certificate authority refused the request (forbidden). Ask your administrator to check the EST server's enrollment policy and the adapter's EST settings."
	msgNotFound     = "The certificate authority's EST service was not found. Ask your administrator to check the adapter's EST URL and label."
	msgTLSTrust     = "The adapter could not verify the certificate authority's TLS certificate. Ask your administrator to check the adapter's EST trust settings (caFile)."
	msgTLSRefused   = "The certificate authority refused the adapter's TLS connection (client certificate). Ask your administrator to check the adapter's EST client certificate."
)

// classify maps an EST client error to a *ca.Error.
func classify(op string, err error) error {
	var estErr globalsign.Error
	if errors.As(err, &estErr) {
		code := estErr.StatusCode()
		e := &ca.Error{Reason: fmt.Sprintf("%s: HTTP %d: %s", op, code, strings.TrimSpace(estErr.Error())), Err: err}
		if secs := estErr.RetryAfter(); secs > 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
		switch {
		case code == http.StatusAccepted:
			e.Kind, e.UserMessage = ca.Pending, msgPending
			if e.RetryAfter == 0 {
				e.RetryAfter = DefaultRetryAfter
			}
		case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
			e.Kind, e.UserMessage = ca.Transient, msgUnavailable
		case code == http.StatusBadRequest:
			e.Kind, e.UserMessage = ca.Permanent, msgBadRequest
		case code == http.StatusUnauthorized:
			e.Kind, e.UserMessage = ca.Permanent, msgUnauthorized
		case code == http.StatusForbidden:
			e.Kind, e.UserMessage = ca.Permanent, msgForbidden
		case code == http.StatusNotFound:
			e.Kind, e.UserMessage = ca.Permanent, msgNotFound
		case code >= 400:
			e.Kind = ca.Permanent
			e.UserMessage = fmt.Sprintf("The certificate authority refused the request (HTTP %d). Ask your administrator to check the adapter's EST settings.", code)
		default:
			e.Kind, e.UserMessage = ca.Transient, msgUnavailable
		}
		return e
	}
	wrapped := fmt.Errorf("est %s: %w", op, err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &ca.Error{Kind: ca.Transient, UserMessage: msgUnavailable, Reason: op + " timed out", Err: wrapped}
	}
	var verr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalid) {
		return &ca.Error{Kind: ca.Permanent, UserMessage: msgTLSTrust, Reason: op + ": the server's TLS certificate does not verify", Err: wrapped}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" {
		// A TLS alert from the server: about our certificate, a refusal;
		// anything else may pass.
		if a := opErr.Err.Error(); strings.Contains(a, "certificate") || strings.Contains(a, "access denied") {
			return &ca.Error{Kind: ca.Permanent, UserMessage: msgTLSRefused, Reason: op + ": the server refused the TLS handshake: " + a, Err: wrapped}
		}
		return &ca.Error{Kind: ca.Transient, UserMessage: msgUnavailable, Reason: op + ": TLS alert from the server", Err: wrapped}
	}
	var netErr net.Error
	var urlErr *url.Error
	if errors.As(err, &netErr) || errors.As(err, &urlErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &ca.Error{Kind: ca.Transient, UserMessage: msgUnavailable, Reason: op + ": the server could not be reached", Err: wrapped}
	}
	// The server answered 200 with something unreadable: retrying would
	// enroll again for the same answer.
	return &ca.Error{Kind: ca.Permanent, UserMessage: msgBadAnswer, Reason: op + ": unreadable answer", Err: wrapped}
}
