package csr

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

// openssl finds the openssl binary, a second, independent reader of the CSRs.
func openssl(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		testenv.Unavailable(t, "openssl", err)
	}
	return bin
}

func runOpenSSL(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestOpenSSLReadsCSR has OpenSSL check the self-signature of assembled CSRs
// and read back what was requested.
func TestOpenSSLReadsCSR(t *testing.T) {
	t.Parallel()
	bin := openssl(t)
	tests := []struct {
		name   string
		kt     KeyType
		tmpl   Template
		wantIn []string
	}{
		{
			name: "RSA-2048, everything",
			kt:   RSA2048,
			tmpl: fullTemplate(),
			wantIn: []string{
				"Signature Algorithm: sha256WithRSAEncryption",
				"Public-Key: (2048 bit)",
			},
		},
		{
			name: "EC P-256, everything",
			kt:   ECP256,
			tmpl: fullTemplate(),
			wantIn: []string{
				"Signature Algorithm: ecdsa-with-SHA256",
				"NIST CURVE: P-256",
			},
		},
	}
	common := []string{
		"Subject: C = US, ST = California, L = Mountain View, O = Example Org, OU = Z\\C3\\BCrich + OU = Devices, CN = user@example.com",
		"challengePassword        :F3A1C2B4D5E6F708",
		"DNS:host.example.com, DNS:*.corp.example.com, email:user@example.com, URI:spiffe://example.com/device/1234, " +
			"URI:urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e, othername: UPN::user@corp.example.com",
		"X509v3 Key Usage: critical\n                    Digital Signature, Key Encipherment",
		"TLS Web Client Authentication, E-mail Protection",
		// OpenSSL has no name for the template extension; it dumps the
		// BMPString's bytes, the NULs as dots: 1e 18 00 43 00 68 ...
		"1.3.6.1.4.1.311.20.2: \n                    ...C.h.r.o.m.e.O.S.U.s.e.r",
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := key(t, tc.kt)
			cri, err := BuildRequestInfo(k.spki, tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			der, err := Assemble(cri, k.sign(t, cri), k.algorithm)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			good := filepath.Join(dir, "good.pem")
			if err := os.WriteFile(good, PEM(der), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runOpenSSL(t, bin, "req", "-verify", "-noout", "-in", good)
			if err != nil || !strings.Contains(out, "verify OK") {
				t.Errorf("openssl req -verify: %v\n%s", err, out)
			}

			text, err := runOpenSSL(t, bin, "req", "-text", "-noout", "-in", good)
			if err != nil {
				t.Fatalf("openssl req -text: %v\n%s", err, text)
			}
			for _, want := range append(common, tc.wantIn...) {
				if !strings.Contains(text, want) {
					t.Errorf("openssl req -text lacks %q; it shows:\n%s", want, text)
				}
			}

			// The same CSR with one signature bit flipped must fail, or the
			// check above proves nothing. OpenSSL 3.0 exits 0 either way:
			// only its message tells.
			bad := filepath.Join(dir, "bad.pem")
			if err := os.WriteFile(bad, PEM(flip(der, len(der)-1)), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, _ := runOpenSSL(t, bin, "req", "-verify", "-noout", "-in", bad); strings.Contains(out, "verify OK") ||
				!strings.Contains(out, "verify failure") {
				t.Errorf("openssl req -verify did not refuse a corrupted signature:\n%s", out)
			}
		})
	}
}

// TestOpenSSLEmptySubject checks that a CSR with only a (critical) SAN and a
// UTF-8 challenge password is accepted by OpenSSL too.
func TestOpenSSLEmptySubject(t *testing.T) {
	t.Parallel()
	bin := openssl(t)
	k := key(t, ECP256)
	cri, err := BuildRequestInfo(k.spki, Template{
		UserPrincipalNames: []string{"user@corp.example.com"},
		ChallengePassword:  "pässwort",
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := Assemble(cri, k.sign(t, cri), k.algorithm)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "csr.pem")
	if err := os.WriteFile(file, PEM(der), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runOpenSSL(t, bin, "req", "-verify", "-text", "-noout", "-nameopt", "utf8", "-in", file)
	if err != nil {
		t.Fatalf("openssl req -verify: %v\n%s", err, out)
	}
	for _, want := range []string{
		"verify OK",
		"X509v3 Subject Alternative Name: critical\n                    othername: UPN::user@corp.example.com",
		"challengePassword",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl output lacks %q:\n%s", want, out)
		}
	}
}
