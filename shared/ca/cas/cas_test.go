package cas

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/security/privateca/apiv1/privatecapb"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/castest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	pool     = "projects/p1/locations/us-central1/caPools/devices"
	template = "projects/p1/locations/us-central1/certificateTemplates/chromeos"
)

// oidMSTemplate is the Microsoft certificate template extension.
var oidMSTemplate = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 21, 7}

// setup starts the fake with pool (a root and an issuing CA "issuing-1", and a
// disabled one), a template passing the Microsoft template extension through,
// and a connector with the given extra settings.
func setup(t *testing.T, extra map[string]any) (*Connector, *castest.Fake) {
	t.Helper()
	addr, fake := castest.Start(t)
	fake.AddPool(pool, castest.CA{ID: "issuing-1", Subordinate: true}, castest.CA{ID: "off", Subordinate: true, Disabled: true})
	fake.AddTemplate(&privatecapb.CertificateTemplate{
		Name:            template,
		MaximumLifetime: durationpb.New(90 * 24 * time.Hour),
		PassthroughExtensions: &privatecapb.CertificateExtensionConstraints{
			AdditionalExtensions: []*privatecapb.ObjectId{{ObjectIdPath: []int32{1, 3, 6, 1, 4, 1, 311, 21, 7}}},
		},
	})
	s := map[string]any{"caPool": pool, "endpoint": addr}
	for k, v := range extra {
		s[k] = v
	}
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), raw, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, fake
}

// newCSR returns a DER CSR for cn with a UPN-free SAN and the Microsoft
// template extension, and its key.
func newCSR(t *testing.T, cn string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmplExt, err := asn1.Marshal(struct {
		ID    asn1.ObjectIdentifier
		Major int
	}{asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 21, 8, 1, 2}, 100})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: cn},
		EmailAddresses:  []string{"user@example.com"},
		ExtraExtensions: []pkix.Extension{{Id: oidMSTemplate, Value: tmplExt}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func TestIssueChainsToRootsWithCSRKey(t *testing.T) {
	ctx := context.Background()
	c, fake := setup(t, map[string]any{"certificateTemplate": template, "lifetime": "48h"})
	csr, key := newCSR(t, "device-1")

	got, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	roots, err := c.Roots(ctx)
	if err != nil {
		t.Fatalf("Roots: %v", err)
	}
	if diff := cmp.Diff(fake.Roots(pool), roots); diff != "" {
		t.Errorf("Roots differ from the pool's roots (-want +got):\n%s", diff)
	}
	rootPool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	for _, c := range got.Chain {
		inter.AddCert(c)
	}
	if _, err := got.Leaf.Verify(x509.VerifyOptions{Roots: rootPool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not chain to Roots: %v", err)
	}
	if !key.PublicKey.Equal(got.Leaf.PublicKey) {
		t.Error("leaf key differs from the CSR's key")
	}
	if got.Leaf.Subject.CommonName != "device-1" || !cmp.Equal(got.Leaf.EmailAddresses, []string{"user@example.com"}) {
		t.Errorf("leaf subject %v, emails %v: want the CSR's", got.Leaf.Subject, got.Leaf.EmailAddresses)
	}
	if life := got.Leaf.NotAfter.Sub(got.Leaf.NotBefore); life != 48*time.Hour {
		t.Errorf("lifetime %v, want 48h from settings", life)
	}
	hasTemplateExt := false
	for _, e := range got.Leaf.Extensions {
		hasTemplateExt = hasTemplateExt || e.Id.Equal(oidMSTemplate)
	}
	if !hasTemplateExt {
		t.Error("template extension missing: the CAS template passes it through")
	}
	stored := fake.Certificate(pool + "/certificates/" + CertificateID("process-1"))
	if stored == nil {
		t.Fatal("no certificate stored under the derived certificate id")
	}
	if stored.GetCertificateTemplate() != template || !strings.HasSuffix(stored.GetIssuerCertificateAuthority(), "/issuing-1") {
		t.Errorf("stored template %q, issuer %q", stored.GetCertificateTemplate(), stored.GetIssuerCertificateAuthority())
	}
	if n := fake.Issued(); n != 1 {
		t.Errorf("Issued = %d, want 1", n)
	}
}

func TestRequestOverridesTemplateAndValidity(t *testing.T) {
	ctx := context.Background()
	c, fake := setup(t, map[string]any{"certificateAuthority": "issuing-1"})
	csr, _ := newCSR(t, "device-2")
	got, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-2", TemplateName: "chromeos", Validity: 24 * time.Hour})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if life := got.Leaf.NotAfter.Sub(got.Leaf.NotBefore); life != 24*time.Hour {
		t.Errorf("lifetime %v, want the request's 24h", life)
	}
	stored := fake.Certificate(pool + "/certificates/" + CertificateID("process-2"))
	if stored.GetCertificateTemplate() != template {
		t.Errorf("template %q, want the bare id resolved to %q", stored.GetCertificateTemplate(), template)
	}

	_, err = c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-3", TemplateName: "bad/name"})
	if k := ca.KindOf(err); k != ca.Permanent {
		t.Errorf("bad template name: kind %v (%v), want permanent", k, err)
	}
}

func TestSameRequestIDIssuesOnce(t *testing.T) {
	ctx := context.Background()
	c, fake := setup(t, nil)
	csr, _ := newCSR(t, "device-1")
	req := ca.Request{CSR: csr, RequestID: "3f2a9c1e-aaaa-bbbb-cccc-0123456789ab"}

	first, err := c.Issue(ctx, req)
	if err != nil {
		t.Fatalf("first Issue: %v", err)
	}
	second, err := c.Issue(ctx, req)
	if err != nil {
		t.Fatalf("second Issue: %v", err)
	}
	if first.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) != 0 {
		t.Errorf("serials differ: %v then %v", first.Leaf.SerialNumber, second.Leaf.SerialNumber)
	}
	if got := []int{fake.Issued(), fake.Calls("CreateCertificate")}; !cmp.Equal(got, []int{1, 2}) {
		t.Errorf("[issued, CreateCertificate calls] = %v, want [1 2]", got)
	}
}

