package cpemulator

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cm "google.golang.org/api/chromemanagement/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/chromeos-certprov/adapter/shared/strictjson"
)

// t0 is the sample's process start time.
var t0 = time.Date(2025, 3, 7, 13, 38, 54, 930621000, time.UTC)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is an emulator behind a real HTTP server on 127.0.0.1, driven with
// the generated client.
type fixture struct {
	t     *testing.T
	emu   *Emulator
	clock *testClock
	srv   *httptest.Server
	svc   *cm.Service
	procs *cm.CustomersCertificateProvisioningProcessesService
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	clock := &testClock{t: t0}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	emu := New(opts)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	svc, err := cm.NewService(context.Background(),
		option.WithEndpoint(srv.URL+"/"), option.WithoutAuthentication(), option.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatalf("chromemanagement.NewService: %v", err)
	}
	return &fixture{t: t, emu: emu, clock: clock, srv: srv, svc: svc, procs: svc.Customers.CertificateProvisioningProcesses}
}

func (f *fixture) add(spec ClientSpec) string {
	f.t.Helper()
	if spec.Customer == "" {
		spec.Customer = "C0123abc"
	}
	name, err := f.emu.AddClient(context.Background(), spec)
	if err != nil {
		f.t.Fatalf("AddClient: %v", err)
	}
	return name
}

func (f *fixture) snap(name string) Snapshot {
	f.t.Helper()
	s, ok := f.emu.Process(name)
	if !ok {
		f.t.Fatalf("Process(%s): not found", name)
	}
	return s
}

// Calls on the generated client.

func (f *fixture) get(name string) (*cm.GoogleChromeManagementVersionsV1CertificateProvisioningProcess, error) {
	return f.procs.Get(name).Do()
}

func (f *fixture) claim(name, id string) error {
	_, err := f.procs.Claim(name, &cm.GoogleChromeManagementVersionsV1ClaimCertificateProvisioningProcessRequest{CallerInstanceId: id}).Do()
	return err
}

func (f *fixture) signData(name string, data []byte, alg string) (*cm.GoogleLongrunningOperation, error) {
	return f.procs.SignData(name, &cm.GoogleChromeManagementVersionsV1SignDataRequest{
		SignData: base64.StdEncoding.EncodeToString(data), SignatureAlgorithm: alg,
	}).Do()
}

func (f *fixture) op(name string) (*cm.GoogleLongrunningOperation, error) {
	return f.procs.Operations.Get(name).Do()
}

func (f *fixture) upload(name, pemText string) error {
	_, err := f.procs.UploadCertificate(name, &cm.GoogleChromeManagementVersionsV1UploadCertificateRequest{CertificatePem: pemText}).Do()
	return err
}

func (f *fixture) setFailure(name, msg string) error {
	_, err := f.procs.SetFailure(name, &cm.GoogleChromeManagementVersionsV1SetFailureRequest{ErrorMessage: msg}).Do()
	return err
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// algOf is the algorithm that matches a snapshot's key.
func algOf(s Snapshot) string {
	if _, ok := s.PublicKey.(*rsa.PublicKey); ok {
		return AlgorithmRSA
	}
	return AlgorithmECDSA
}

// claimAndSign claims the process as "adapter-1" and asks for a signature.
func (f *fixture) claimAndSign(name string, data []byte) *cm.GoogleLongrunningOperation {
	f.t.Helper()
	f.must(f.claim(name, "adapter-1"))
	op, err := f.signData(name, data, algOf(f.snap(name)))
	f.must(err)
	return op
}

// apiStatus extracts the HTTP code and the google.rpc status name of an error
// answer; it fails the test for a success or a transport error.
func apiStatus(t *testing.T, err error) (int, string, string) {
	t.Helper()
	if err == nil {
		t.Fatal("call succeeded, want an error")
	}
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		t.Fatalf("error %v is not a *googleapi.Error", err)
	}
	var body struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	if jerr := json.Unmarshal([]byte(ge.Body), &body); jerr != nil {
		t.Fatalf("error body %q: %v", ge.Body, jerr)
	}
	if body.Error.Code != ge.Code {
		t.Errorf("error body code %d, HTTP status %d", body.Error.Code, ge.Code)
	}
	return ge.Code, body.Error.Status, body.Error.Message
}

// signResponse decodes a done operation's SignDataResponse.
func signResponse(t *testing.T, op *cm.GoogleLongrunningOperation) *cm.GoogleChromeManagementVersionsV1CertificateProvisioningProcess {
	t.Helper()
	if !op.Done || op.Error != nil || len(op.Response) == 0 {
		t.Fatalf("operation %s: done=%v error=%+v response=%s, want a response", op.Name, op.Done, op.Error, op.Response)
	}
	var resp cm.GoogleChromeManagementVersionsV1SignDataResponse
	if err := json.Unmarshal(op.Response, &resp); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	if resp.CertificateProvisioningProcess == nil {
		t.Fatalf("response without certificateProvisioningProcess: %s", op.Response)
	}
	return resp.CertificateProvisioningProcess
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

// verify checks a signature as the adapter must: against the SPKI the API
// gave, over the signData bytes.
func verify(spki, data, sig []byte) error {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(data)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest[:], sig) {
			return errors.New("ecdsa: invalid signature")
		}
		return nil
	}
	return errors.New("unknown key type")
}

// testCA issues certificates for any public key.
var testCA = sync.OnceValues(func() (*x509.Certificate, crypto.Signer) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cpemulator test CA"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return cert, key
})

var serialN struct {
	sync.Mutex
	n int64
}

// certFor returns a PEM certificate for pub, with a fresh serial number.
func certFor(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	ca, caKey := testCA()
	serialN.Lock()
	serialN.n++
	sn := serialN.n + 100
	serialN.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn), Subject: pkix.Name{CommonName: "device"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func otherKey(t *testing.T) crypto.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// raw sends a request without the generated client.
func (f *fixture) raw(method, path, body string) (*http.Response, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(res.Body); err != nil {
		f.t.Fatal(err)
	}
	return res, buf.Bytes()
}

// strictDecode decodes JSON into v, failing on any field v does not have:
// it proves the emulator prints only names the generated client knows.
func strictDecode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := strictjson.Unmarshal(data, v); err != nil {
		t.Fatalf("strict decode into %T: %v\n%s", v, err, data)
	}
}
