// Package cas is the CA connector for Google Cloud Certificate Authority
// Service, through Google's client (cloud.google.com/go/security/privateca/apiv1).
//
// Settings (the "settings" object of a caConnections entry of type "cas"):
//
//	{
//	  "caPool": "projects/P/locations/L/caPools/X",                         // required
//	  "certificateAuthority": "ca-id",                                      // optional: issue from this CA of the pool
//	  "certificateTemplate": "projects/P/locations/L/certificateTemplates/T", // optional, same location as the pool
//	  "lifetime": "720h",                                                   // optional, Go duration, default 720h
//	  "endpoint": "127.0.0.1:9443"                                          // optional, tests only: loopback, insecure, no auth
//	}
//
// There are no secrets: the client authenticates with the function's service
// account (Application Default Credentials), which needs on the pool exactly
// privateca.caPools.get (FetchCaCerts), privateca.certificates.create
// (CreateCertificate) and privateca.certificates.get (GetCertificate after a
// retry): terraform/cas.tf grants a custom role with these three, since
// roles/privateca.certificateRequester lacks both reads. A template, if one is
// used, needs privateca.certificateTemplates.use (roles/privateca.templateUser
// on the template).
//
// Revoke (ca.Revoker, revoke.go) revokes a certificate the connector issued
// with RevokeCertificate and the reason; it needs privateca.certificates.update
// on the pool, which terraform/reconcile.tf grants (a role of its own) only
// when the reconciliation is on.
//
// Issue reads the pool's CA certificates (FetchCaCerts), then sends
// CreateCertificate with the CSR as pem_csr; Roots reuses those CA
// certificates, so a certificate once issued is checked without another call. A request whose
// TemplateName is set overrides certificateTemplate: a full template name is
// used as it is, a bare id names a template in the pool's project and
// location. The request's Validity, if set, overrides lifetime. CSR
// extensions other than the subject alternative names (for example the
// Microsoft certificate-template extension) reach the certificate only where
// the CAS template's passthrough_extensions allow them.
//
// One certificate per process, under retries: the request_id is a name-based
// (version 5) UUID of the pool and ca.Request.RequestID, so a retry within
// the service's request_id window (at least 60 minutes) returns the first
// certificate; and the certificate_id is derived from the RequestID too
// ("certprov-<RequestID>", or a hash of it where it is not a valid id), so a
// later retry is AlreadyExists, on which the connector fetches the existing
// certificate with GetCertificate instead of issuing another. Certificate ids
// need the Enterprise tier; in the DevOps tier certificates are not stored and
// only the request_id window protects against a second issuance.
//
// Errors are *ca.Error: Unavailable, DeadlineExceeded, ResourceExhausted,
// Aborted, Internal, Unknown, Canceled, DataLoss, Unauthenticated (token
// trouble) and transport failures are Transient (the
// connector does not retry by itself: the platform retries with backoff);
// NotFound, PermissionDenied, InvalidArgument, FailedPrecondition and other
// refusals are Permanent, with a UserMessage for the person at the device and
// the service's own message as Reason.
package cas

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	privateca "cloud.google.com/go/security/privateca/apiv1"
	"cloud.google.com/go/security/privateca/apiv1/privatecapb"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/strictjson"
	"github.com/google/uuid"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Type is the connector type name in the adapter config.
const Type = "cas"

func init() { ca.Register(Type, ca.Connector{New: ca.Adapt(New)}) }

// DefaultLifetime is the certificate lifetime when neither the settings nor
// the request give one.
const DefaultLifetime = 720 * time.Hour

// Settings is the connector's JSON settings object.
type Settings struct {
	// CAPool is the pool's full resource name: projects/P/locations/L/caPools/X.
	CAPool string `json:"caPool"`
	// CertificateAuthority optionally names the CA of the pool that issues
	// (issuing_certificate_authority_id); empty lets the service choose.
	CertificateAuthority string `json:"certificateAuthority,omitempty"`
	// CertificateTemplate is an optional template's full resource name,
	// projects/P/locations/L/certificateTemplates/T, in the pool's location.
	CertificateTemplate string `json:"certificateTemplate,omitempty"`
	// Lifetime is a Go duration ("720h"); default DefaultLifetime.
	Lifetime string `json:"lifetime,omitempty"`
	// Endpoint is for tests only: a loopback host:port served without TLS
	// or authentication (the castest fake).
	Endpoint string `json:"endpoint,omitempty"`
}

