package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func selfSigned(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(0, 0).Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseChain(t *testing.T) {
	t.Parallel()
	a, b := selfSigned(t, "a"), selfSigned(t, "b")
	block := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	tests := []struct {
		name    string
		pem     string
		want    []string // common names, in order
		wantErr string
	}{
		{name: "one", pem: block("CERTIFICATE", a.Raw), want: []string{"a"}},
		{name: "in order", pem: block("CERTIFICATE", b.Raw) + block("CERTIFICATE", a.Raw), want: []string{"b", "a"}},
		{name: "text around and other blocks skipped", pem: "subject=b\n" + block("CERTIFICATE", b.Raw) + block("PRIVATE KEY", []byte{1}) + "\n" + block("CERTIFICATE", a.Raw) + "trailer\n", want: []string{"b", "a"}},
		{name: "none", pem: block("PRIVATE KEY", []byte{1}), wantErr: "no PEM certificate"},
		{name: "empty", pem: "", wantErr: "no PEM certificate"},
		{name: "not PEM", pem: string(a.Raw), wantErr: "no PEM certificate"},
		{name: "a bad one", pem: block("CERTIFICATE", a.Raw) + block("CERTIFICATE", []byte("junk")), wantErr: "PEM certificate 2:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			certs, err := ParseChain([]byte(tc.pem))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseChain = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseChain: %v", err)
			}
			var got []string
			for _, c := range certs {
				got = append(got, c.Subject.CommonName)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseChain (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	tests := []struct {
		name    string
		pem     []byte
		want    crypto.PublicKey
		wantErr string
	}{
		{name: "PKCS#8", pem: block("PRIVATE KEY", pkcs8), want: ec.Public()},
		{name: "SEC 1", pem: block("EC PRIVATE KEY", sec1), want: ec.Public()},
		{name: "PKCS#1", pem: block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), want: rsaKey.Public()},
		{name: "not PEM", pem: []byte("SEEKRIT"), wantErr: "no PEM block"},
		{name: "a certificate", pem: block("CERTIFICATE", []byte("SEEKRIT")), wantErr: `PEM block "CERTIFICATE" is not a private key`},
		{name: "junk", pem: block("PRIVATE KEY", []byte("SEEKRIT")), wantErr: "the private key does not parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePrivateKey(tc.pem)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "SEEKRIT") {
					t.Fatalf("ParsePrivateKey = %v, want an error with %q that does not quote the key", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if pub, ok := got.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(tc.want) {
				t.Errorf("ParsePrivateKey gave another key: %T", got)
			}
		})
	}
}
