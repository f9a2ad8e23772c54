package main

import (
	"crypto"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
)

// TestSCEPServer: render --issue and config check --connect against a real
// CA server, micromdm's scepserver (skipped where it is not installed, unless
// CERTPROV_INTEGRATION=require).
func TestSCEPServer(t *testing.T) {
	s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
	cfg := writeFile(t, "scep.json", `{"allowedCustomers": ["C0local"], "caConnections": {"corp-scep": {"type": "scep", "settings": `+string(s.Settings(nil))+`}},
		"profiles": {"device_profile": {"subject": {"commonName": "${DEVICE_SERIAL_NUMBER}", "organization": ["Example Corp"]}, "validity": "720h"}}}`)
	vars := map[string]string{sceptest.ChallengeEnv: s.Challenge}

	r := runCLI(t, vars, "config", "check", "--config", cfg, "--connect")
	if r.code != exitOK {
		t.Fatalf("config check --connect: exit code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustContain(t, "config check --connect", r.stdout, "CA connection corp-scep (scep): ok; reachable\n"+
		"  GetCACaps: AES DES3 POSTPKIOPERATION RENEWAL SCEPSTANDARD SHA-1 SHA-256\n"+
		"  GetCACert: 1 certificate(s): CN=certprov test SCEP CA,OU=SCEP CA,O=scep-ca,C=US; requests encrypted to CN=certprov test SCEP CA,OU=SCEP CA,O=scep-ca,C=US, AES-128-CBC with SHA-256\n")

	key := sceptest.RSAKey(t)
	r = runCLI(t, vars, "render", "--config", cfg, "--profile", "device_profile", "--device-id", "D1", "--serial", "5CD1234XYZ", "--key", keyFile(t, key), "--issue", "--json")
	if r.code != exitOK {
		t.Fatalf("render --issue: exit code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var got renderReport
	decodeJSON(t, r, &got)
	if !got.ChallengePassword {
		t.Error("the CSR holds no challenge password")
	}
	if got.Certificate == nil {
		t.Fatalf("no certificate: %+v", got)
	}
	cert, err := x509.ParseCertificate(pemBlock(t, got.Certificate.PEM, "CERTIFICATE"))
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
		t.Error("the certificate does not hold the --key's public key")
	}
	if !strings.Contains(cert.Subject.String(), "CN=5CD1234XYZ") || cert.Issuer.CommonName != "certprov test SCEP CA" {
		t.Errorf("certificate subject %s, issuer %s", cert.Subject, cert.Issuer)
	}

	// Without the challenge secret, --issue refuses to stand in a placeholder.
	r = runCLI(t, nil, "render", "--config", cfg, "--profile", "device_profile", "--serial", "S", "--issue")
	if r.code != exitProblem || !strings.Contains(r.stderr, "is not set (--issue needs the real one)") {
		t.Errorf("render --issue without the secret: exit code %d, stderr %q", r.code, r.stderr)
	}
}
