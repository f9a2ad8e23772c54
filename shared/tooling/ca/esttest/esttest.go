// Package esttest starts globalsign's estserver (github.com/globalsign/est
// cmd/estserver, the real EST server of the client library the est connector
// uses) for tests, on a free loopback port, with a generated configuration: a
// two-level EST CA (root and issuing CA), its own TLS server certificate for
// 127.0.0.1 from a separate TLS CA, and a client CA for TLS client
// authentication.
//
// The binary is built once per version and cached in
// os.UserCacheDir()/certprov/estserver-<version>: from the tools module at
// .ci/tools when it lists github.com/globalsign/est, else from a temporary
// copy of the module (fetched through the Go module proxy). CERTPROV_ESTSERVER
// names a prebuilt binary instead. Where it cannot be had, tests skip through
// testenv.Unavailable (a failure under CERTPROV_INTEGRATION=require).
//
// What estserver v1.0.6 does: /cacerts answers the issuing CA then the root;
// /simpleenroll signs any CSR (90 days, subject and SANs copied); it asks for
// no HTTP basic authentication on EST endpoints (only /healthcheck has a
// password), and verifies a TLS client certificate if one is given. Under the
// label "triggererrors" a CSR with common name "Trigger Error Deferred" is
// answered 202 with Retry-After: 600, "Trigger Error Forbidden" 403 and
// "Trigger Error Unknown" 500.
package esttest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

// Version is the estserver version the tests run.
const Version = "v1.0.6"

const (
	module  = "github.com/globalsign/est"
	mainPkg = module + "/cmd/estserver"
)

// Labels of the server's test CA.
const (
	// TriggerErrorsLabel is the additional path segment under which special
	// common names make the server fail.
	TriggerErrorsLabel = "triggererrors"
	// DeferredCN, under TriggerErrorsLabel, is answered 202 + Retry-After: 600.
	DeferredCN = "Trigger Error Deferred"
	// ForbiddenCN, under TriggerErrorsLabel, is answered 403.
	ForbiddenCN = "Trigger Error Forbidden"
	// UnknownErrorCN, under TriggerErrorsLabel, is answered 500.
	UnknownErrorCN = "Trigger Error Unknown"
)

// Server is a running estserver.
type Server struct {
	// URL is "https://127.0.0.1:<port>", the connector's "url" setting.
	URL string
	// CAFile is a PEM file holding the CA of the server's TLS certificate:
	// the connector's "caFile" setting.
	CAFile string
	// CACerts is what /cacerts answers: the issuing CA, then Root.
	CACerts []*x509.Certificate
	// Root is the EST CA's root certificate; issued leaves chain to it.
	Root *x509.Certificate
	// ClientCertFile is a PEM TLS client certificate the server accepts
	// ("clientCertFile"), and ClientKeyPEM its PKCS#8 key (the value of
	// the "clientKeyEnv" secret).
	ClientCertFile string
	ClientKeyPEM   string
	// Dir holds the generated configuration and files.
	Dir string

	proc *testenv.Server
	once sync.Once
}

