package cas

import (
	"context"
	"errors"
	"testing"
	"time"

	privateca "cloud.google.com/go/security/privateca/apiv1"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestGarbageAnswers: a service answering certificates that do not parse
// fails the call with a *ca.Error (no panic), from FetchCaCerts (Roots, and
// Issue before it issues) and from CreateCertificate.
func TestGarbageAnswers(t *testing.T) {
	ctx := context.Background()
	csr, _ := newCSR(t, "device-1")
	for name, call := range map[string]func(c *Connector) error{
		"Roots": func(c *Connector) error { _, err := c.Roots(ctx); return err },
		"Issue": func(c *Connector) error {
			_, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"})
			return err
		},
		"Issue after roots": func(c *Connector) error {
			c.roots, c.fetched = nil, time.Time{}
			_, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-2"})
			return err
		},
	} {
		c, fake := setup(t, nil)
		if name == "Issue after roots" {
			if _, err := c.Roots(ctx); err != nil {
				t.Fatal(err)
			}
		}
		fake.SetGarbage(true)
		err := call(c)
		var ce *ca.Error
		if !errors.As(err, &ce) || ce.Kind == ca.Pending {
			t.Errorf("%s: %v, want a transient or permanent *ca.Error", name, err)
		}
	}
}

// TestPanicIsTransient: a panic under Issue or Roots (here from the gRPC
// client's interceptor, standing for a library that panics on an answer) is
// recovered into a Transient *ca.Error.
func TestPanicIsTransient(t *testing.T) {
	ctx := context.Background()
	csr, _ := newCSR(t, "device-1")
	c, _ := setup(t, nil)
	var err error
	c.client, err = privateca.NewCertificateAuthorityClient(ctx,
		option.WithEndpoint("127.0.0.1:1"), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithGRPCDialOption(grpc.WithUnaryInterceptor(func(context.Context, string, any, any, *grpc.ClientConn, grpc.UnaryInvoker, ...grpc.CallOption) error {
			var b []byte
			_ = b[2] // index out of range
			return nil
		})))
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"Roots": func() error { _, err := c.Roots(ctx); return err },
		"Issue": func() error { _, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"}); return err },
	} {
		err := call()
		var ce *ca.Error
		if !errors.As(err, &ce) || ce.Kind != ca.Transient || ce.UserMessage != ca.MsgInternal {
			t.Errorf("%s: %v, want a transient *ca.Error from the recovered panic", name, err)
		}
	}
}

// TestHangingService: a service that never answers is given up at the
// caller's deadline, with a Transient error.
func TestHangingService(t *testing.T) {
	csr, _ := newCSR(t, "device-1")
	c, fake := setup(t, nil)
	fake.SetHang(true)
	for name, call := range map[string]func(ctx context.Context) error{
		"Roots": func(ctx context.Context) error { _, err := c.Roots(ctx); return err },
		"Issue": func(ctx context.Context) error {
			_, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"})
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := call(ctx)
		cancel()
		if ca.KindOf(err) != ca.Transient || err == nil {
			t.Errorf("%s: %v, want a transient error", name, err)
		}
	}
}
