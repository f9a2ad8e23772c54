package sceptest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

// Server is a running SCEP CA.
type Server struct {
	// Kind is "scepserver" or "step-ca".
	Kind string
	// URL is the SCEP endpoint to put in the connector's settings.
	URL string
	// Challenge is the static challenge password the CA requires.
	Challenge string
	// Root is the trust anchor issued certificates chain to; CA is the
	// certificate that signs them (the same for scepserver).
	Root, CA *x509.Certificate
	// Dir holds the server's files (depot, database, config).
	Dir string

	proc *testenv.Server
}

// ChallengeEnv is the environment variable name Settings uses for the
// challenge; Secrets resolves it.
const ChallengeEnv = "SCEP_CHALLENGE"

// Settings returns connector settings for this CA with a static challenge
// named ChallengeEnv. extra fields (e.g. "caFingerprint") are merged in.
func (s *Server) Settings(extra map[string]any) json.RawMessage {
	return settingsJSON(s.URL, map[string]any{"type": "static", "secretEnv": ChallengeEnv}, extra)
}

func settingsJSON(url string, challenge map[string]any, extra map[string]any) json.RawMessage {
	m := map[string]any{"url": url, "challenge": challenge}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// Secrets resolves ChallengeEnv to the server's challenge (the connector's
// secrets function).
func (s *Server) Secrets(name string) (string, error) {
	if name == ChallengeEnv {
		return s.Challenge, nil
	}
	return "", fmt.Errorf("no secret %s", name)
}

// Fingerprint is the SHA-256 (hex) of the root, for caFingerprint.
func (s *Server) Fingerprint() string {
	sum := sha256.Sum256(s.Root.Raw)
	return hex.EncodeToString(sum[:])
}

// Stop stops the server (its process group): the outage case.
func (s *Server) Stop() { s.proc.Stop() }

// SCEPServerOptions configure StartSCEPServer.
type SCEPServerOptions struct {
	// Challenge defaults to "scepserver-challenge".
	Challenge string
	// AllowRenew is passed as -allowrenew: "0" (the default here) lets the
	// same subject enroll again at any time; scepserver's own default, 14,
	// refuses a subject holding a certificate valid for more than 14 days
	// (FAILURE badRequest).
	AllowRenew string
}

// StartSCEPServer starts micromdm's scepserver on a fresh CA (RSA 2048) and
// stops it when t ends. GetCACert answers the CA certificate as raw DER.
func StartSCEPServer(t testing.TB, opts SCEPServerOptions) *Server {
	t.Helper()
	bin, err := SCEPServerBin()
	if err != nil {
		testenv.Unavailable(t, "scepserver "+SCEPServerVersion, err)
	}
	if opts.Challenge == "" {
		opts.Challenge = "scepserver-challenge"
	}
	if opts.AllowRenew == "" {
		opts.AllowRenew = "0"
	}
	dir := t.TempDir()
	depot := filepath.Join(dir, "depot")
	cmd := exec.Command(bin, "ca", "-init", "-depot", depot, "-keySize", "2048", "-common_name", "certprov test SCEP CA")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scepserver ca -init: %v: %s", err, out)
	}
	caPEM, err := os.ReadFile(filepath.Join(depot, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caCerts, err := ca.ParseChain(caPEM)
	if err != nil {
		t.Fatalf("scepserver CA certificate: %v", err)
	}
	caCert := caCerts[0]
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	proc, err := testenv.Start(context.Background(), "scepserver", addr, 30*time.Second, bin,
		"-depot", depot, "-http-addr", addr, "-challenge", opts.Challenge, "-allowrenew", opts.AllowRenew)
	if err != nil {
		testenv.Unavailable(t, "scepserver", err)
	}
	s := &Server{Kind: "scepserver", URL: "http://" + addr + "/scep", Challenge: opts.Challenge, Root: caCert, CA: caCert, Dir: dir, proc: proc}
	t.Cleanup(s.Stop)
	return s
}

// StepCAOptions configure StartStepCA.
type StepCAOptions struct {
	// Challenge defaults to "step-ca-challenge".
	Challenge string
	// Provisioner is the SCEP provisioner's name (the URL's last segment);
	// default "certprov".
	Provisioner string
	// Capabilities, when set, replace the provisioner's GetCACaps answer
	// (e.g. without "AES" to make clients use triple DES).
	Capabilities []string
	// IncludeRoot makes GetCACert return the root beside the intermediate.
	IncludeRoot bool
	// CopyExtensions gives the provisioner an X.509 template that copies
	// the CSR's extensions into the certificate, as an AD CS template that
	// takes the subject from the request does: the UPN otherName SAN and
	// the Microsoft template-name extension come through (step-ca's default
	// template keeps only DNS, email, IP and URI SANs).
	CopyExtensions bool
}

// copyExtensionsTemplate is step-ca's default leaf template plus the CSR's
// extensions (which replace the ones the template would make).
const copyExtensionsTemplate = `{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},
	"extensions": {{ toJson .Insecure.CR.Extensions }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"]
}`

// StartStepCA starts step-ca with a generated root and RSA intermediate, a
// bbolt database and one SCEP provisioner (type SCEP, challenge, forceCN,
// encryptionAlgorithmIdentifier 2 = AES-256-CBC answers) served over plain
// HTTP on insecureAddress at /scep/<provisioner>, and stops it when t ends.
// GetCACert answers the intermediate alone (a degenerate PKCS#7 with the
// root too when IncludeRoot).
func StartStepCA(t testing.TB, opts StepCAOptions) *Server {
	t.Helper()
	bin, err := StepCABin()
	if err != nil {
		testenv.Unavailable(t, "step-ca "+StepCAVersion, err)
	}
	if opts.Challenge == "" {
		opts.Challenge = "step-ca-challenge"
	}
	if opts.Provisioner == "" {
		opts.Provisioner = "certprov"
	}
	dir := t.TempDir()
	root, rootKey := newCA(t, "certprov test step-ca root", nil, nil)
	inter, interKey := newCA(t, "certprov test step-ca intermediate", root, rootKey)
	writePEM(t, filepath.Join(dir, "root.crt"), "CERTIFICATE", root.Raw)
	writePEM(t, filepath.Join(dir, "intermediate.crt"), "CERTIFICATE", inter.Raw)
	writePEM(t, filepath.Join(dir, "intermediate.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(interKey))

	tlsPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	prov := map[string]any{
		"type":      "SCEP",
		"name":      opts.Provisioner,
		"challenge": opts.Challenge,
		"forceCN":   true,
		// 2 is AES-256-CBC in the pkcs7 package's numbering (0 DES-CBC,
		// 1 AES-128-CBC, 2 AES-256-CBC, 3 AES-128-GCM, 4 AES-256-GCM): the
		// cipher step-ca encrypts its answers with.
		"encryptionAlgorithmIdentifier": 2,
		"minimumPublicKeyLength":        2048,
		"includeRoot":                   opts.IncludeRoot,
	}
	if len(opts.Capabilities) > 0 {
		prov["capabilities"] = opts.Capabilities
	}
	if opts.CopyExtensions {
		prov["options"] = map[string]any{"x509": map[string]any{"template": copyExtensionsTemplate}}
	}
	cfg := map[string]any{
		"root":            filepath.Join(dir, "root.crt"),
		"crt":             filepath.Join(dir, "intermediate.crt"),
		"key":             filepath.Join(dir, "intermediate.key"),
		"address":         fmt.Sprintf("127.0.0.1:%d", tlsPort),
		"insecureAddress": addr,
		"dnsNames":        []string{"127.0.0.1", "localhost"},
		"logger":          map[string]any{"format": "text"},
		"db":              map[string]any{"type": "bbolt", "dataSource": filepath.Join(dir, "db")},
		"authority":       map[string]any{"provisioners": []any{prov}},
		"tls":             map[string]any{"minVersion": 1.2, "maxVersion": 1.3},
	}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "ca.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := testenv.Start(context.Background(), "step-ca", addr, 60*time.Second, bin, cfgPath)
	if err != nil {
		testenv.Unavailable(t, "step-ca", err)
	}
	s := &Server{Kind: "step-ca", URL: "http://" + addr + "/scep/" + opts.Provisioner, Challenge: opts.Challenge, Root: root, CA: inter, Dir: dir, proc: proc}
	t.Cleanup(s.Stop)
	return s
}

// newCA makes an RSA 2048 CA certificate, self-signed when parent is nil.
// Its key usage (certSign, cRLSign, digitalSignature) has no encipherment:
// a SCEP client must fall back to encrypting to the CA itself.
func newCA(t testing.TB, cn string, parent *x509.Certificate, parentKey *rsa.PrivateKey) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"certprov tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
