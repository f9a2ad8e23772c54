package scep

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

func secretsFrom(m map[string]string) func(string) (string, error) {
	return func(name string) (string, error) {
		if v, ok := m[name]; ok {
			return v, nil
		}
		return "", fmt.Errorf("not set")
	}
}

func TestNewSettings(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	pkcs8PEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	secrets := secretsFrom(map[string]string{
		"SCEP_CHALLENGE": "s3cret-challenge", "NDES_USER": "u", "NDES_PASSWORD": "p",
		"SIGNER": rsaPEM, "SIGNER8": pkcs8PEM, "EC_SIGNER": ecPEM, "EMPTY": "",
	})

	for _, tc := range []struct {
		name     string
		settings string
		// wantErrs are substrings, each expected in the (joined) error.
		wantErrs []string
	}{
		{name: "static", settings: `{"url": "http://ndes.example.com/certsrv/mscep/mscep.dll", "challenge": {"type": "static", "secretEnv": "SCEP_CHALLENGE"}}`},
		{name: "ndes, every field", settings: `{"url": "https://ndes.example.com/certsrv/mscep/mscep.dll", "caFingerprint": "AB:` + strings.Repeat("cd", 31) + `",
			"challenge": {"type": "ndes", "adminUrl": "https://ndes.example.com/certsrv/mscep_admin/", "usernameEnv": "NDES_USER", "passwordEnv": "NDES_PASSWORD", "validity": "30m"},
			"signerKeyEnv": "SIGNER", "timeout": "10s", "pollInterval": "2m"}`},
		{name: "none, PKCS#8 signer", settings: `{"url": "http://127.0.0.1:8080/scep/certprov", "challenge": {"type": "none"}, "signerKeyEnv": "SIGNER8"}`},
		{name: "unknown field", settings: `{"url": "http://x/scep", "challenge": {"type": "none"}, "challengeEnv": "X"}`, wantErrs: []string{`unknown field "challengeEnv"`}},
		{name: "unknown nested field", settings: `{"url": "http://x/scep", "challenge": {"type": "none", "secret": "x"}}`, wantErrs: []string{`unknown field "secret"`}},
		{name: "not an object", settings: `[]`, wantErrs: []string{"scep settings"}},
		{name: "everything wrong at once", settings: `{"url": "ftp://x/scep", "caFingerprint": "abc", "timeout": "soon", "pollInterval": "-1s", "challenge": {"type": "static"}}`,
			wantErrs: []string{"url: must be an http or https URL", "caFingerprint must be a SHA-256", "timeout \"soon\"", "pollInterval \"-1s\"", "challenge.secretEnv is required"}},
		{name: "missing url and challenge", settings: `{}`, wantErrs: []string{"url is required", "challenge.type is required"}},
		{name: "unknown challenge type", settings: `{"url": "http://x/scep", "challenge": {"type": "otp"}}`, wantErrs: []string{`challenge.type "otp" is unknown`}},
		{name: "ndes without its fields", settings: `{"url": "http://x/scep", "challenge": {"type": "ndes", "secretEnv": "SCEP_CHALLENGE", "validity": "0s"}}`,
			wantErrs: []string{"challenge.adminUrl is required", "challenge.usernameEnv is required", "challenge.passwordEnv is required", "challenge.validity \"0s\"", "challenge.secretEnv is not used"}},
		{name: "static with ndes fields", settings: `{"url": "http://x/scep", "challenge": {"type": "static", "secretEnv": "SCEP_CHALLENGE", "adminUrl": "http://x/", "usernameEnv": "NDES_USER"}}`,
			wantErrs: []string{"challenge.adminUrl is not used", "challenge.usernameEnv is not used"}},
		{name: "credentials in the url", settings: `{"url": "http://user:hunter2@x/scep", "challenge": {"type": "none"}}`, wantErrs: []string{"must not carry credentials"}},
		{name: "query in the url", settings: `{"url": "http://x/scep?operation=GetCACert", "challenge": {"type": "none"}}`, wantErrs: []string{"must not have a query"}},
		{name: "relative admin url", settings: `{"url": "http://x/scep", "challenge": {"type": "ndes", "adminUrl": "/certsrv/mscep_admin/", "usernameEnv": "NDES_USER", "passwordEnv": "NDES_PASSWORD"}}`,
			wantErrs: []string{"challenge.adminUrl"}},
		{name: "missing and empty secrets", settings: `{"url": "http://x/scep", "challenge": {"type": "ndes", "adminUrl": "http://x/", "usernameEnv": "NOPE", "passwordEnv": "EMPTY"}}`,
			wantErrs: []string{"challenge.usernameEnv: the environment variable it names: not set", "challenge.passwordEnv: the environment variable it names is empty"}},
		{name: "EC signer key", settings: `{"url": "http://x/scep", "challenge": {"type": "none"}, "signerKeyEnv": "EC_SIGNER"}`, wantErrs: []string{"SCEP signers need RSA"}},
		{name: "signer not PEM", settings: `{"url": "http://x/scep", "challenge": {"type": "none"}, "signerKeyEnv": "SCEP_CHALLENGE"}`, wantErrs: []string{"signerKeyEnv: no PEM block"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(context.Background(), json.RawMessage(tc.settings), secrets)
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if c.signerKey == nil {
					t.Error("no signer key")
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			for _, secret := range []string{"s3cret-challenge", "hunter2", "PRIVATE KEY"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q reveals a secret", err)
				}
			}
		})
	}
}