func TestLostResponseThenRetryIssuesOnce(t *testing.T) {
	ctx := context.Background()
	c, fake := setup(t, nil)
	csr, _ := newCSR(t, "device-1")
	req := ca.Request{CSR: csr, RequestID: "process-lost"}

	fake.DropResponses(1)
	_, err := c.Issue(ctx, req)
	if k := ca.KindOf(err); k != ca.Transient {
		t.Fatalf("lost response: kind %v (%v), want transient", k, err)
	}
	got, err := c.Issue(ctx, req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	stored := fake.Certificate(pool + "/certificates/" + CertificateID("process-lost"))
	if want := stored.GetPemCertificate(); want == "" || !got.Leaf.Equal(mustParsePEM(t, want)) {
		t.Error("retry returned another certificate than the one issued first")
	}
	if n := fake.Issued(); n != 1 {
		t.Errorf("Issued = %d, want 1", n)
	}
}

func TestAfterRequestIDWindowFetchesExisting(t *testing.T) {
	ctx := context.Background()
	c, fake := setup(t, nil)
	csr, _ := newCSR(t, "device-1")
	req := ca.Request{CSR: csr, RequestID: "process-late"}

	first, err := c.Issue(ctx, req)
	if err != nil {
		t.Fatalf("first Issue: %v", err)
	}
	fake.ForgetRequestIDs()
	second, err := c.Issue(ctx, req)
	if err != nil {
		t.Fatalf("Issue after the request_id window: %v", err)
	}
	if !first.Leaf.Equal(second.Leaf) {
		t.Error("got another certificate after AlreadyExists")
	}
	if got := []int{fake.Issued(), fake.Calls("GetCertificate")}; !cmp.Equal(got, []int{1, 1}) {
		t.Errorf("[issued, GetCertificate calls] = %v, want [1 1]", got)
	}

	// Another key under the same process id is never handed out.
	other, _ := newCSR(t, "device-1")
	fake.ForgetRequestIDs()
	_, err = c.Issue(ctx, ca.Request{CSR: other, RequestID: "process-late"})
	if k := ca.KindOf(err); k != ca.Permanent {
		t.Errorf("existing certificate with another key: kind %v (%v), want permanent", k, err)
	}
}

func TestFailuresMapToKinds(t *testing.T) {
	goodCSR, _ := newCSR(t, "device-1")
	badSig := append([]byte(nil), goodCSR...)
	badSig[len(badSig)-5] ^= 0xff // inside the signature: parses, does not verify

	type want struct {
		Kind        ca.Kind
		UserMessage string
	}
	tests := []struct {
		name     string
		settings map[string]any
		fault    func(*castest.Fake)
		csr      []byte
		want     want
	}{
		{name: "unknown pool", settings: map[string]any{"caPool": "projects/p1/locations/us-central1/caPools/nope"},
			want: want{ca.Permanent, userMessages[codes.NotFound]}},
		{name: "unknown CA", settings: map[string]any{"certificateAuthority": "nope"},
			want: want{ca.Permanent, userMessages[codes.NotFound]}},
		{name: "unknown template", settings: map[string]any{"certificateTemplate": "projects/p1/locations/us-central1/certificateTemplates/nope"},
			want: want{ca.Permanent, userMessages[codes.NotFound]}},
		{name: "disabled CA", settings: map[string]any{"certificateAuthority": "off"},
			want: want{ca.Permanent, userMessages[codes.FailedPrecondition]}},
		{name: "permission denied", fault: func(f *castest.Fake) { f.SetPermissionDenied(true) },
			want: want{ca.Permanent, userMessages[codes.PermissionDenied]}},
		{name: "bad CSR signature", csr: badSig,
			want: want{ca.Permanent, userMessages[codes.InvalidArgument]}},
		{name: "CSR does not parse", csr: []byte("not a csr"),
			want: want{ca.Permanent, msgBadCSR}},
		{name: "outage", fault: func(f *castest.Fake) { f.SetOutage(true) },
			want: want{ca.Transient, msgUnavailable}},
		{name: "quota", fault: func(f *castest.Fake) { f.FailNext(codes.ResourceExhausted, 1) },
			want: want{ca.Transient, msgUnavailable}},
		{name: "internal", fault: func(f *castest.Fake) { f.FailNext(codes.Internal, 1) },
			want: want{ca.Transient, msgUnavailable}},
		{name: "aborted", fault: func(f *castest.Fake) { f.FailNext(codes.Aborted, 1) },
			want: want{ca.Transient, msgUnavailable}},
		{name: "deadline", fault: func(f *castest.Fake) { f.FailNext(codes.DeadlineExceeded, 1) },
			want: want{ca.Transient, msgUnavailable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fake := setup(t, tt.settings)
			if tt.fault != nil {
				tt.fault(fake)
			}
			csr := tt.csr
			if csr == nil {
				csr = goodCSR
			}
			_, err := c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "process-1"})
			var e *ca.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *ca.Error", err)
			}
			if diff := cmp.Diff(tt.want, want{e.Kind, e.UserMessage}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if e.Reason == "" {
				t.Error("empty Reason")
			}
			if n := fake.Issued(); n != 0 {
				t.Errorf("Issued = %d, want 0", n)
			}
		})
	}
}

