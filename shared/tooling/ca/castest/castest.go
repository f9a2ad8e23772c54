// Package castest is an in-process fake of Google Cloud Certificate Authority
// Service (google.cloud.security.privateca.v1) for tests that drive Google's
// own client (cloud.google.com/go/security/privateca/apiv1) over real gRPC on
// a loopback port.
//
// The fake really signs: every CA pool has a root CA and, optionally, issuing
// CAs below it, with ECDSA keys made at AddPool. It follows the service where
// the adapter depends on it:
//
//   - CreateCertificate takes parent projects/P/locations/L/caPools/X (a pool
//     that does not exist is NotFound), an optional
//     issuing_certificate_authority_id (NotFound if not in the pool,
//     FailedPrecondition if disabled), an optional certificate_template by full
//     name (NotFound if it does not exist, InvalidArgument if in another
//     location), a required lifetime (truncated to the template's maximum and
//     to the issuing CA's validity), and pem_csr (InvalidArgument if it does
//     not parse or its signature is wrong).
//   - The pools are Enterprise tier: certificate_id is required, a certificate
//     id that exists already is AlreadyExists, and GetCertificate finds every
//     issued certificate.
//   - request_id must be a UUID other than the zero UUID (InvalidArgument
//     otherwise). The same request_id with the same request returns the
//     certificate issued the first time, without signing again; with a
//     different request it is InvalidArgument (the real service's answer for
//     that case is not documented). ForgetRequestIDs ends the dedupe window,
//     as 60 minutes passing would.
//   - Subject and subject alternative names are copied from the CSR (the
//     DEFAULT subject mode). Other CSR extensions are copied only where the
//     certificate template allows them (passthrough_extensions); otherwise the
//     pool's baseline applies: key usage digitalSignature|keyEncipherment and
//     extended key usage clientAuth.
//
// Faults on demand: SetOutage (Unavailable), SetPermissionDenied, FailNext
// (any code for the next n calls) and DropResponses (the certificate is
// issued, then the answer is lost, as in a timeout after commit). Issued and
// Calls count what happened.
package castest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/security/privateca/apiv1/privatecapb"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// CA describes one certificate authority of a pool.
type CA struct {
	// ID is the certificate authority id within the pool ([a-zA-Z0-9_-]{1,63}).
	ID string
	// Subordinate makes it an issuing CA signed by the pool's root. Otherwise
	// it is a self-signed root of its own.
	Subordinate bool
	// Disabled CAs are never chosen, and naming one is FailedPrecondition.
	Disabled bool
}

// Fake is the fake service. Its methods are safe for concurrent use.
type Fake struct {
	privatecapb.UnimplementedCertificateAuthorityServiceServer

	tb testing.TB

	mu         sync.Mutex
	pools      map[string]*pool
	templates  map[string]*privatecapb.CertificateTemplate
	certs      map[string]*privatecapb.Certificate // by full name
	requestIDs map[string]seenRequest
	revokeIDs  map[string]string // request_id of a revocation -> certificate name
	issued     int
	calls      map[string]int
	outage     bool
	denied     bool
	failCode   codes.Code
	failN      int
	dropN      int
	garbage    bool
	hang       bool
	rate       *rateLimit // SetRate (rate.go)
}

type pool struct {
	name, location string
	root           *authority
	cas            []*authority
}

type authority struct {
	id       string
	disabled bool
	sub      bool
	cert     *x509.Certificate
	key      crypto.Signer
	chain    []*x509.Certificate // the CA first, up to its root
}

type seenRequest struct {
	req  *privatecapb.CreateCertificateRequest
	name string
}

// Start serves a new, empty Fake on a loopback port until t ends. Connect
// Google's client with option.WithEndpoint(addr), option.WithoutAuthentication()
// and option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())).
func Start(t testing.TB) (addr string, f *Fake) {
	t.Helper()
	f = &Fake{
		tb:         t,
		pools:      map[string]*pool{},
		templates:  map[string]*privatecapb.CertificateTemplate{},
		certs:      map[string]*privatecapb.Certificate{},
		requestIDs: map[string]seenRequest{},
		revokeIDs:  map[string]string{},
		calls:      map[string]int{},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("castest: listen: %v", err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(f.intercept))
	privatecapb.RegisterCertificateAuthorityServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), f
}

