package scep

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/csr"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
)

// garbageCA answers GetCACaps normally and the operation under test with
// body; the others with a real CA certificate.
func garbageCA(t *testing.T, op string, body []byte) string {
	t.Helper()
	caCert := makeCert(t, "garbage CA", true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch got := r.URL.Query().Get("operation"); {
		case got == op:
			w.Header().Set("Content-Type", "application/x-pki-message")
			w.Write(body)
		case got == "GetCACaps":
			fmt.Fprint(w, "POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\n")
		case got == "GetCACert":
			w.Header().Set("Content-Type", "application/x-x509-ca-cert")
			w.Write(caCert.cert.Raw)
		default:
			http.Error(w, "no", http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/scep"
}

// TestGarbageAnswers: a CA answering a malformed PKCS#7 ("0\x82", which
// panicked smallstep/pkcs7 v0.2.1's BER parser from GetCACert and
// PKIOperation) fails the call with a *ca.Error instead of a panic.
func TestGarbageAnswers(t *testing.T) {
	key := sceptest.RSAKey(t)
	req := ca.Request{CSR: sceptest.NewCSR(t, key, csr.Template{Subject: pkix.Name{CommonName: "device"}}), RequestID: "r1"}
	for _, tc := range []struct {
		op   string
		body string
		call string
	}{
		{"GetCACert", "0\x82", "Roots"},
		{"GetCACert", "0\x82", "Issue"},
		{"GetCACert", "0\x80\x04\x00", "Issue"},
		{"PKIOperation", "0\x82", "Issue"},
		{"PKIOperation", "0\x80\x04\x00", "Issue"},
		{"PKIOperation", "0\x82\x01", "Issue"},
	} {
		t.Run(fmt.Sprintf("%s %q %s", tc.op, tc.body, tc.call), func(t *testing.T) {
			settings, _ := json.Marshal(map[string]any{"url": garbageCA(t, tc.op, []byte(tc.body)), "challenge": map[string]any{"type": "none"}, "timeout": "10s"})
			c, err := New(context.Background(), settings, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.call == "Roots" {
				_, err = c.Roots(context.Background())
			} else {
				_, err = c.Issue(context.Background(), req)
			}
			var ce *ca.Error
			if !errors.As(err, &ce) || ce.Kind == ca.Pending {
				t.Errorf("error %v: want a transient or permanent *ca.Error", err)
			}
		})
	}
}

// panicking is a transport that panics, as a library parsing a hostile
// answer may.
type panicking struct{}

func (panicking) RoundTrip(*http.Request) (*http.Response, error) {
	var b []byte
	_ = b[2] // index out of range, as ber2der did
	return nil, nil
}

// TestPanicIsTransient: a panic under any exported method that calls a
// library is recovered into a Transient *ca.Error, so that the pipeline's
// last attempt still reports to the device.
func TestPanicIsTransient(t *testing.T) {
	key := sceptest.RSAKey(t)
	req := ca.Request{CSR: sceptest.NewCSR(t, key, csr.Template{Subject: pkix.Name{CommonName: "device"}}), RequestID: "r1"}
	settings := `{"url": "http://127.0.0.1:1/scep", "challenge": {"type": "ndes", "adminUrl": "http://127.0.0.1:1/admin", "usernameEnv": "U", "passwordEnv": "P"}}`
	c, err := New(context.Background(), json.RawMessage(settings), secretsFrom(map[string]string{"U": "u", "P": "p"}))
	if err != nil {
		t.Fatal(err)
	}
	c.client.Transport = panicking{}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Issue":     func() error { _, err := c.Issue(ctx, req); return err },
		"Roots":     func() error { _, err := c.Roots(ctx); return err },
		"Challenge": func() error { _, _, err := c.Challenge(ctx, "c:p"); return err },
	} {
		err := call()
		var ce *ca.Error
		if !errors.As(err, &ce) || ce.Kind != ca.Transient || ce.UserMessage != ca.MsgInternal {
			t.Errorf("%s: %v, want a transient *ca.Error from the recovered panic", name, err)
		}
	}
}

// TestHangingCA: a CA (or NDES admin page) that accepts the request and
// never answers is given up at the caller's deadline with a Transient
// error, well before the connector's own per-request timeout.
func TestHangingCA(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	key := sceptest.RSAKey(t)
	req := ca.Request{CSR: sceptest.NewCSR(t, key, csr.Template{Subject: pkix.Name{CommonName: "device"}}), RequestID: "r1"}
	settings := fmt.Sprintf(`{"url": %q, "challenge": {"type": "ndes", "adminUrl": %q, "usernameEnv": "U", "passwordEnv": "P"}, "timeout": "10m"}`, srv.URL+"/scep", srv.URL+"/admin")
	c, err := New(context.Background(), json.RawMessage(settings), secretsFrom(map[string]string{"U": "u", "P": "p"}))
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(ctx context.Context) error{
		"Issue":     func(ctx context.Context) error { _, err := c.Issue(ctx, req); return err },
		"Roots":     func(ctx context.Context) error { _, err := c.Roots(ctx); return err },
		"Challenge": func(ctx context.Context) error { _, _, err := c.Challenge(ctx, "c:p"); return err },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := call(ctx)
		cancel()
		if ca.KindOf(err) != ca.Transient || err == nil {
			t.Errorf("%s: %v, want a transient error", name, err)
		}
	}
}