func TestOutageThenRecovery(t *testing.T) {
	ctx := context.Background()
	c, fake := setup(t, nil)
	csr, _ := newCSR(t, "device-1")
	req := ca.Request{CSR: csr, RequestID: "process-outage"}

	fake.SetOutage(true)
	if _, err := c.Issue(ctx, req); ca.KindOf(err) != ca.Transient {
		t.Fatalf("Issue during outage: %v, want transient", err)
	}
	if _, err := c.Roots(ctx); ca.KindOf(err) != ca.Transient {
		t.Fatalf("Roots during outage: %v, want transient", err)
	}
	// Issue reads the pool's CA certificates before it asks for one.
	if n, m := fake.Calls("FetchCaCerts"), fake.Calls("CreateCertificate"); n != 2 || m != 0 {
		t.Errorf("FetchCaCerts, CreateCertificate calls during outage = %d, %d; want 2, 0 (one per call, no client-side retries)", n, m)
	}
	fake.SetOutage(false)
	if _, err := c.Issue(ctx, req); err != nil {
		t.Fatalf("Issue after outage: %v", err)
	}
	if n := fake.Issued(); n != 1 {
		t.Errorf("Issued = %d, want 1", n)
	}
}

// Once Issue returned a certificate, the pipeline's check of it (Roots) needs
// no further call: an outage right after the issuance cannot fail the check
// of a certificate already issued.
func TestRootsAfterIssueNeedNoCall(t *testing.T) {
	ctx := context.Background()
	c, fake := setup(t, nil)
	csr, _ := newCSR(t, "device-1")
	if _, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"}); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	fake.SetOutage(true)
	roots, err := c.Roots(ctx)
	if err != nil {
		t.Fatalf("Roots right after Issue, during an outage: %v", err)
	}
	if diff := cmp.Diff(fake.Roots(pool), roots); diff != "" {
		t.Errorf("Roots differ from the pool's roots (-want +got):\n%s", diff)
	}
}