// Connector issues certificates from one CA pool.
type Connector struct {
	client   *privateca.CertificateAuthorityClient
	pool     string
	project  string
	location string
	caID     string
	template string
	lifetime time.Duration

	mu      sync.Mutex
	roots   []*x509.Certificate
	fetched time.Time
}

// rootsTTL is how long Roots reuses the pool's CA certificates that Issue
// fetched before issuing.
const rootsTTL = 10 * time.Minute

var (
	poolRE     = regexp.MustCompile(`^projects/([a-z0-9.:-]+)/locations/([a-z0-9-]+)/caPools/([a-zA-Z0-9_-]{1,63})$`)
	templateRE = regexp.MustCompile(`^projects/([a-z0-9.:-]+)/locations/([a-z0-9-]+)/certificateTemplates/([a-zA-Z0-9_-]{1,63})$`)
	idRE       = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)
)

// New checks settings and makes the client. secrets is not used: the
// connector has no secrets (nil is fine).
func New(ctx context.Context, settings json.RawMessage, secrets func(envName string) (string, error)) (*Connector, error) {
	s, err := parseSettings(settings)
	if err != nil {
		return nil, err
	}
	m := poolRE.FindStringSubmatch(s.CAPool)
	c := &Connector{
		pool:     s.CAPool,
		project:  m[1],
		location: m[2],
		caID:     s.CertificateAuthority,
		template: s.CertificateTemplate,
		lifetime: DefaultLifetime,
	}
	if s.Lifetime != "" {
		c.lifetime, _ = time.ParseDuration(s.Lifetime) // checked in parseSettings
	}
	var opts []option.ClientOption
	if s.Endpoint != "" {
		opts = append(opts,
			option.WithEndpoint(s.Endpoint),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	c.client, err = privateca.NewCertificateAuthorityClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("cas: client: %w", err)
	}
	return c, nil
}

func parseSettings(raw json.RawMessage) (*Settings, error) {
	var s Settings
	if err := strictjson.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("cas settings: %w", err)
	}
	var errs []error
	pm := poolRE.FindStringSubmatch(s.CAPool)
	if s.CAPool == "" {
		errs = append(errs, errors.New("caPool is required (projects/P/locations/L/caPools/X)"))
	} else if pm == nil {
		errs = append(errs, fmt.Errorf("caPool %q is not projects/P/locations/L/caPools/X", s.CAPool))
	}
	if s.CertificateAuthority != "" && !idRE.MatchString(s.CertificateAuthority) {
		errs = append(errs, fmt.Errorf("certificateAuthority %q is not a CA id ([a-zA-Z0-9_-]{1,63})", s.CertificateAuthority))
	}
	if s.CertificateTemplate != "" {
		tm := templateRE.FindStringSubmatch(s.CertificateTemplate)
		switch {
		case tm == nil:
			errs = append(errs, fmt.Errorf("certificateTemplate %q is not projects/P/locations/L/certificateTemplates/T", s.CertificateTemplate))
		case pm != nil && tm[2] != pm[2]:
			errs = append(errs, fmt.Errorf("certificateTemplate is in location %q, the pool in %q: they must be the same", tm[2], pm[2]))
		}
	}
	if s.Lifetime != "" {
		d, err := time.ParseDuration(s.Lifetime)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("lifetime %q is not a duration such as \"720h\"", s.Lifetime))
		case d < time.Minute:
			errs = append(errs, fmt.Errorf("lifetime %s is too short (at least 1m)", s.Lifetime))
		}
	}
	if s.Endpoint != "" {
		host, _, err := net.SplitHostPort(s.Endpoint)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			errs = append(errs, fmt.Errorf("endpoint %q must be a loopback host:port: it is for tests only (no TLS, no authentication)", s.Endpoint))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cas settings: %w", err)
	}
	return &s, nil
}

// Close closes the client's connection.
func (c *Connector) Close() error { return c.client.Close() }

// noRetry turns off the client's own retries: a Transient error goes back to
// the platform, which retries with backoff.
var noRetry = gax.WithRetry(nil)