var (
	poolRE     = regexp.MustCompile(`^projects/([^/]+)/locations/([^/]+)/caPools/([a-zA-Z0-9_-]{1,63})$`)
	templateRE = regexp.MustCompile(`^projects/([^/]+)/locations/([^/]+)/certificateTemplates/([a-zA-Z0-9_-]{1,63})$`)
	certRE     = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+/caPools/[a-zA-Z0-9_-]{1,63})/certificates/([a-zA-Z0-9_-]{1,63})$`)
	caRE       = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+/caPools/[a-zA-Z0-9_-]{1,63})/certificateAuthorities/([a-zA-Z0-9_-]{1,63})$`)
	idRE       = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)
)

// AddPool creates the Enterprise-tier pool name (projects/P/locations/L/caPools/X)
// with a root CA and the given CAs, in order of preference; with no CAs the
// pool has one self-signed CA "root-ca".
func (f *Fake) AddPool(name string, cas ...CA) {
	f.tb.Helper()
	m := poolRE.FindStringSubmatch(name)
	if m == nil {
		f.tb.Fatalf("castest: pool name %q is not projects/P/locations/L/caPools/X", name)
	}
	if len(cas) == 0 {
		cas = []CA{{ID: "root-ca"}}
	}
	p := &pool{name: name, location: m[2]}
	root, err := newAuthority("root-ca", "Fake CAS Root "+m[3], nil)
	if err != nil {
		f.tb.Fatalf("castest: %v", err)
	}
	p.root = root
	for _, c := range cas {
		if !idRE.MatchString(c.ID) {
			f.tb.Fatalf("castest: CA id %q is not [a-zA-Z0-9_-]{1,63}", c.ID)
		}
		var a *authority
		if c.Subordinate {
			a, err = newAuthority(c.ID, "Fake CAS Issuing "+m[3]+" "+c.ID, root)
		} else if c.ID == root.id {
			a = root
		} else {
			a, err = newAuthority(c.ID, "Fake CAS Root "+m[3]+" "+c.ID, nil)
		}
		if err != nil {
			f.tb.Fatalf("castest: %v", err)
		}
		a.sub, a.disabled = c.Subordinate, c.Disabled
		p.cas = append(p.cas, a)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pools[name] = p
}

// AddTemplate creates a certificate template. The fake honours Name,
// MaximumLifetime and PassthroughExtensions.
func (f *Fake) AddTemplate(t *privatecapb.CertificateTemplate) {
	f.tb.Helper()
	if templateRE.FindStringSubmatch(t.GetName()) == nil {
		f.tb.Fatalf("castest: template name %q is not projects/P/locations/L/certificateTemplates/T", t.GetName())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.templates[t.GetName()] = proto.Clone(t).(*privatecapb.CertificateTemplate)
}

// Roots returns the self-signed CA certificates of pool: what its issued
// certificates chain to.
func (f *Fake) Roots(poolName string) []*x509.Certificate {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pools[poolName]
	if p == nil {
		return nil
	}
	var out []*x509.Certificate
	for _, a := range p.cas {
		r := a.chain[len(a.chain)-1]
		if !slices.ContainsFunc(out, r.Equal) {
			out = append(out, r)
		}
	}
	return out
}

// Issued returns how many certificates the fake has signed.
func (f *Fake) Issued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

// Calls returns how many calls of method (e.g. "CreateCertificate") arrived,
// failed ones included.
func (f *Fake) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// Certificate returns the stored certificate resource name, or nil.
func (f *Fake) Certificate(name string) *privatecapb.Certificate {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.certs[name]; c != nil {
		return proto.Clone(c).(*privatecapb.Certificate)
	}
	return nil
}

// SetOutage makes every call answer Unavailable while on.
func (f *Fake) SetOutage(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outage = on
}

// SetPermissionDenied makes every call answer PermissionDenied while on, as
// for a caller without privateca.certificates.create.
func (f *Fake) SetPermissionDenied(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denied = on
}

// FailNext makes the next n calls fail with code, before doing anything.
func (f *Fake) FailNext(code codes.Code, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failCode, f.failN = code, n
}

// DropResponses makes the next n successful CreateCertificate calls answer
// Unavailable after the certificate was issued and stored, as when the
// response is lost on the way back.
func (f *Fake) DropResponses(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropN = n
}

// GarbagePEM is what SetGarbage puts in place of every certificate: a PEM
// block whose DER is cut short (the bytes 30 82).
const GarbagePEM = "-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n"

// SetGarbage makes every successful answer carry GarbagePEM instead of its
// certificates while on (a hostile or broken service).
func (f *Fake) SetGarbage(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.garbage = on
}

// SetHang makes every call wait, without answering, until the caller gives
// up (its deadline or cancellation) while on.
func (f *Fake) SetHang(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = on
}

// ForgetRequestIDs ends the request_id dedupe window for every request so far.
func (f *Fake) ForgetRequestIDs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requestIDs = map[string]seenRequest{}
}

func (f *Fake) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	f.mu.Lock()
	f.calls[method]++
	var err error
	switch {
	case f.outage:
		err = status.Error(codes.Unavailable, "The service is currently unavailable.")
	case f.denied:
		err = status.Error(codes.PermissionDenied, "The caller does not have permission (or the resource may not exist).")
	case f.failN > 0:
		f.failN--
		err = status.Errorf(f.failCode, "injected %s", f.failCode)
	}
	hang, garbage := f.hang, f.garbage
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if hang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	resp, err := handler(ctx, req)
	if err == nil && garbage {
		switch r := resp.(type) {
		case *privatecapb.Certificate:
			r = proto.Clone(r).(*privatecapb.Certificate)
			r.PemCertificate, r.PemCertificateChain = GarbagePEM, []string{GarbagePEM}
			resp = r
		case *privatecapb.FetchCaCertsResponse:
			r = proto.Clone(r).(*privatecapb.FetchCaCertsResponse)
			for _, chain := range r.CaCerts {
				chain.Certificates = []string{GarbagePEM}
			}
			resp = r
		}
	}
	if err == nil && method == "CreateCertificate" {
		f.mu.Lock()
		drop := f.dropN > 0
		if drop {
			f.dropN--
		}
		f.mu.Unlock()
		if drop {
			return nil, status.Error(codes.Unavailable, "connection reset (response dropped after issuance)")
		}
	}
	return resp, err
}

