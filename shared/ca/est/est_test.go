package est

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/esttest"
	globalsign "github.com/globalsign/est"
	"github.com/google/go-cmp/cmp"
)

func newCSR(t *testing.T, cn string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: cn},
		EmailAddresses: []string{"user@example.com"},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// connect makes a connector from settings; secrets come from env.
func connect(t *testing.T, settings map[string]any, env map[string]string) *Connector {
	t.Helper()
	raw, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), raw, secretsFrom(env))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func secretsFrom(env map[string]string) func(string) (string, error) {
	return func(name string) (string, error) {
		v, ok := env[name]
		if !ok {
			return "", fmt.Errorf("secret %s not set", name)
		}
		return v, nil
	}
}

func verify(t *testing.T, got *ca.Issued, roots []*x509.Certificate) {
	t.Helper()
	rp, ip := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rp.AddCert(r)
	}
	for _, c := range got.Chain {
		ip.AddCert(c)
	}
	if _, err := got.Leaf.Verify(x509.VerifyOptions{Roots: rp, Intermediates: ip, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not chain to Roots: %v", err)
	}
}

func TestEnrollChainsToCACerts(t *testing.T) {
	ctx := context.Background()
	srv := esttest.Start(t)
	c := connect(t, map[string]any{"url": srv.URL, "caFile": srv.CAFile}, nil)
	csr, key := newCSR(t, "device-1")

	got, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	roots, err := c.Roots(ctx)
	if err != nil {
		t.Fatalf("Roots: %v", err)
	}
	if !cmp.Equal(roots, []*x509.Certificate{srv.Root}) || !cmp.Equal(got.Chain, srv.CACerts[:1]) {
		t.Errorf("roots %d certs, chain %d certs: want the EST root, and the issuing CA as chain", len(roots), len(got.Chain))
	}
	verify(t, got, roots)
	if !key.PublicKey.Equal(got.Leaf.PublicKey) || got.Leaf.Subject.CommonName != "device-1" {
		t.Errorf("leaf %v does not hold the CSR's key and subject", got.Leaf.Subject)
	}
}

func TestCAPin(t *testing.T) {
	ctx := context.Background()
	srv := esttest.Start(t)
	pin := func(c *x509.Certificate) string { s := sha256.Sum256(c.Raw); return hex.EncodeToString(s[:]) }
	csr, _ := newCSR(t, "device-1")

	// Pinning the issuing CA: it is the only root, the EST root is left out.
	c := connect(t, map[string]any{"url": srv.URL, "caFile": srv.CAFile, "caPin": pin(srv.CACerts[0])}, nil)
	got, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	roots, err := c.Roots(ctx)
	if err != nil {
		t.Fatalf("Roots: %v", err)
	}
	if !cmp.Equal(roots, srv.CACerts[:1]) {
		t.Errorf("roots: want only the pinned issuing CA, got %d certificates", len(roots))
	}
	verify(t, got, roots)

	other := srv.Root
	other = &x509.Certificate{Raw: append([]byte{0}, other.Raw...)}
	c = connect(t, map[string]any{"url": srv.URL, "caFile": srv.CAFile, "caPin": pin(other)}, nil)
	if _, err := c.Roots(ctx); ca.KindOf(err) != ca.Permanent {
		t.Errorf("pin of a certificate not in /cacerts: %v, want permanent", err)
	}
	if _, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-2"}); ca.KindOf(err) != ca.Permanent {
		t.Errorf("Issue with a pin not in /cacerts: %v, want permanent before enrolling", err)
	}
}

func TestClientCertificate(t *testing.T) {
	srv := esttest.Start(t)
	csr, _ := newCSR(t, "device-1")
	c := connect(t, map[string]any{"url": srv.URL, "caFile": srv.CAFile, "clientCertFile": srv.ClientCertFile, "clientKeyEnv": "EST_KEY"},
		map[string]string{"EST_KEY": srv.ClientKeyPEM})
	if _, err := c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "process-1"}); err != nil {
		t.Fatalf("Issue with the client certificate: %v", err)
	}
}