// Issue asks the pool for a certificate for req.CSR (see the package doc for
// idempotency and error kinds).
func (c *Connector) Issue(ctx context.Context, req ca.Request) (_ *ca.Issued, err error) {
	defer ca.Recover(ctx, "cas: Issue", &err)
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgBadCSR, Reason: "the CSR does not parse", Err: err}
	}
	if req.RequestID == "" {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgInternal, Reason: "no request id: the adapter cannot issue idempotently"}
	}
	template, err := c.templateFor(req.TemplateName)
	if err != nil {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgSettings, Reason: err.Error()}
	}
	lifetime := c.lifetime
	if req.Validity > 0 {
		lifetime = req.Validity
	}
	// The pool's CA certificates first: once CAS has issued, checking the
	// certificate (Roots) must not depend on another call that may fail.
	if _, err := c.fetchRoots(ctx); err != nil {
		return nil, err
	}
	certID := CertificateID(req.RequestID)
	cert, err := c.client.CreateCertificate(ctx, &privatecapb.CreateCertificateRequest{
		Parent:                        c.pool,
		CertificateId:                 certID,
		RequestId:                     RequestUUID(c.pool, req.RequestID),
		IssuingCertificateAuthorityId: c.caID,
		Certificate: &privatecapb.Certificate{
			CertificateConfig:   &privatecapb.Certificate_PemCsr{PemCsr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR}))},
			Lifetime:            durationpb.New(lifetime),
			CertificateTemplate: template,
		},
	}, noRetry)
	if status.Code(err) == codes.AlreadyExists {
		// Issued before, outside the request_id window: take that one.
		cert, err = c.client.GetCertificate(ctx, &privatecapb.GetCertificateRequest{Name: c.pool + "/certificates/" + certID}, noRetry)
		if err != nil {
			return nil, classify("get existing certificate", err)
		}
	} else if err != nil {
		return nil, classify("create certificate", err)
	}
	issued, err := parseIssued(cert)
	if err != nil {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgBadAnswer, Reason: "unreadable certificate from CAS", Err: err}
	}
	if k, ok := issued.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(csr.PublicKey) {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgInternal,
			Reason: fmt.Sprintf("certificate %s holds another key than the CSR (certificate id collision?)", cert.GetName())}
	}
	return issued, nil
}

// Roots returns the root certificates of the pool's CAs (FetchCaCerts): the
// last certificate of each CA chain. Those Issue fetched before issuing are
// reused for rootsTTL.
func (c *Connector) Roots(ctx context.Context) (_ []*x509.Certificate, err error) {
	defer ca.Recover(ctx, "cas: Roots", &err)
	c.mu.Lock()
	roots, fresh := c.roots, time.Since(c.fetched) < rootsTTL
	c.mu.Unlock()
	if roots != nil && fresh {
		return slices.Clone(roots), nil
	}
	return c.fetchRoots(ctx)
}

// fetchRoots reads the pool's roots from the service and keeps them for Roots.
func (c *Connector) fetchRoots(ctx context.Context) ([]*x509.Certificate, error) {
	resp, err := c.client.FetchCaCerts(ctx, &privatecapb.FetchCaCertsRequest{CaPool: c.pool}, noRetry)
	if err != nil {
		return nil, classify("fetch CA certificates", err)
	}
	var roots []*x509.Certificate
	for _, chain := range resp.GetCaCerts() {
		certs, err := parsePEMs(chain.GetCertificates())
		if err != nil {
			return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgBadAnswer, Reason: "unreadable CA certificate from CAS", Err: err}
		}
		if len(certs) == 0 {
			continue
		}
		if r := certs[len(certs)-1]; !slices.ContainsFunc(roots, r.Equal) {
			roots = append(roots, r)
		}
	}
	if len(roots) == 0 {
		return nil, &ca.Error{Kind: ca.Permanent, UserMessage: msgSettings, Reason: "the CA pool has no CA certificates"}
	}
	c.mu.Lock()
	c.roots, c.fetched = roots, time.Now()
	c.mu.Unlock()
	return slices.Clone(roots), nil
}

// templateFor resolves the request's template name against the settings.
func (c *Connector) templateFor(name string) (string, error) {
	switch {
	case name == "":
		return c.template, nil
	case templateRE.MatchString(name):
		return name, nil
	case idRE.MatchString(name):
		return "projects/" + c.project + "/locations/" + c.location + "/certificateTemplates/" + name, nil
	}
	return "", fmt.Errorf("template name %q is neither a CAS template id nor projects/P/locations/L/certificateTemplates/T", name)
}

// requestNamespace is the UUID namespace of request ids made by this connector.
var requestNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/chromeos-certprov/adapter/shared/ca/cas"))

