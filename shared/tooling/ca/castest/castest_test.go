package castest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
	"time"

	privateca "cloud.google.com/go/security/privateca/apiv1"
	"cloud.google.com/go/security/privateca/apiv1/privatecapb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

const testPool = "projects/p/locations/l/caPools/x"

func client(t *testing.T) (*privateca.CertificateAuthorityClient, *Fake) {
	t.Helper()
	addr, f := Start(t)
	f.AddPool(testPool)
	c, err := privateca.NewCertificateAuthorityClient(context.Background(),
		option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, f
}

func pemCSR(t *testing.T, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func create(id, requestID, csr string) *privatecapb.CreateCertificateRequest {
	return &privatecapb.CreateCertificateRequest{
		Parent: testPool, CertificateId: id, RequestId: requestID,
		Certificate: &privatecapb.Certificate{
			CertificateConfig: &privatecapb.Certificate_PemCsr{PemCsr: csr},
			Lifetime:          durationpb.New(time.Hour),
		},
	}
}

func TestCreateCertificateRules(t *testing.T) {
	ctx := context.Background()
	c, f := client(t)
	csr := pemCSR(t, "a")
	const rid = "7d444840-9dc0-11d1-b245-5ffdce74fad2"

	first, err := c.CreateCertificate(ctx, create("one", rid, csr))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	again, err := c.CreateCertificate(ctx, create("one", rid, csr))
	if err != nil || again.GetPemCertificate() != first.GetPemCertificate() {
		t.Errorf("repeat with the same request_id: %v; same certificate %v", err, again.GetPemCertificate() == first.GetPemCertificate())
	}

	tests := []struct {
		name string
		req  *privatecapb.CreateCertificateRequest
		want codes.Code
	}{
		{"request_id not a UUID", create("two", "process-1", csr), codes.InvalidArgument},
		{"zero UUID", create("two", "00000000-0000-0000-0000-000000000000", csr), codes.InvalidArgument},
		{"request_id reused for another request", create("two", rid, csr), codes.InvalidArgument},
		{"certificate id taken", create("one", "", csr), codes.AlreadyExists},
		{"no certificate id", create("", "", csr), codes.InvalidArgument},
		{"bad CSR", create("two", "", "junk"), codes.InvalidArgument},
		{"unknown testPool", func() *privatecapb.CreateCertificateRequest {
			r := create("two", "", csr)
			r.Parent = "projects/p/locations/l/caPools/y"
			return r
		}(), codes.NotFound},
		{"unknown template", func() *privatecapb.CreateCertificateRequest {
			r := create("two", "", csr)
			r.Certificate.CertificateTemplate = "projects/p/locations/l/certificateTemplates/t"
			return r
		}(), codes.NotFound},
		{"no lifetime", func() *privatecapb.CreateCertificateRequest {
			r := create("two", "", csr)
			r.Certificate.Lifetime = nil
			return r
		}(), codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateCertificate(ctx, tt.req)
			if got := status.Code(err); got != tt.want {
				t.Errorf("code %v (%v), want %v", got, err, tt.want)
			}
		})
	}
	if n := f.Issued(); n != 1 {
		t.Errorf("Issued = %d, want 1", n)
	}
}

func TestFetchCaCertsAndFaults(t *testing.T) {
	ctx := context.Background()
	c, f := client(t)
	resp, err := c.FetchCaCerts(ctx, &privatecapb.FetchCaCertsRequest{CaPool: testPool})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range resp.GetCaCerts() {
		got = append(got, ch.GetCertificates()...)
	}
	want := []string{pemCert(f.Roots(testPool)[0])}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FetchCaCerts (-want +got):\n%s", diff)
	}

	f.SetPermissionDenied(true)
	if _, err := c.GetCaPool(ctx, &privatecapb.GetCaPoolRequest{Name: testPool}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("denied: %v", err)
	}
	f.SetPermissionDenied(false)
	f.FailNext(codes.ResourceExhausted, 1)
	if _, err := c.GetCaPool(ctx, &privatecapb.GetCaPoolRequest{Name: testPool}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("FailNext: %v", err)
	}
	if _, err := c.GetCaPool(ctx, &privatecapb.GetCaPoolRequest{Name: testPool}); err != nil {
		t.Errorf("after FailNext(…, 1): %v", err)
	}
}