// CreateCertificate signs the request's pem_csr.
func (f *Fake) CreateCertificate(_ context.Context, req *privatecapb.CreateCertificateRequest) (*privatecapb.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	parent := req.GetParent()
	if poolRE.FindStringSubmatch(parent) == nil {
		return nil, status.Errorf(codes.InvalidArgument, "Malformed parent %q: expected projects/*/locations/*/caPools/*.", parent)
	}
	p := f.pools[parent]
	if p == nil {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found.", parent)
	}
	if id := req.GetRequestId(); id != "" {
		u, err := uuid.Parse(id)
		if err != nil || len(id) != 36 || u == uuid.Nil {
			return nil, status.Errorf(codes.InvalidArgument, "request_id %q is not a valid UUID (the zero UUID is not supported).", id)
		}
		if seen, ok := f.requestIDs[id]; ok {
			if !sameRequest(seen.req, req) {
				return nil, status.Errorf(codes.InvalidArgument, "request_id %q was already used for a different request.", id)
			}
			return proto.Clone(f.certs[seen.name]).(*privatecapb.Certificate), nil
		}
	}
	if req.GetValidateOnly() {
		return nil, status.Error(codes.Unimplemented, "castest: validate_only is not supported")
	}
	if f.rate != nil {
		if err := f.rate.take(parent); err != nil {
			return nil, err
		}
	}
	if !idRE.MatchString(req.GetCertificateId()) {
		return nil, status.Errorf(codes.InvalidArgument, "certificate_id %q must match [a-zA-Z0-9_-]{1,63} and is required in the Enterprise tier.", req.GetCertificateId())
	}
	name := parent + "/certificates/" + req.GetCertificateId()
	if f.certs[name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "Resource '%s' already exists.", name)
	}
	in := req.GetCertificate()
	if in == nil {
		return nil, status.Error(codes.InvalidArgument, "certificate is required.")
	}
	if in.GetConfig() != nil {
		return nil, status.Error(codes.Unimplemented, "castest: only pem_csr is supported")
	}
	lifetime := in.GetLifetime().AsDuration()
	if in.GetLifetime() == nil || lifetime <= 0 {
		return nil, status.Error(codes.InvalidArgument, "certificate.lifetime is required and must be positive.")
	}

	var tmpl *privatecapb.CertificateTemplate
	if tn := in.GetCertificateTemplate(); tn != "" {
		m := templateRE.FindStringSubmatch(tn)
		if m == nil {
			return nil, status.Errorf(codes.InvalidArgument, "Malformed certificate_template %q.", tn)
		}
		if m[2] != p.location {
			return nil, status.Errorf(codes.InvalidArgument, "Certificate template %q must be in the same location as the CA pool (%s).", tn, p.location)
		}
		if tmpl = f.templates[tn]; tmpl == nil {
			return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found.", tn)
		}
		if max := tmpl.GetMaximumLifetime(); max != nil && lifetime > max.AsDuration() {
			lifetime = max.AsDuration()
		}
	}

	var issuer *authority
	if id := req.GetIssuingCertificateAuthorityId(); id != "" {
		for _, a := range p.cas {
			if a.id == id {
				issuer = a
			}
		}
		if issuer == nil {
			return nil, status.Errorf(codes.NotFound, "Resource '%s/certificateAuthorities/%s' was not found.", parent, id)
		}
		if issuer.disabled {
			return nil, status.Errorf(codes.FailedPrecondition, "Certificate authority '%s/certificateAuthorities/%s' is not enabled.", parent, id)
		}
	} else {
		for _, a := range p.cas {
			if !a.disabled {
				issuer = a
				break
			}
		}
		if issuer == nil {
			return nil, status.Errorf(codes.FailedPrecondition, "CA pool '%s' has no enabled certificate authorities.", parent)
		}
	}

	block, _ := pem.Decode([]byte(in.GetPemCsr()))
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, status.Error(codes.InvalidArgument, "pem_csr is not a PEM CERTIFICATE REQUEST.")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "pem_csr could not be parsed: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "pem_csr signature is invalid: %v", err)
	}

	leaf, err := issuer.sign(csr, lifetime, tmpl)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "signing failed: %v", err)
	}
	now := timestamppb.Now()
	out := &privatecapb.Certificate{
		Name:                       name,
		CertificateConfig:          &privatecapb.Certificate_PemCsr{PemCsr: in.GetPemCsr()},
		IssuerCertificateAuthority: parent + "/certificateAuthorities/" + issuer.id,
		Lifetime:                   durationpb.New(leaf.NotAfter.Sub(leaf.NotBefore)),
		CertificateTemplate:        in.GetCertificateTemplate(),
		SubjectMode:                privatecapb.SubjectRequestMode_DEFAULT,
		PemCertificate:             pemCert(leaf),
		CreateTime:                 now,
		UpdateTime:                 now,
		Labels:                     in.GetLabels(),
	}
	for _, c := range issuer.chain {
		out.PemCertificateChain = append(out.PemCertificateChain, pemCert(c))
	}
	f.certs[name] = out
	f.issued++
	if id := req.GetRequestId(); id != "" {
		f.requestIDs[id] = seenRequest{req: proto.Clone(req).(*privatecapb.CreateCertificateRequest), name: name}
	}
	return proto.Clone(out).(*privatecapb.Certificate), nil
}

