package est

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/esttest"
	globalsign "github.com/globalsign/est"
	"go.mozilla.org/pkcs7"
)

// seedDir holds answers captured from the real estserver (esttest) by
// TestCaptureSeeds: the fuzz targets' seed corpus.
const seedDir = "testdata/seeds"

// TestCaptureSeeds records the estserver's answers to /cacerts,
// /simpleenroll (with the CSR sent) and /csrattrs as seed files. It runs
// only with CERTPROV_CAPTURE_SEEDS=1; the files are checked in.
func TestCaptureSeeds(t *testing.T) {
	if os.Getenv("CERTPROV_CAPTURE_SEEDS") != "1" {
		t.Skip("set CERTPROV_CAPTURE_SEEDS=1 to capture the seed corpus from estserver")
	}
	srv := esttest.Start(t)
	pemCA, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	csr, _ := newCSR(t, "fuzz-seed")
	get := func(method, path string, body []byte) []byte {
		req, err := http.NewRequest(method, srv.URL+"/.well-known/est/"+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/pkcs10")
			req.Header.Set("Content-Transfer-Encoding", "base64")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d: %s", path, resp.StatusCode, b)
		}
		return b
	}
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"cacerts.b64":      get(http.MethodGet, "cacerts", nil),
		"simpleenroll.b64": get(http.MethodPost, "simpleenroll", []byte(base64.StdEncoding.EncodeToString(csr))),
		"csrattrs.b64":     get(http.MethodGet, "csrattrs", nil),
		"csr.der":          csr,
	} {
		if err := os.WriteFile(filepath.Join(seedDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readSeed(f *testing.F, name string) []byte {
	b, err := os.ReadFile(filepath.Join(seedDir, name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// Operations FuzzResponses drives.
const (
	opCACerts = iota
	opSimpleEnroll
	opCSRAttrs
	numOps
)

// decoding stands for globalsign's client after the HTTP exchange: it
// decodes a 200 answer's body exactly as the library's readCertsResponse,
// readCertResponse and readCSRAttrsResponse do (base64, then
// go.mozilla.org/pkcs7 or CSRAttrs.Unmarshal). Fuzzing through the network
// made the fuzzer's coverage nondeterministic (connection goroutines) and
// stalled it; the HTTP path is covered by TestGarbageAnswers.
type decoding struct{ body []byte }

func (d *decoding) decode() ([]byte, error) {
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(d.body)))
	n, err := base64.StdEncoding.Decode(dec, d.body)
	if err != nil {
		return nil, fmt.Errorf("failed to base64-decode HTTP response body: %w", err)
	}
	return dec[:n], nil
}

func (d *decoding) CACerts(context.Context) ([]*x509.Certificate, error) {
	der, err := d.decode()
	if err != nil {
		return nil, err
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("failed to decode PKCS7: %w", err)
	}
	return p7.Certificates, nil
}

func (d *decoding) Enroll(ctx context.Context, _ *x509.CertificateRequest) (*x509.Certificate, error) {
	certs, err := d.CACerts(ctx)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%d certificates returned", len(certs))
	}
	return certs[0], nil
}

// FuzzResponses hands the fuzzer's body, as the EST server's 200 answer
// (base64), to the connector's Roots (/cacerts) and Issue (/simpleenroll),
// and to globalsign's CSR attributes decoder (/csrattrs). It asserts that
// nothing panics (a panic the connector recovered fails the target too),
// that every connector error is a *ca.Error, that an issued certificate
// holds the CSR's key, and that CSR attributes that decode encode again.
func FuzzResponses(f *testing.F) {
	csrDER := readSeed(f, "csr.der")
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		f.Fatal(err)
	}
	cacerts := readSeed(f, "cacerts.b64")
	f.Add(uint8(opCACerts), cacerts)
	f.Add(uint8(opSimpleEnroll), readSeed(f, "simpleenroll.b64"))
	f.Add(uint8(opCSRAttrs), readSeed(f, "csrattrs.b64"))
	f.Add(uint8(opCACerts), []byte("MII="))
	f.Add(uint8(opSimpleEnroll), []byte("MIAGCSqGSIb3DQEHAqCAMIACAQExADALBgkqhkiG9w0BBwGggDCCAQ=="))
	// RFC 7030 section 4.5.2's example.
	f.Add(uint8(opCSRAttrs), []byte("MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJBgcrBgEBAQEWBggqhkjOPQQDAw=="))

	// /simpleenroll comes after /cacerts: the seed's certificates.
	seedCerts, err := (&decoding{cacerts}).CACerts(context.Background())
	if err != nil || len(seedCerts) == 0 {
		f.Fatalf("the /cacerts seed: %v", err)
	}
	c, err := New(context.Background(), []byte(`{"url":"https://127.0.0.1:1"}`), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, op uint8, b []byte) {
		d := &decoding{b}
		c.api = d
		ctx := context.Background()
		var err error
		switch op % numOps {
		case opCACerts:
			c.cacerts = nil
			_, err = c.Roots(ctx)
		case opSimpleEnroll:
			c.cacerts, c.fetched = seedCerts, time.Now()
			var got *ca.Issued
			got, err = c.Issue(ctx, ca.Request{CSR: csrDER, RequestID: "fuzz"})
			if err == nil {
				if k, ok := got.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(csr.PublicKey) {
					t.Fatal("Issue returned a certificate for another key")
				}
			}
		case opCSRAttrs:
			der, err := d.decode()
			if err != nil {
				return
			}
			var attrs globalsign.CSRAttrs
			if attrs.Unmarshal(der) != nil {
				return
			}
			again, err := attrs.Marshal()
			if err != nil {
				t.Fatalf("CSR attributes that decode do not encode: %v", err)
			}
			var back globalsign.CSRAttrs
			if err := back.Unmarshal(again); err != nil {
				t.Fatalf("re-encoded CSR attributes do not decode: %v", err)
			}
			return
		}
		if err == nil {
			return
		}
		var ce *ca.Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *ca.Error", err)
		}
		if ce.UserMessage == ca.MsgInternal {
			t.Fatalf("a panic was recovered: %v", err)
		}
	})
}