// TestClientCertificateRequired runs globalsign's EST server library
// in-process behind TLS that requires a client certificate (estserver only
// verifies one if given).
func TestClientCertificateRequired(t *testing.T) {
	trustedFile, trustedKey, trusted := selfSignedClient(t)
	strangerFile, strangerKey, _ := selfSignedClient(t)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(trusted)
	url, caFile := startRouter(t, nil, clientCAs)
	csr, _ := newCSR(t, "device-1")

	for _, tt := range []struct {
		name, certFile, key string
		want                *ca.Error // nil: success
	}{
		{"trusted", trustedFile, trustedKey, nil},
		{"untrusted", strangerFile, strangerKey, &ca.Error{Kind: ca.Permanent, UserMessage: msgTLSRefused}},
		{"none", "", "", &ca.Error{Kind: ca.Permanent, UserMessage: msgTLSRefused}},
	} {
		settings := map[string]any{"url": url, "caFile": caFile}
		if tt.certFile != "" {
			settings["clientCertFile"], settings["clientKeyEnv"] = tt.certFile, "K"
		}
		c := connect(t, settings, map[string]string{"K": tt.key})
		_, err := c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "process-1"})
		if diff := cmp.Diff(tt.want, kindAndMessage(t, err)); diff != "" {
			t.Errorf("%s client certificate (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestServerTLSNotTrusted(t *testing.T) {
	srv := esttest.Start(t)
	c := connect(t, map[string]any{"url": srv.URL}, nil) // system roots only
	csr, _ := newCSR(t, "device-1")
	_, err := c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "process-1"})
	var e *ca.Error
	if !errors.As(err, &e) || e.Kind != ca.Permanent || e.UserMessage != msgTLSTrust {
		t.Errorf("untrusted server certificate: %v, want permanent TLS trust failure", err)
	}
}

func TestServerAnswers(t *testing.T) {
	srv := esttest.Start(t)
	c := connect(t, map[string]any{"url": srv.URL, "caFile": srv.CAFile, "label": esttest.TriggerErrorsLabel}, nil)
	// Under the triggererrors label /cacerts fails: give the connector the
	// CA certificates from the plain path first.
	plain := connect(t, map[string]any{"url": srv.URL, "caFile": srv.CAFile}, nil)
	cacerts, err := plain.caCerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.cacerts, c.fetched = cacerts, time.Now()

	type want struct {
		Kind        ca.Kind
		UserMessage string
		RetryAfter  time.Duration
	}
	tests := []struct {
		cn   string
		want want
	}{
		{esttest.DeferredCN, want{ca.Pending, msgPending, 600 * time.Second}},
		{esttest.ForbiddenCN, want{ca.Permanent, msgForbidden, 0}},
		{esttest.UnknownErrorCN, want{ca.Transient, msgUnavailable, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.cn, func(t *testing.T) {
			csr, _ := newCSR(t, tt.cn)
			// Twice, as the pipeline does for Pending: the same CSR again.
			for range 2 {
				_, err := c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "process-1"})
				var e *ca.Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v is not a *ca.Error", err)
				}
				if diff := cmp.Diff(tt.want, want{e.Kind, e.UserMessage, e.RetryAfter}); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				if !strings.Contains(e.Reason, "HTTP") {
					t.Errorf("Reason %q does not carry the server's answer", e.Reason)
				}
			}
		})
	}
}

func TestOutage(t *testing.T) {
	ctx := context.Background()
	srv := esttest.Start(t)
	settings := map[string]any{"url": srv.URL, "caFile": srv.CAFile}
	c := connect(t, settings, nil)
	csr, _ := newCSR(t, "device-1")
	if _, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"}); err != nil {
		t.Fatalf("Issue before the outage: %v", err)
	}
	srv.Stop()
	if _, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-2"}); ca.KindOf(err) != ca.Transient {
		t.Errorf("Issue during the outage: %v, want transient", err)
	}
	if _, err := connect(t, settings, nil).Roots(ctx); ca.KindOf(err) != ca.Transient {
		t.Errorf("Roots during the outage: %v, want transient", err)
	}
}