func TestSettings(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		wantErrs []string // substrings, all of them
	}{
		{name: "minimal", settings: `{"caPool":"` + pool + `"}`},
		{name: "full", settings: `{"caPool":"` + pool + `","certificateAuthority":"ca-1","certificateTemplate":"` + template + `","lifetime":"720h","endpoint":"127.0.0.1:1"}`},
		{name: "unknown field", settings: `{"caPool":"` + pool + `","pool":"x"}`, wantErrs: []string{`unknown field "pool"`}},
		{name: "trailing data", settings: `{"caPool":"` + pool + `"} {}`, wantErrs: []string{"trailing data"}},
		{name: "missing pool", settings: `{}`, wantErrs: []string{"caPool is required"}},
		{name: "everything wrong", settings: `{"caPool":"pools/x","certificateAuthority":"a b","certificateTemplate":"t","lifetime":"soon","endpoint":"ca.example.com:443"}`,
			wantErrs: []string{"caPool", "certificateAuthority", "certificateTemplate", "lifetime", "endpoint"}},
		{name: "template elsewhere", settings: `{"caPool":"` + pool + `","certificateTemplate":"projects/p1/locations/europe-west1/certificateTemplates/t"}`,
			wantErrs: []string{"must be the same"}},
		{name: "lifetime too short", settings: `{"caPool":"` + pool + `","lifetime":"1s"}`, wantErrs: []string{"too short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseSettings(json.RawMessage(tt.settings))
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDerivedIDs(t *testing.T) {
	a, b := RequestUUID(pool, "process-1"), RequestUUID(pool, "process-2")
	u, err := uuid.Parse(a)
	if err != nil || u.Version() != 5 || len(a) != 36 {
		t.Errorf("RequestUUID = %q (%v): want a canonical version 5 UUID", a, err)
	}
	if a != RequestUUID(pool, "process-1") || a == b || a == RequestUUID(pool+"2", "process-1") {
		t.Error("RequestUUID is not a deterministic function of pool and request id")
	}
	long := strings.Repeat("x", 60)
	for in, want := range map[string]string{
		"3f2a9c1e-aaaa-bbbb-cccc-0123456789ab": "certprov-3f2a9c1e-aaaa-bbbb-cccc-0123456789ab",
		long:                                   "certprov-" + fmt.Sprintf("%x", sha256.Sum256([]byte(long)))[:40],
	} {
		if got := CertificateID(in); got != want || len(got) > 63 {
			t.Errorf("CertificateID(%q) = %q, want %q (<= 63 chars)", in, got, want)
		}
	}
	if got := CertificateID("a/b"); len(got) != 49 || strings.Contains(got, "/") {
		t.Errorf("CertificateID(a/b) = %q: want certprov- and 40 hex digits", got)
	}
}

func mustParsePEM(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	certs, err := parsePEMs([]string{p})
	if err != nil || len(certs) != 1 {
		t.Fatalf("parse PEM: %v (%d certificates)", err, len(certs))
	}
	return certs[0]
}
