package scep

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/csr"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
)

// seedDir holds answers captured from the real SCEP servers (micromdm's
// scepserver, step-ca) and the NDES stand-in by TestCaptureSeeds, one
// directory each: getcacert.bin (GetCACert's answer), request.bin and
// certrep.bin (the PKCSReq sent and the CertRep it got), signer.pem (the
// adapter's signer key the CertRep is encrypted to), and for NDES
// ndesadmin.bin (the mscep_admin page).
const seedDir = "testdata/seeds"

// capture is a transport that keeps every answer.
type capture struct {
	mu   sync.Mutex
	got  map[string][]byte // by operation: the last 200 answer
	sent map[string][]byte // by operation: the last request message
}

func (c *capture) RoundTrip(req *http.Request) (*http.Response, error) {
	op := req.URL.Query().Get("operation")
	var msg []byte
	if req.Body != nil {
		msg, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(msg))
	} else if m := req.URL.Query().Get("message"); m != "" {
		msg, _ = base64.StdEncoding.DecodeString(m)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if op == "" {
		op = "admin"
	}
	if resp.StatusCode == http.StatusOK {
		c.mu.Lock()
		c.got[op], c.sent[op] = body, msg
		c.mu.Unlock()
	}
	return resp, nil
}

// TestCaptureSeeds enrolls once with each real server and records the
// seed corpus. It runs only with CERTPROV_CAPTURE_SEEDS=1; the files are
// checked in.
func TestCaptureSeeds(t *testing.T) {
	if os.Getenv("CERTPROV_CAPTURE_SEEDS") != "1" {
		t.Skip("set CERTPROV_CAPTURE_SEEDS=1 to capture the seed corpus from the SCEP servers")
	}
	type target struct {
		settings  func(extra map[string]any) []byte
		secrets   func(string) (string, error)
		challenge string
	}
	for name, start := range map[string]func(t *testing.T) target{
		"scepserver": func(t *testing.T) target {
			s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
			return target{func(e map[string]any) []byte { return s.Settings(e) }, s.Secrets, s.Challenge}
		},
		"step-ca": func(t *testing.T) target {
			s := sceptest.StartStepCA(t, sceptest.StepCAOptions{})
			return target{func(e map[string]any) []byte { return s.Settings(e) }, s.Secrets, s.Challenge}
		},
		"ndes": func(t *testing.T) target {
			n := sceptest.StartNDES(t, sceptest.ResponderOptions{})
			return target{func(e map[string]any) []byte { return n.Settings(e) }, n.Secrets, ""}
		},
	} {
		t.Run(name, func(t *testing.T) {
			tg := start(t)
			signer := sceptest.RSAKey(t).(*rsa.PrivateKey)
			der, _ := x509.MarshalPKCS8PrivateKey(signer)
			signerPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
			secrets := func(n string) (string, error) {
				if n == "FUZZ_SIGNER" {
					return string(signerPEM), nil
				}
				return tg.secrets(n)
			}
			c, err := New(context.Background(), tg.settings(map[string]any{"signerKeyEnv": "FUZZ_SIGNER"}), secrets)
			if err != nil {
				t.Fatal(err)
			}
			rec := &capture{got: map[string][]byte{}, sent: map[string][]byte{}}
			c.client.Transport = rec
			pw := tg.challenge
			if pw == "" {
				if pw, _, err = c.Challenge(context.Background(), "seed"); err != nil {
					t.Fatal(err)
				}
			}
			key := sceptest.RSAKey(t)
			req := sceptest.NewCSR(t, key, csr.Template{Subject: pkix.Name{CommonName: "fuzz-seed"}, ChallengePassword: pw, DNSNames: []string{"seed.example.com"}})
			if _, err := c.Issue(context.Background(), ca.Request{CSR: req, RequestID: "fuzz-seed"}); err != nil {
				t.Fatalf("Issue: %v", err)
			}
			dir := filepath.Join(seedDir, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{
				"getcacert.bin": rec.got["GetCACert"], "certrep.bin": rec.got["PKIOperation"],
				"request.bin": rec.sent["PKIOperation"], "signer.pem": signerPEM,
			}
			if page, ok := rec.got["admin"]; ok {
				files["ndesadmin.bin"] = page
			}
			for f, b := range files {
				if len(b) == 0 {
					t.Fatalf("%s: nothing captured", f)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

var seedServers = []string{"scepserver", "step-ca", "ndes"}

func readSeed(f *testing.F, server, name string) []byte {
	b, err := os.ReadFile(filepath.Join(seedDir, server, name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzGetCACert parses a GetCACert answer as the connector does and picks
// its certificates, with and without a pin of the first one. It asserts no
// panic, and that an answer accepted yields a recipient, a signer, roots
// and the issuer name a CertPoll needs.
func FuzzGetCACert(f *testing.F) {
	for _, s := range seedServers {
		f.Add(readSeed(f, s, "getcacert.bin"))
	}
	f.Add([]byte("0\x82"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		certs, err := parseCACert(body)
		if err != nil {
			return
		}
		if len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		for _, pin := range [][]byte{nil, hexPin(certs[0])} {
			info, err := selectCerts(certs, pin)
			if err != nil {
				t.Fatalf("pin %x: %v (the pinned certificate is among them)", pin, err)
			}
			if info.recipient == nil || info.signer == nil || len(info.roots) == 0 || len(info.cas) == 0 || info.issuer == nil {
				t.Fatalf("pin %x: incomplete CA info %+v", pin, info)
			}
			if pin != nil && !info.roots[0].Equal(certs[0]) {
				t.Fatal("the pinned certificate is not the root")
			}
		}
	})
}

func hexPin(c *x509.Certificate) []byte {
	sum := sha256.Sum256(c.Raw)
	return sum[:]
}

// certRepCase is one captured exchange: what parseCertRep needs to check
// and decrypt the CA's answer.
type certRepCase struct {
	info *caInfo
	out  *outgoing
	key  *rsa.PrivateKey
	tid  string
	seed []byte
}

func loadCertRepCase(f *testing.F, server string) certRepCase {
	certs, err := parseCACert(readSeed(f, server, "getcacert.bin"))
	if err != nil {
		f.Fatal(err)
	}
	info, err := selectCerts(certs, nil)
	if err != nil {
		f.Fatal(err)
	}
	key, err := parseSignerKey(readSeed(f, server, "signer.pem"))
	if err != nil {
		f.Fatal(err)
	}
	req, err := pkcs7.Parse(readSeed(f, server, "request.bin"))
	if err != nil || len(req.Certificates) == 0 {
		f.Fatalf("%s request: %v", server, err)
	}
	var nonce []byte
	if err := req.UnmarshalSignedAttribute(oidSenderNonce, &nonce); err != nil {
		f.Fatalf("%s request nonce: %v", server, err)
	}
	return certRepCase{info: info, out: &outgoing{nonce: nonce, signerCert: req.Certificates[0]}, key: key,
		tid: TransactionID("fuzz-seed"), seed: readSeed(f, server, "certrep.bin")}
}

// FuzzCertRep checks and decrypts a CertRep against the captured request
// it answered (one per server: the fuzzer's first byte picks it). It
// asserts no panic; that an answer accepted has a known status and, on
// SUCCESS, certificates; and that each captured CertRep, unchanged, is
// accepted as SUCCESS.
func FuzzCertRep(f *testing.F) {
	var cases []certRepCase
	for i, s := range seedServers {
		c := loadCertRepCase(f, s)
		cases = append(cases, c)
		f.Add(uint8(i), c.seed)
		f.Add(uint8(i), []byte("0\x82"))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		c := cases[int(which)%len(cases)]
		rep, err := parseCertRep(body, c.info, c.out, c.key, c.tid)
		if bytes.Equal(body, c.seed) && (err != nil || rep.status != scep.SUCCESS) {
			// The certificates may have expired since the capture: then
			// only a panic-free answer is asserted.
			if err == nil || !strings.Contains(err.Error(), "expired") && !strings.Contains(err.Error(), "not valid") {
				t.Fatalf("the captured CertRep, unchanged, is not a SUCCESS: %v", err)
			}
		}
		if err != nil {
			return
		}
		switch rep.status {
		case scep.SUCCESS:
			if len(rep.certs) == 0 {
				t.Fatal("SUCCESS without certificates")
			}
		case scep.PENDING, scep.FAILURE:
		default:
			t.Fatalf("accepted a CertRep with status %q", rep.status)
		}
	})
}

// ndesErrors are every error text parseNDESAdminPage may return: none
// quotes the page (it may hold a password).
var ndesErrors = regexp.MustCompile(`^ca (transient|permanent): NDES challenge: (the password cache is full; passwords expire or must be used first|the account may not enroll with SCEP \(NDES: insufficient permission\)|no enrollment challenge password in the admin page; check adminUrl: password not found)$|^ca transient: NDES challenge: the password cache is full`)

// FuzzNDESAdminPage decodes an mscep_admin page (bytes and Content-Type)
// and looks for the one-time password. It asserts no panic; that a
// password found is one token (no markup, no space) taken from the page;
// and that errors are the fixed texts, never quoting the page.
func FuzzNDESAdminPage(f *testing.F) {
	f.Add(readSeed(f, "ndes", "ndesadmin.bin"), "text/html")
	f.Add(sceptest.UTF16LE(`<P> The password cache is full. Use one of the existing passwords in the cache, or wait until one of them expires. </P>`), "text/html; charset=Unicode")
	f.Add(sceptest.UTF16LE(`<P> You do not have sufficient permission to enroll with SCEP. Please contact your system administrator. </P>`), "text/html")
	f.Add([]byte(`<P> Das Kennwort lautet: <B> 0123456789ABCDEF </B>`), "text/html; charset=utf-8")
	f.Add([]byte("\xfe\xff\x00<\x00B"), "")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		page := decodePage(body, contentType)
		pw, err := parseNDESAdminPage(page)
		if err != nil {
			if !ndesErrors.MatchString(err.Error()) {
				t.Fatalf("error %q is not one of the fixed texts", err)
			}
			var ce *ca.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ca.Error", err)
			}
			return
		}
		if pw == "" || strings.ContainsAny(pw, "<> \t\r\n") || !strings.Contains(page, pw) {
			t.Fatalf("password %q is not one token of the page", pw)
		}
	})
}