func sameRequest(a, b *privatecapb.CreateCertificateRequest) bool {
	return proto.Equal(a, b)
}

// GetCertificate returns a stored certificate.
func (f *Fake) GetCertificate(_ context.Context, req *privatecapb.GetCertificateRequest) (*privatecapb.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if certRE.FindStringSubmatch(req.GetName()) == nil {
		return nil, status.Errorf(codes.InvalidArgument, "Malformed certificate name %q.", req.GetName())
	}
	c := f.certs[req.GetName()]
	if c == nil {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found.", req.GetName())
	}
	return proto.Clone(c).(*privatecapb.Certificate), nil
}

// RevokeCertificate revokes a stored certificate as the service does:
// InvalidArgument for a malformed name, NotFound for an unknown one,
// FailedPrecondition when it is already revoked; a retry with the same
// request_id returns the revoked certificate. The revocation shows in the
// certificate's revocation_details.
func (f *Fake) RevokeCertificate(_ context.Context, req *privatecapb.RevokeCertificateRequest) (*privatecapb.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if certRE.FindStringSubmatch(req.GetName()) == nil {
		return nil, status.Errorf(codes.InvalidArgument, "Malformed certificate name %q.", req.GetName())
	}
	c := f.certs[req.GetName()]
	if c == nil {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found.", req.GetName())
	}
	if id := req.GetRequestId(); id != "" {
		if u, err := uuid.Parse(id); err != nil || len(id) != 36 || u == uuid.Nil {
			return nil, status.Errorf(codes.InvalidArgument, "request_id %q is not a valid UUID (the zero UUID is not supported).", id)
		}
		if f.revokeIDs[id] == req.GetName() {
			return proto.Clone(c).(*privatecapb.Certificate), nil
		}
	}
	if c.GetRevocationDetails() != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "Certificate '%s' is already revoked.", req.GetName())
	}
	c.RevocationDetails = &privatecapb.Certificate_RevocationDetails{RevocationState: req.GetReason(), RevocationTime: timestamppb.Now()}
	c.UpdateTime = timestamppb.Now()
	if id := req.GetRequestId(); id != "" {
		f.revokeIDs[id] = req.GetName()
	}
	return proto.Clone(c).(*privatecapb.Certificate), nil
}

