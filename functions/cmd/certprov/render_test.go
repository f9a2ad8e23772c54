package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
)

// keyFile writes k as a PKCS#8 PEM file.
func keyFile(t *testing.T, k crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
}

// pemBlock decodes the one PEM block of s, of type typ.
func pemBlock(t *testing.T, s, typ string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != typ {
		t.Fatalf("no %s PEM block in %q", typ, s)
	}
	return b.Bytes
}

func TestRender(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecFile, rsaFile := keyFile(t, ecKey), keyFile(t, rsaKey)
	devGen := writeFile(t, "dev.json", devConfig)
	twoCAs := writeFile(t, "two.json", `{"allowedCustomers": ["C1"], "caConnections": {"a": {"type": "dev"}, "b": {"type": "dev"}}, "profiles": {"p": {"subject": {"commonName": "x"}}}}`)
	scepProfile := writeFile(t, "scep-profile.json", `{"subjectCommonName": "${USER_EMAIL}", "organization": "Example", "keyUsages": ["KEY_USAGE_SIGNING"],
		"subjectAltNames": [{"type": "RFC822_NAME", "value": "${USER_EMAIL}"}], "certificateTemplateName": "WiFiUser"}`)
	const dev = testdata + "dev.json"
	const scep = testdata + "scep-scepserver.json"
	tests := []struct {
		name string
		args []string
		vars map[string]string
		key  crypto.Signer // the key the CSR must hold (nil: ephemeral)
		code int
		want renderReport // compared without the PEMs, which the test checks apart
		text []string     // lines the text output holds
		// issued: a certificate for the key is expected.
		issued bool
	}{
		{
			name: "device profile, EC key", args: []string{"--config", dev, "--profile", "device_profile", "--device-id", "0a1b2c", "--serial", "5CD1234XYZ", "--key", ecFile},
			key: ecKey, code: exitOK,
			want: renderReport{ProcessName: "customers/C0local/certificateProvisioningProcesses/certprov-render", CAConnection: "default_ca_config", CAType: "dev", Profile: "device_profile",
				KeyType: "EC-P256", KeySource: "file", SignatureAlgorithm: "SIGNATURE_ALGORITHM_ECDSA_SHA256",
				Request: &request{Subject: "CN=5CD1234XYZ,O=Example Corp", SANs: []string{"URI:urn:chromeos:device:0a1b2c"},
					KeyUsages: []string{"digitalSignature", "keyEncipherment"}, ExtKeyUsages: []string{"clientAuth"}},
				Validity: "720h0m0s (30 days)"},
			text: []string{"subject:             CN=5CD1234XYZ,O=Example Corp\n", "subject alt names:   URI:urn:chromeos:device:0a1b2c\n",
				"key usages:          digitalSignature, keyEncipherment\n", "-----BEGIN CERTIFICATION REQUEST INFO-----\n", "-----BEGIN CERTIFICATE REQUEST-----\n"},
		},
		{
			name: "user profile, RSA key", args: []string{"--config", dev, "--profile", "user_profile", "--user", "alice@example.com", "--customer", "C0local", "--process-id", "p-1", "--key", rsaFile},
			key: rsaKey, code: exitOK,
			want: renderReport{ProcessName: "customers/C0local/certificateProvisioningProcesses/p-1", CAConnection: "default_ca_config", CAType: "dev", Profile: "user_profile",
				KeyType: "RSA-2048", KeySource: "file", SignatureAlgorithm: "SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256",
				Request: &request{Subject: "CN=alice@example.com,O=Example Corp", SANs: []string{"email:alice@example.com", "UPN:alice@example.com"},
					KeyUsages: []string{"digitalSignature", "keyEncipherment"}, ExtKeyUsages: []string{"clientAuth"}}, // the defaults
				Validity: "720h0m0s (30 days)"},
			text: []string{"subject alt names:   email:alice@example.com, UPN:alice@example.com\n", "extended key usages: clientAuth\n"},
		},
		{
			name: "ephemeral key", args: []string{"--config", dev, "--profile", "device_profile", "--device-id", "D", "--serial", "S"},
			code: exitOK,
			want: renderReport{ProcessName: "customers/C0local/certificateProvisioningProcesses/certprov-render", CAConnection: "default_ca_config", CAType: "dev", Profile: "device_profile",
				KeyType: "EC-P256", KeySource: "ephemeral", SignatureAlgorithm: "SIGNATURE_ALGORITHM_ECDSA_SHA256",
				Request: &request{Subject: "CN=S,O=Example Corp", SANs: []string{"URI:urn:chromeos:device:D"},
					KeyUsages: []string{"digitalSignature", "keyEncipherment"}, ExtKeyUsages: []string{"clientAuth"}},
				Validity: "720h0m0s (30 days)", Notes: []string{"the key is ephemeral, generated for this render: pass --key FILE to sign with yours"}},
			text: []string{"key:                 EC-P256 (ephemeral)\n", "note: the key is ephemeral"},
		},
		{
			name: "a variable the identity lacks", args: []string{"--config", dev, "--profile", "device_profile", "--user", "alice@example.com", "--key", ecFile},
			code: exitProblem,
			want: renderReport{ProcessName: "customers/C0local/certificateProvisioningProcesses/certprov-render", CAConnection: "default_ca_config", CAType: "dev", Profile: "device_profile",
				KeySource: "file", Refused: &pipeline.RefusedError{
					Reason:  "profile device_profile: the certificate field subject.commonName (${DEVICE_SERIAL_NUMBER}) is empty for this device or user",
					Message: "The certificate could not be filled in: the certificate field subject.commonName (${DEVICE_SERIAL_NUMBER}) is empty for this device or user. Contact your administrator.",
				}},
			text: []string{"REFUSED by the claim: profile device_profile: the certificate field subject.commonName"},
		},
		{
			name: "a customer not allowed", args: []string{"--config", dev, "--profile", "user_profile", "--user", "alice@example.com", "--customer", "C0other", "--key", rsaFile},
			code: exitProblem,
			want: renderReport{ProcessName: "customers/C0other/certificateProvisioningProcesses/certprov-render", CAConnection: "default_ca_config", CAType: "dev", Profile: "user_profile",
				KeySource: "file", Refused: &pipeline.RefusedError{
					Reason:  "customer C0other is not in allowedCustomers: the claim acknowledges its notifications and ignores them",
					Message: "(none: the process is not claimed, so the device waits and is shown nothing)",
				}},
			text: []string{"REFUSED by the claim: customer C0other is not in allowedCustomers"},
		},
		{
			name: "unknown profile", args: []string{"--config", dev, "--profile", "nope", "--device-id", "D", "--serial", "S", "--key", ecFile},
			code: exitProblem,
			want: renderReport{ProcessName: "customers/C0local/certificateProvisioningProcesses/certprov-render", CAConnection: "default_ca_config", CAType: "dev", Profile: "nope",
				KeySource: "file", Refused: &pipeline.RefusedError{Reason: `unknown profile reference "nope"`,
					Message: `The certificate profile "nope" is not configured in the adapter. Ask your administrator to add it.`}},
			text: []string{"the device would be shown: The certificate profile \"nope\" is not configured"},
		},
		{
			name: "SCEP profile in the API's shape", args: []string{"--config", scep, "--scep-profile", scepProfile, "--user", "bob@example.com", "--key", ecFile},
			key: ecKey, code: exitOK,
			want: renderReport{ProcessName: "customers/C0local/certificateProvisioningProcesses/certprov-render", CAConnection: "default_ca_config", CAType: "scep", Profile: "scepProfile",
				KeyType: "EC-P256", KeySource: "file", SignatureAlgorithm: "SIGNATURE_ALGORITHM_ECDSA_SHA256", ChallengePassword: true,
				Request: &request{Subject: "CN=bob@example.com,O=Example", SANs: []string{"email:bob@example.com"},
					KeyUsages: []string{"digitalSignature"}, ExtKeyUsages: []string{"clientAuth"}, TemplateName: "WiFiUser"},
				Validity: "the CA's default", Notes: []string{"secret SCEP_CHALLENGE is not set in this environment: a placeholder stands for it"}},
			text: []string{"template extension:  WiFiUser\n", "challenge password:  present (not shown)\n"},
		},
		{
			name: "issue through the development CA", args: []string{"--config", devGen, "--profile", "device_profile", "--device-id", "D", "--serial", "S", "--key", ecFile, "--issue"},
			key: ecKey, code: exitOK, issued: true,
			want: renderReport{ProcessName: "customers/C0local/certificateProvisioningProcesses/certprov-render", CAConnection: "dev_ca", CAType: "dev", Profile: "device_profile",
				KeyType: "EC-P256", KeySource: "file", SignatureAlgorithm: "SIGNATURE_ALGORITHM_ECDSA_SHA256",
				Request: &request{Subject: "CN=S,O=Example Corp", SANs: []string{"URI:urn:chromeos:device:D"},
					KeyUsages: []string{"digitalSignature", "keyEncipherment"}, ExtKeyUsages: []string{"clientAuth"}},
				Validity: "720h0m0s (30 days)"},
			text: []string{"issued certificate: serial ", "  subject CN=S,O=Example Corp\n  issuer  CN=certprov development CA\n", "-----BEGIN CERTIFICATE-----\n"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"render"}, tc.args...)
			r := runCLI(t, tc.vars, args...)
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, line := range tc.text {
				if !strings.Contains(r.stdout, line) {
					t.Errorf("text output lacks %q:\n%s", line, r.stdout)
				}
			}
			j := runCLI(t, tc.vars, append(args, "--json")...)
			if j.code != tc.code {
				t.Errorf("--json: exit code %d, want %d\n%s", j.code, tc.code, j.stderr)
			}
			var got renderReport
			decodeJSON(t, j, &got)
			ignore := cmpopts.IgnoreFields(renderReport{}, "RequestInfoPEM", "CSRPEM", "Certificate")
			if diff := cmp.Diff(tc.want, got, ignore); diff != "" {
				t.Errorf("--json output (-want +got):\n%s", diff)
			}
			if tc.want.Refused != nil {
				return
			}
			// The CSR holds the key, verifies, and signs exactly the
			// CertificationRequestInfo shown as what signData sends.
			req, err := x509.ParseCertificateRequest(pemBlock(t, got.CSRPEM, "CERTIFICATE REQUEST"))
			if err != nil {
				t.Fatal(err)
			}
			if err := req.CheckSignature(); err != nil {
				t.Errorf("the CSR's signature: %v", err)
			}
			if !bytes.Equal(req.RawTBSCertificateRequest, pemBlock(t, got.RequestInfoPEM, "CERTIFICATION REQUEST INFO")) {
				t.Error("the CSR does not sign the CertificationRequestInfo shown")
			}
			if tc.key != nil {
				if pub, ok := tc.key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(req.PublicKey) {
					t.Error("the CSR does not hold the --key's public key")
				}
			}
			if !tc.issued {
				if got.Certificate != nil {
					t.Errorf("a certificate without --issue: %+v", got.Certificate)
				}
				return
			}
			if got.Certificate == nil {
				t.Fatal("no certificate with --issue")
			}
			cert, err := x509.ParseCertificate(pemBlock(t, got.Certificate.PEM, "CERTIFICATE"))
			if err != nil {
				t.Fatal(err)
			}
			if pub := tc.key.Public().(interface{ Equal(crypto.PublicKey) bool }); !pub.Equal(cert.PublicKey) {
				t.Error("the certificate does not hold the --key's public key")
			}
			if diff := cmp.Diff(got.Request.Subject, cert.Subject.String()); diff != "" {
				t.Errorf("the certificate's subject (-requested +issued):\n%s", diff)
			}
		})
	}

	usage := []struct {
		name, stderr string
		args         []string
	}{
		{"no profile", "give one of --profile REF and --scep-profile FILE", []string{"--config", dev, "--device-id", "D", "--serial", "S"}},
		{"no identity", "give the identity", []string{"--config", dev, "--profile", "device_profile"}},
		{"no config", "give one of --config FILE and --tfvars FILE", []string{"--profile", "device_profile", "--serial", "S"}},
		{"bad key type", `--key-type "dsa": want ec or rsa`, []string{"--config", dev, "--profile", "device_profile", "--serial", "S", "--key-type", "dsa"}},
		{"two CA connections", "the config has 2 CA connections: choose one with --ca (a, b)", []string{"--config", twoCAs, "--profile", "p", "--serial", "S"}},
	}
	for _, tc := range usage {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, append([]string{"render"}, tc.args...)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit code %d (want %d), stderr %q (want it to hold %q)", r.code, exitUsage, r.stderr, tc.stderr)
			}
		})
	}
}

// TestRenderIssueUnreachable: a CA that cannot be reached is exit code 3.
func TestRenderIssueUnreachable(t *testing.T) {
	cfg := writeFile(t, "scep.json", `{"allowedCustomers": ["C1"], "caConnections": {"s": {"type": "scep", "settings": {"url": "http://127.0.0.1:1/scep", "challenge": {"type": "none"}}}},
		"profiles": {"p": {"subject": {"commonName": "${DEVICE_SERIAL_NUMBER}"}}}}`)
	r := runCLI(t, nil, "render", "--config", cfg, "--profile", "p", "--serial", "S", "--issue")
	if r.code != exitUnreachable {
		t.Errorf("exit code %d, want %d\n%s%s", r.code, exitUnreachable, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "note: the CA did not issue: ") {
		t.Errorf("no note of the CA's failure:\n%s", r.stdout)
	}
}
