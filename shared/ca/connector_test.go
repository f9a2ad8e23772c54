package ca

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
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeIssuer is a connection that records the settings it was built from.
type fakeIssuer struct{ Settings string }

func (fakeIssuer) Issue(context.Context, Request) (*Issued, error)    { return nil, nil }
func (fakeIssuer) Roots(context.Context) ([]*x509.Certificate, error) { return nil, nil }

func TestRegistry(t *testing.T) {
	build := func(_ context.Context, settings json.RawMessage, deps Deps) (Issuer, error) {
		v, err := deps.Secrets("X")
		return fakeIssuer{Settings: string(settings) + v}, err
	}
	Register("test-plain", Connector{New: build})
	Register("test-challenge", Connector{New: build, NeedsChallenge: func(s json.RawMessage) bool { return string(s) != `"none"` }})

	deps := Deps{Secrets: func(string) (string, error) { return "+secret", nil }}
	got, err := New(context.Background(), "test-plain", json.RawMessage(`{}`), deps)
	if err != nil {
		t.Fatalf("New(test-plain): %v", err)
	}
	if diff := cmp.Diff(fakeIssuer{Settings: "{}+secret"}, got); diff != "" {
		t.Errorf("New(test-plain) (-want +got):\n%s", diff)
	}

	_, err = New(context.Background(), "tset-plain", nil, deps)
	if err == nil || !strings.Contains(err.Error(), `unknown CA connector type "tset-plain"`) ||
		!strings.Contains(err.Error(), "test-challenge, test-plain") {
		t.Errorf("New of an unknown type: %v, want the type and the registered ones", err)
	}

	for _, tc := range []struct {
		typ, settings string
		want, wantErr bool
	}{
		{typ: "test-plain", settings: `{}`, want: false},
		{typ: "test-challenge", settings: `{}`, want: true},
		{typ: "test-challenge", settings: `"none"`, want: false},
		{typ: "unknown", settings: `{}`, wantErr: true},
	} {
		got, err := NeedsChallenge(tc.typ, json.RawMessage(tc.settings))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("NeedsChallenge(%s, %s) = %v, %v; want %v, error %v", tc.typ, tc.settings, got, err, tc.want, tc.wantErr)
		}
	}

	for _, tc := range []struct {
		name string
		typ  string
		c    Connector
	}{
		{"twice", "test-plain", Connector{New: build}},
		{"no type", "", Connector{New: build}},
		{"no New", "test-nonew", Connector{}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register %s did not panic", tc.name)
				}
			}()
			Register(tc.typ, tc.c)
		}()
	}
}

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

// ptrIssuer is a connector type whose constructor returns a pointer.
type ptrIssuer struct{ secret string }

func (*ptrIssuer) Issue(context.Context, Request) (*Issued, error)    { return nil, nil }
func (*ptrIssuer) Roots(context.Context) ([]*x509.Certificate, error) { return nil, nil }

func newPtrIssuer(_ context.Context, _ json.RawMessage, secrets func(string) (string, error)) (*ptrIssuer, error) {
	v, err := secrets("KEY")
	if err != nil {
		return nil, err
	}
	return &ptrIssuer{secret: v}, nil
}

// Adapt passes the secrets through, and a failed construction is a nil
// Issuer, not a nil *ptrIssuer inside a non-nil interface.
func TestAdapt(t *testing.T) {
	t.Parallel()
	build := Adapt(newPtrIssuer)
	iss, err := build(context.Background(), nil, Deps{Secrets: func(string) (string, error) { return "k", nil }})
	if p, ok := iss.(*ptrIssuer); err != nil || !ok || p.secret != "k" {
		t.Errorf("Adapt(New) = %#v, %v; want the connector with its secret", iss, err)
	}
	iss, err = build(context.Background(), nil, Deps{Secrets: func(string) (string, error) { return "", errors.New("not set") }})
	if err == nil || iss != nil {
		t.Errorf("Adapt(New) on failure = %#v, %v; want a nil Issuer and the error", iss, err)
	}
}