// FetchCaCerts returns, for every CA of the pool, its chain from the CA to
// its root.
func (f *Fake) FetchCaCerts(_ context.Context, req *privatecapb.FetchCaCertsRequest) (*privatecapb.FetchCaCertsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pool(req.GetCaPool())
	if err != nil {
		return nil, err
	}
	resp := &privatecapb.FetchCaCertsResponse{}
	for _, a := range p.cas {
		chain := &privatecapb.FetchCaCertsResponse_CertChain{}
		for _, c := range a.chain {
			chain.Certificates = append(chain.Certificates, pemCert(c))
		}
		resp.CaCerts = append(resp.CaCerts, chain)
	}
	return resp, nil
}

// GetCaPool returns the pool (always Enterprise tier).
func (f *Fake) GetCaPool(_ context.Context, req *privatecapb.GetCaPoolRequest) (*privatecapb.CaPool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pool(req.GetName())
	if err != nil {
		return nil, err
	}
	return &privatecapb.CaPool{Name: p.name, Tier: privatecapb.CaPool_ENTERPRISE}, nil
}

// GetCertificateAuthority returns one CA of a pool.
func (f *Fake) GetCertificateAuthority(_ context.Context, req *privatecapb.GetCertificateAuthorityRequest) (*privatecapb.CertificateAuthority, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := caRE.FindStringSubmatch(req.GetName())
	if m == nil {
		return nil, status.Errorf(codes.InvalidArgument, "Malformed certificate authority name %q.", req.GetName())
	}
	p, err := f.pool(m[1])
	if err != nil {
		return nil, err
	}
	for _, a := range p.cas {
		if a.id != m[2] {
			continue
		}
		out := &privatecapb.CertificateAuthority{
			Name:  req.GetName(),
			Type:  privatecapb.CertificateAuthority_SELF_SIGNED,
			Tier:  privatecapb.CaPool_ENTERPRISE,
			State: privatecapb.CertificateAuthority_ENABLED,
		}
		if a.sub {
			out.Type = privatecapb.CertificateAuthority_SUBORDINATE
		}
		if a.disabled {
			out.State = privatecapb.CertificateAuthority_DISABLED
		}
		for _, c := range a.chain {
			out.PemCaCertificates = append(out.PemCaCertificates, pemCert(c))
		}
		return out, nil
	}
	return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found.", req.GetName())
}