// TestBasicAuth runs globalsign's own EST server library in-process, with
// a password check: the estserver binary asks for none on EST endpoints.
func TestBasicAuth(t *testing.T) {
	url, caFile := startRouter(t, func(_ context.Context, _ *http.Request, _, user, pass string) error {
		if user != "adapter" || pass != "right" {
			return errors.New("bad credentials")
		}
		return nil
	}, nil)
	csr, _ := newCSR(t, "device-1")
	for _, tt := range []struct {
		password string
		want     *ca.Error // nil: success
	}{
		{"right", nil},
		{"wrong", &ca.Error{Kind: ca.Permanent, UserMessage: msgUnauthorized}},
	} {
		c := connect(t, map[string]any{"url": url, "caFile": caFile, "usernameEnv": "U", "passwordEnv": "P"},
			map[string]string{"U": "adapter", "P": tt.password})
		_, err := c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "process-1"})
		if diff := cmp.Diff(tt.want, kindAndMessage(t, err)); diff != "" {
			t.Errorf("password %s (-want +got):\n%s", tt.password, diff)
		}
	}
}

// startRouter serves globalsign's EST router over TLS with a small signing
// CA, the given password check and, if clientCAs is set, required TLS
// client certificates. It returns the URL and a caFile for it.
func startRouter(t *testing.T, check func(context.Context, *http.Request, string, string, string) error, clientCAs *x509.CertPool) (string, string) {
	t.Helper()
	root, rootKey := selfSigned(t, "test CA", true)
	h, err := globalsign.NewRouter(&globalsign.ServerConfig{CA: &signingCA{cert: root, key: rootKey}, CheckBasicAuth: check})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = &tls.Config{}
	if clientCAs != nil {
		ts.TLS.ClientAuth, ts.TLS.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caFile := filepath.Join(t.TempDir(), "tls.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ts.URL, caFile
}

// kindAndMessage reduces err to its kind and user message (nil for nil).
func kindAndMessage(t *testing.T, err error) *ca.Error {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *ca.Error
	if !errors.As(err, &e) {
		t.Fatalf("%v is not a *ca.Error", err)
	}
	return &ca.Error{Kind: e.Kind, UserMessage: e.UserMessage}
}

func TestClassify(t *testing.T) {
	type want struct {
		Kind       ca.Kind
		RetryAfter time.Duration
	}
	tests := []struct {
		err  error
		want want
	}{
		{statusErr{202, 0}, want{ca.Pending, DefaultRetryAfter}},
		{statusErr{202, 30}, want{ca.Pending, 30 * time.Second}},
		{statusErr{400, 0}, want{ca.Permanent, 0}},
		{statusErr{401, 0}, want{ca.Permanent, 0}},
		{statusErr{404, 0}, want{ca.Permanent, 0}},
		{statusErr{409, 0}, want{ca.Permanent, 0}},
		{statusErr{408, 0}, want{ca.Transient, 0}},
		{statusErr{429, 20}, want{ca.Transient, 20 * time.Second}},
		{statusErr{503, 0}, want{ca.Transient, 0}},
		{context.DeadlineExceeded, want{ca.Transient, 0}},
		{errors.New("failed to decode PKCS7: garbage"), want{ca.Permanent, 0}},
	}
	for _, tt := range tests {
		var e *ca.Error
		if !errors.As(classify("op", tt.err), &e) {
			t.Fatalf("%v: not a *ca.Error", tt.err)
		}
		if diff := cmp.Diff(tt.want, want{e.Kind, e.RetryAfter}); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tt.err, diff)
		}
		if e.UserMessage == "" {
			t.Errorf("%v: no UserMessage", tt.err)
		}
	}
}

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	root, _ := selfSigned(t, "test CA", true)
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyPEM, _ := selfSignedClient(t)
	secrets := map[string]string{"U": "user", "P": "s3cr3t-password", "K": keyPEM, "BADKEY": "s3cr3t-not-a-key"}
	tests := []struct {
		name     string
		settings string
		wantErrs []string
	}{
		{name: "minimal", settings: `{"url":"https://est.example.com"}`},
		{name: "full", settings: `{"url":"https://est.example.com:8443/","label":"devices","usernameEnv":"U","passwordEnv":"P",` +
			`"clientCertFile":"` + certFile + `","clientKeyEnv":"K","caFile":"` + caFile + `","caPin":"sha256:` + strings.Repeat("ab", 32) + `"}`},
		{name: "unknown field", settings: `{"url":"https://est.example.com","insecureSkipVerify":true}`, wantErrs: []string{"unknown field"}},
		{name: "missing url", settings: `{}`, wantErrs: []string{"url is required"}},
		{name: "everything wrong", settings: `{"url":"http://est.example.com/x?y","label":"a/b","usernameEnv":"U",` +
			`"clientKeyEnv":"K","caFile":"` + filepath.Join(dir, "none.pem") + `","caPin":"12"}`,
			wantErrs: []string{"url", "label", "usernameEnv and passwordEnv", "clientCertFile and clientKeyEnv", "caFile", "caPin"}},
		{name: "missing secret", settings: `{"url":"https://e","usernameEnv":"U","passwordEnv":"NOPE"}`, wantErrs: []string{"passwordEnv: the environment variable it names: secret <passwordEnv> not set"}},
		{name: "bad key", settings: `{"url":"https://e","clientCertFile":"` + certFile + `","clientKeyEnv":"BADKEY"}`, wantErrs: []string{"clientKeyEnv key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), json.RawMessage(tt.settings), secretsFrom(secrets))
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
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q reveals a secret", err)
			}
		})
	}
}