func TestNewResolvedSettings(t *testing.T) {
	c, err := New(context.Background(), json.RawMessage(`{"url": "http://ndes/certsrv/mscep/mscep.dll", "caFingerprint": "`+strings.Repeat("AB", 32)+`",
		"challenge": {"type": "ndes", "adminUrl": "http://ndes/certsrv/mscep_admin/", "usernameEnv": "U", "passwordEnv": "P"}}`),
		secretsFrom(map[string]string{"U": "user", "P": "pass"}))
	if err != nil {
		t.Fatal(err)
	}
	type resolved struct {
		Fingerprint             string
		Validity, Timeout, Poll time.Duration
		User, Password          string
	}
	got := resolved{fmt.Sprintf("%x", c.cfg.fingerprint), c.cfg.validity, c.cfg.timeout, c.cfg.pollInterval, c.ndesUser, c.ndesPasswd}
	want := resolved{strings.Repeat("ab", 32), 60 * time.Minute, 30 * time.Second, 30 * time.Second, "user", "pass"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestNewSecretsFuncError(t *testing.T) {
	_, err := New(context.Background(), json.RawMessage(`{"url": "http://x/scep", "challenge": {"type": "static", "secretEnv": "C"}}`),
		func(string) (string, error) { return "", errors.New("secret manager unavailable") })
	if err == nil || !strings.Contains(err.Error(), "secret manager unavailable") {
		t.Errorf("New = %v, want the secrets error", err)
	}
}

func TestTransactionID(t *testing.T) {
	a, b := TransactionID("req-1"), TransactionID("req-2")
	if a != TransactionID("req-1") {
		t.Error("TransactionID is not deterministic")
	}
	if a == b {
		t.Error("different request ids share a transaction id")
	}
	if len(a) != 40 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("TransactionID = %q, want 40 hex digits (a PrintableString)", a)
	}
}

// The registry tells from the settings alone which SCEP connections need a
// challenge at claim time, and what it builds for them is a ca.Challenger.
func TestRegisteredNeedsChallenge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, settings string
		want           bool
	}{
		{"static", `{"url":"http://x/scep","challenge":{"type":"static","secretEnv":"SCEP_CHALLENGE"}}`, true},
		{"ndes", `{"url":"http://x/scep","challenge":{"type":"ndes","adminUrl":"http://x/certsrv/mscep_admin/","usernameEnv":"U","passwordEnv":"P"}}`, true},
		{"none", `{"url":"http://x/scep","challenge":{"type":"none"}}`, false},
		{"unreadable counts as needing one", `{"url":"http://x/scep","challenge":{"type":"none"},"typo":1}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ca.NeedsChallenge(Type, json.RawMessage(tc.settings))
			if err != nil || got != tc.want {
				t.Fatalf("ca.NeedsChallenge = %v, %v; want %v", got, err, tc.want)
			}
			if !tc.want {
				return
			}
			iss, err := ca.New(context.Background(), Type, json.RawMessage(tc.settings),
				ca.Deps{Secrets: secretsFrom(map[string]string{"SCEP_CHALLENGE": "pw", "U": "u", "P": "p"})})
			if err != nil {
				if tc.name == "unreadable counts as needing one" {
					return // building it says what is wrong
				}
				t.Fatalf("ca.New: %v", err)
			}
			if _, ok := iss.(ca.Challenger); !ok {
				t.Errorf("ca.New built a %T, not a ca.Challenger", iss)
			}
		})
	}
}