// Start starts an estserver for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		testenv.Unavailable(t, "estserver "+Version, err)
	}
	dir := t.TempDir()
	s, cfg, err := generate(dir)
	if err != nil {
		t.Fatalf("esttest: %v", err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatalf("esttest: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg.TLS.ListenAddress = addr
	cfgPath := filepath.Join(dir, "est.json")
	if err := writeJSON(cfgPath, cfg); err != nil {
		t.Fatalf("esttest: %v", err)
	}
	s.proc, err = testenv.Start(context.Background(), "estserver", addr, 30*time.Second, bin, "-config", cfgPath)
	if err != nil {
		testenv.Unavailable(t, "estserver "+Version, err)
	}
	s.URL = "https://" + addr
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server (an outage, for tests); later calls do nothing.
func (s *Server) Stop() {
	s.once.Do(func() { s.proc.Stop() })
}

type config struct {
	MockCA struct {
		Certificates string `json:"certificates"`
		PrivateKey   string `json:"private_key"`
	} `json:"mock_ca"`
	TLS struct {
		ListenAddress string   `json:"listen_address"`
		Certificates  string   `json:"certificates"`
		PrivateKey    string   `json:"private_key"`
		ClientCAs     []string `json:"client_cas"`
	} `json:"tls"`
	HealthcheckPassword string `json:"healthcheck_password"`
	RateLimit           int    `json:"rate_limit"`
	Timeout             int    `json:"timeout"`
}

// generate makes the CAs, certificates and keys under dir.
func generate(dir string) (*Server, *config, error) {
	s := &Server{Dir: dir}
	cfg := &config{HealthcheckPassword: "healthcheck-secret", Timeout: 30}
	path := func(name string) string { return filepath.Join(dir, name) }

	// The EST CA: root and issuing CA; the issuing CA signs.
	root, rootKey, err := newCert("esttest EST Root CA", nil, nil, true)
	if err != nil {
		return nil, nil, err
	}
	issuing, issuingKey, err := newCert("esttest EST Issuing CA", root, rootKey, true)
	if err != nil {
		return nil, nil, err
	}
	s.Root, s.CACerts = root, []*x509.Certificate{issuing, root}
	cfg.MockCA.Certificates, cfg.MockCA.PrivateKey = path("est-ca.pem"), path("est-ca-key.pem")
	if err := writeCerts(cfg.MockCA.Certificates, issuing, root); err != nil {
		return nil, nil, err
	}
	if err := writeKey(cfg.MockCA.PrivateKey, issuingKey); err != nil {
		return nil, nil, err
	}

	// TLS: a CA of its own for the server certificate.
	tlsCA, tlsCAKey, err := newCert("esttest TLS CA", nil, nil, true)
	if err != nil {
		return nil, nil, err
	}
	server, serverKey, err := newCert("127.0.0.1", tlsCA, tlsCAKey, false, func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		c.DNSNames = []string{"localhost"}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	if err != nil {
		return nil, nil, err
	}
	s.CAFile = path("tls-ca.pem")
	cfg.TLS.Certificates, cfg.TLS.PrivateKey = path("tls-server.pem"), path("tls-server-key.pem")
	if err := writeCerts(s.CAFile, tlsCA); err != nil {
		return nil, nil, err
	}
	if err := writeCerts(cfg.TLS.Certificates, server, tlsCA); err != nil {
		return nil, nil, err
	}
	if err := writeKey(cfg.TLS.PrivateKey, serverKey); err != nil {
		return nil, nil, err
	}

	// TLS client authentication: a client CA the server trusts.
	clientCA, clientCAKey, err := newCert("esttest client CA", nil, nil, true)
	if err != nil {
		return nil, nil, err
	}
	client, clientKey, err := newCert("esttest adapter", clientCA, clientCAKey, false, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	if err != nil {
		return nil, nil, err
	}
	cfg.TLS.ClientCAs = []string{path("client-ca.pem")}
	s.ClientCertFile = path("client.pem")
	if err := writeCerts(cfg.TLS.ClientCAs[0], clientCA); err != nil {
		return nil, nil, err
	}
	if err := writeCerts(s.ClientCertFile, client); err != nil {
		return nil, nil, err
	}
	keyPEM, err := keyPEM(clientKey)
	if err != nil {
		return nil, nil, err
	}
	s.ClientKeyPEM = string(keyPEM)
	return s, cfg, nil
}

func newCert(cn string, parent *x509.Certificate, parentKey crypto.Signer, isCA bool, edit ...func(*x509.Certificate)) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("key for %s: %w", cn, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"esttest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.IsCA = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	for _, e := range edit {
		e(tmpl)
	}
	signer := crypto.Signer(key)
	if parent == nil {
		parent = tmpl
	} else {
		signer = parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate for %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func writeCerts(path string, certs ...*x509.Certificate) error {
	var b bytes.Buffer
	for _, c := range certs {
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return err
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

func keyPEM(k crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func writeKey(path string, k crypto.PrivateKey) error {
	b, err := keyPEM(k)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of an estserver Version binary: CERTPROV_ESTSERVER,
// else the cached build, else a new build (see the package doc).
func Binary() (string, error) {
	binOnce.Do(func() { binPath, binErr = binary() })
	return binPath, binErr
}

func binary() (string, error) {
	if p := os.Getenv("CERTPROV_ESTSERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CERTPROV_ESTSERVER: %w", err)
		}
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	dir := filepath.Join(cache, "certprov")
	bin := filepath.Join(dir, "estserver-"+Version)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	// Other test binaries may be building it too: one builds, the rest wait.
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("build lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
	defer os.Remove(tmp)
	if err := build(tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("cache estserver: %w", err)
	}
	return bin, nil
}

// build builds estserver into out: in the tools module if it has it, else in
// a copy of the module.
func build(out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build estserver: %w", err)
	}
	var toolsErr error
	if tools := toolsModule(); tools != "" {
		if toolsErr = goCmd(tools, goBin, "build", "-o", out, mainPkg); toolsErr == nil {
			return nil
		}
	}
	tmp, err := os.MkdirTemp("", "certprov-estserver-build-")
	if err != nil {
		return fmt.Errorf("build estserver: %w", err)
	}
	defer os.RemoveAll(tmp)
	var dl struct{ Dir, Error string }
	outJSON, err := goOutput(tmp, goBin, "mod", "download", "-json", module+"@"+Version)
	if err == nil {
		err = json.Unmarshal(outJSON, &dl)
	}
	if err == nil && dl.Error != "" {
		err = errors.New(dl.Error)
	}
	if err != nil {
		return errors.Join(toolsErr, fmt.Errorf("download %s@%s: %w", module, Version, err))
	}
	src := filepath.Join(tmp, "est")
	if err := copyTree(dl.Dir, src); err != nil {
		return fmt.Errorf("copy %s: %w", module, err)
	}
	if err := goCmd(src, goBin, "build", "-o", out, "./cmd/estserver"); err != nil {
		return errors.Join(toolsErr, err)
	}
	return nil
}

// toolsModule returns the repository's .ci/tools directory if its go.mod
// requires github.com/globalsign/est, else "".
func toolsModule() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/chromeos-certprov/adapter\n") {
			tools := filepath.Join(dir, ".ci", "tools")
			if b, err := os.ReadFile(filepath.Join(tools, "go.mod")); err == nil && strings.Contains(string(b), module+" ") {
				return tools
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func command(dir, goBin string, args ...string) *exec.Cmd {
	// Builds share two cores with everything else: run them at low priority.
	name, all := goBin, args
	if nice, err := exec.LookPath("nice"); err == nil {
		name, all = nice, append([]string{"-n", "10", goBin}, args...)
	}
	cmd := exec.Command(name, all...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	return cmd
}

func goCmd(dir, goBin string, args ...string) error {
	cmd := command(dir, goBin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s (in %s): %w: %s", strings.Join(args, " "), dir, err, out)
	}
	return nil
}

func goOutput(dir, goBin string, args ...string) ([]byte, error) {
	cmd := command(dir, goBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// copyTree copies the regular files under src to dst, writable.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