type statusErr struct{ code, retry int }

func (e statusErr) Error() string   { return http.StatusText(e.code) }
func (e statusErr) StatusCode() int { return e.code }
func (e statusErr) RetryAfter() int { return e.retry }

func selfSigned(t *testing.T, cn string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// selfSignedClient writes a self-signed client certificate and returns its
// file, its PEM key and the certificate.
func selfSignedClient(t *testing.T) (string, string, *x509.Certificate) {
	t.Helper()
	cert, key := selfSigned(t, "stranger", false)
	f := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return f, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), cert
}

// signingCA is the smallest globalsign.CA: /cacerts and /simpleenroll.
type signingCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func (s *signingCA) CACerts(context.Context, string, *http.Request) ([]*x509.Certificate, error) {
	return []*x509.Certificate{s.cert}, nil
}

func (s *signingCA) CSRAttrs(context.Context, string, *http.Request) (globalsign.CSRAttrs, error) {
	return globalsign.CSRAttrs{}, nil
}

func (s *signingCA) Enroll(_ context.Context, csr *x509.CertificateRequest, _ string, _ *http.Request) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), RawSubject: csr.RawSubject,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, s.cert, csr.PublicKey, s.key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func (s *signingCA) Reenroll(ctx context.Context, _ *x509.Certificate, csr *x509.CertificateRequest, aps string, r *http.Request) (*x509.Certificate, error) {
	return s.Enroll(ctx, csr, aps, r)
}

func (s *signingCA) ServerKeyGen(context.Context, *x509.CertificateRequest, string, *http.Request) (*x509.Certificate, []byte, error) {
	return nil, nil, errors.New("not supported")
}

func (s *signingCA) TPMEnroll(context.Context, *x509.CertificateRequest, []*x509.Certificate, []byte, []byte, string, *http.Request) ([]byte, []byte, []byte, error) {
	return nil, nil, nil, errors.New("not supported")
}
