package devca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

func newCSR(t *testing.T, cn string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, DNSNames: []string{"dev.example.com"},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func TestIssueOncePerRequestID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := New(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	csr, key := newCSR(t, "device-1")
	first, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "r1"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	again, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "r1"})
	if err != nil {
		t.Fatalf("Issue again: %v", err)
	}
	if first.Leaf.SerialNumber.Cmp(again.Leaf.SerialNumber) != 0 || c.Issued() != 1 {
		t.Errorf("a repeated request id issued again: serials %v %v, issued %d", first.Leaf.SerialNumber, again.Leaf.SerialNumber, c.Issued())
	}
	roots, _ := c.Roots(ctx)
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	if _, err := first.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("leaf does not chain to the CA: %v", err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(key.Public())
	if string(pub) != string(first.Leaf.RawSubjectPublicKeyInfo) || first.Leaf.Subject.CommonName != "device-1" || first.Leaf.DNSNames[0] != "dev.example.com" {
		t.Errorf("leaf does not carry the CSR's key, subject and SAN: %v %v", first.Leaf.Subject, first.Leaf.DNSNames)
	}
	if _, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "r2"}); err != nil || c.Issued() != 2 {
		t.Errorf("a new request id: err %v, issued %d, want 2", err, c.Issued())
	}
}

func TestIssueRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := New(ctx, json.RawMessage(`{"validity":"1h"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := newCSR(t, "x")
	bad := append([]byte{}, csr...)
	bad[len(bad)-3] ^= 0xff
	outage := &ca.Error{Kind: ca.Transient, Reason: "outage"}
	tests := []struct {
		name  string
		req   ca.Request
		fault error
		want  ca.Kind
	}{
		{"garbage", ca.Request{CSR: []byte("x"), RequestID: "a"}, nil, ca.Permanent},
		{"bad signature", ca.Request{CSR: bad, RequestID: "b"}, nil, ca.Permanent},
		{"no request id", ca.Request{CSR: csr}, nil, ca.Permanent},
		{"outage", ca.Request{CSR: csr, RequestID: "c"}, outage, ca.Transient},
	}
	for _, tc := range tests {
		c.SetFault(func(ca.Request) error { return tc.fault })
		_, err := c.Issue(ctx, tc.req)
		if got := ca.KindOf(err); err == nil || got != tc.want {
			t.Errorf("%s: err %v kind %v, want %v", tc.name, err, got, tc.want)
		}
	}
	if c.Issued() != 0 {
		t.Errorf("issued %d, want 0", c.Issued())
	}
}

func TestNewSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key, err := Generate("file CA")
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	_, otherKey, _ := Generate("other")
	otherDER, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	secretPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherDER}))
	secrets := func(name string) (string, error) {
		if name == "CA_KEY" {
			return secretPEM, nil
		}
		return "", errors.New("unset")
	}
	tests := []struct {
		name, settings, wantErr string
	}{
		{"files", `{"certFile":"` + certFile + `","keyFile":"` + keyFile + `"}`, ""},
		{"unknown field", `{"certPath":"x"}`, "unknown field"},
		{"cert without key", `{"certFile":"` + certFile + `"}`, "certFile needs keyFile"},
		{"bad validity", `{"validity":"soon"}`, "validity"},
		{"key does not match", `{"certFile":"` + certFile + `","keyEnv":"CA_KEY"}`, "does not match"},
		{"missing file", `{"certFile":"/nonexistent","keyFile":"` + keyFile + `"}`, "certFile"},
	}
	for _, tc := range tests {
		c, err := New(context.Background(), json.RawMessage(tc.settings), secrets)
		if tc.wantErr == "" {
			if err != nil || c.Certificate().Subject.CommonName != "file CA" {
				t.Errorf("%s: err %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: error leaks key material: %v", tc.name, err)
		}
	}
}