// RequestUUID is the CAS request_id for requestID in pool: a name-based
// (version 5, SHA-1) UUID, the same on every retry.
func RequestUUID(pool, requestID string) string {
	return uuid.NewSHA1(requestNamespace, []byte(pool+"\n"+requestID)).String()
}

var plainIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,54}$`)

// CertificateID is the CAS certificate_id for requestID: "certprov-" and the
// id itself where that is a valid certificate id ([a-zA-Z0-9_-], at most 63
// characters), else "certprov-" and 40 hex digits of its SHA-256.
func CertificateID(requestID string) string {
	if plainIDRE.MatchString(requestID) {
		return "certprov-" + requestID
	}
	sum := sha256.Sum256([]byte(requestID))
	return "certprov-" + hex.EncodeToString(sum[:20])
}

func parseIssued(c *privatecapb.Certificate) (*ca.Issued, error) {
	leaf, err := parsePEMs([]string{c.GetPemCertificate()})
	if err != nil {
		return nil, fmt.Errorf("pem_certificate: %w", err)
	}
	if len(leaf) != 1 {
		return nil, fmt.Errorf("pem_certificate holds %d certificates, want 1", len(leaf))
	}
	chain, err := parsePEMs(c.GetPemCertificateChain())
	if err != nil {
		return nil, fmt.Errorf("pem_certificate_chain: %w", err)
	}
	return &ca.Issued{Leaf: leaf[0], Chain: chain}, nil
}

// parsePEMs reads the certificates of CAS's PEM strings, in order; none is
// an empty chain.
func parsePEMs(pems []string) ([]*x509.Certificate, error) {
	if len(pems) == 0 {
		return nil, nil
	}
	return ca.ParseChain([]byte(strings.Join(pems, "\n")))
}

const (
	msgBadCSR      = "The certificate request could not be read. Ask your administrator to check the adapter."
	msgInternal    = "The adapter could not request the certificate. Ask your administrator to check the adapter's logs."
	msgSettings    = "The certificate authority settings are not usable. Ask your administrator to check the adapter's CA settings."
	msgBadAnswer   = "The certificate authority sent an answer the adapter could not read. Ask your administrator to check the CA."
	msgUnavailable = "The certificate authority is not reachable at the moment. The adapter retries; if this lasts, ask your administrator."
)

// userMessages are the Permanent refusals' messages, by gRPC code.
var userMessages = map[codes.Code]string{
	codes.NotFound:           "The certificate authority refused the request (CA pool, certificate authority or template not found). Ask your administrator to check the adapter's CA settings.",
	codes.PermissionDenied:   "The certificate authority refused the request (permission denied). Ask your administrator to check the adapter's CA settings.",
	codes.InvalidArgument:    "The certificate authority refused the request as invalid. Ask your administrator to check the certificate profile and the adapter's CA settings.",
	codes.FailedPrecondition: "The certificate authority cannot issue this certificate now (CA not enabled, or the request breaks the CA pool's policy). Ask your administrator to check the CA.",
}

// classify maps a client error to a *ca.Error.
func classify(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &ca.Error{Kind: ca.Transient, UserMessage: msgUnavailable, Reason: op + ": " + err.Error(), Err: err}
	}
	st, ok := status.FromError(err)
	if !ok {
		return &ca.Error{Kind: ca.Transient, UserMessage: msgUnavailable, Reason: op + " failed", Err: fmt.Errorf("cas %s: %w", op, err)}
	}
	e := &ca.Error{Reason: st.Message(), Err: fmt.Errorf("cas %s: %w", op, err)}
	switch st.Code() {
	case codes.ResourceExhausted:
		e.Kind, e.UserMessage = ca.Transient, msgUnavailable
		e.Err = fmt.Errorf("cas %s: %w: %w", op, ca.ErrThrottled, err)
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted,
		codes.Internal, codes.Unknown, codes.Canceled, codes.DataLoss, codes.Unauthenticated:
		e.Kind, e.UserMessage = ca.Transient, msgUnavailable
	default:
		e.Kind = ca.Permanent
		e.UserMessage = userMessages[st.Code()]
		if e.UserMessage == "" {
			e.UserMessage = fmt.Sprintf("The certificate authority refused the request (%s). Ask your administrator to check the adapter's CA settings.", st.Code())
		}
	}
	return e
}