// GetCertificateTemplate returns a template.
func (f *Fake) GetCertificateTemplate(_ context.Context, req *privatecapb.GetCertificateTemplateRequest) (*privatecapb.CertificateTemplate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.templates[req.GetName()]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found.", req.GetName())
	}
	return proto.Clone(t).(*privatecapb.CertificateTemplate), nil
}

func (f *Fake) pool(name string) (*pool, error) {
	if poolRE.FindStringSubmatch(name) == nil {
		return nil, status.Errorf(codes.InvalidArgument, "Malformed CA pool name %q.", name)
	}
	p := f.pools[name]
	if p == nil {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found.", name)
	}
	return p, nil
}

func newAuthority(id, cn string, parent *authority) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"castest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	signer, issuerCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, issuerCert = parent.key, parent.cert
		tmpl.MaxPathLenZero = true
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	a := &authority{id: id, cert: cert, key: key, chain: []*x509.Certificate{cert}}
	if parent != nil {
		a.chain = append(a.chain, parent.chain...)
	}
	return a, nil
}

var (
	oidSAN    = asn1.ObjectIdentifier{2, 5, 29, 17}
	knownOIDs = map[privatecapb.CertificateExtensionConstraints_KnownCertificateExtension]asn1.ObjectIdentifier{
		privatecapb.CertificateExtensionConstraints_BASE_KEY_USAGE:     {2, 5, 29, 15},
		privatecapb.CertificateExtensionConstraints_EXTENDED_KEY_USAGE: {2, 5, 29, 37},
		privatecapb.CertificateExtensionConstraints_CA_OPTIONS:         {2, 5, 29, 19},
		privatecapb.CertificateExtensionConstraints_POLICY_IDS:         {2, 5, 29, 32},
		privatecapb.CertificateExtensionConstraints_AIA_OCSP_SERVERS:   {1, 3, 6, 1, 5, 5, 7, 1, 1},
		privatecapb.CertificateExtensionConstraints_NAME_CONSTRAINTS:   {2, 5, 29, 30},
	}
)

func (a *authority) sign(csr *x509.CertificateRequest, lifetime time.Duration, tmpl *privatecapb.CertificateTemplate) (*x509.Certificate, error) {
	now := time.Now().Truncate(time.Second)
	notAfter := now.Add(lifetime)
	for _, c := range a.chain {
		if notAfter.After(c.NotAfter) {
			notAfter = c.NotAfter
		}
	}
	t := &x509.Certificate{
		SerialNumber:          serial(),
		RawSubject:            csr.RawSubject,
		NotBefore:             now,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	var allowed []asn1.ObjectIdentifier
	if pt := tmpl.GetPassthroughExtensions(); pt != nil {
		for _, k := range pt.GetKnownExtensions() {
			if oid, ok := knownOIDs[k]; ok {
				allowed = append(allowed, oid)
			}
		}
		for _, o := range pt.GetAdditionalExtensions() {
			oid := make(asn1.ObjectIdentifier, len(o.GetObjectIdPath()))
			for i, v := range o.GetObjectIdPath() {
				oid[i] = int(v)
			}
			allowed = append(allowed, oid)
		}
	}
	for _, ext := range csr.Extensions {
		if ext.Id.Equal(oidSAN) || slices.ContainsFunc(allowed, ext.Id.Equal) {
			t.ExtraExtensions = append(t.ExtraExtensions, ext)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, t, a.cert, csr.PublicKey, a.key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func pemCert(c *x509.Certificate) string {
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	return b.String()
}
