package est

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"go.mozilla.org/pkcs7"
)

// startTLS serves h over TLS and returns its URL and a caFile trusting it.
func startTLS(t testing.TB, h http.Handler) (string, string) {
	t.Helper()
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	caFile := filepath.Join(t.TempDir(), "tls.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ts.URL, caFile
}

// garbageServer answers every EST request 200 with body as a base64
// PKCS#7, as a real server does, except that body is not one; with
// cacerts set, /cacerts answers it instead (a real bundle).
func garbageServer(t *testing.T, body, cacerts string) (string, string) {
	return startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pkcs7-mime")
		w.Header().Set("Content-Transfer-Encoding", "base64")
		if cacerts != "" && strings.HasSuffix(r.URL.Path, "/cacerts") {
			w.Write([]byte(cacerts))
			return
		}
		w.Write([]byte(body))
	}))
}

// TestGarbageAnswers: "MII=" (the bytes 30 82, a truncated DER length)
// from /cacerts panicked go.mozilla.org/pkcs7's BER parser (v0.0.0-2020).
// Every call returns a *ca.Error instead, from /cacerts and /simpleenroll.
func TestGarbageAnswers(t *testing.T) {
	csr, _ := newCSR(t, "device-1")
	root, _ := selfSigned(t, "garbage test CA", true)
	bundle, err := pkcs7.DegenerateCertificate(root.Raw)
	if err != nil {
		t.Fatal(err)
	}
	cacerts := base64.StdEncoding.EncodeToString(bundle)
	for _, body := range []string{"MII=", "MIA=", "MIAEAA==", "MIIBAA==", "MIIB", "not base64"} {
		for _, at := range []string{"cacerts", "simpleenroll"} {
			t.Run(body+" from "+at, func(t *testing.T) {
				good := ""
				if at == "simpleenroll" {
					good = cacerts
				}
				url, caFile := garbageServer(t, body, good)
				for name, call := range map[string]func(c *Connector) error{
					"Roots": func(c *Connector) error { _, err := c.Roots(context.Background()); return err },
					"Issue": func(c *Connector) error {
						_, err := c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "process-1"})
						return err
					},
				} {
					if at == "simpleenroll" && name == "Roots" {
						continue
					}
					c := connect(t, map[string]any{"url": url, "caFile": caFile}, nil)
					err := call(c)
					var ce *ca.Error
					if !errors.As(err, &ce) || ce.Kind == ca.Pending {
						t.Errorf("%s: error %v: want a transient or permanent *ca.Error", name, err)
					}
				}
			})
		}
	}
}

// panicking stands for a library that panics on a hostile answer.
type panicking struct{}

func (panicking) CACerts(context.Context) ([]*x509.Certificate, error) {
	var b []byte
	_ = b[2] // index out of range, as ber2der did
	return nil, nil
}

func (panicking) Enroll(context.Context, *x509.CertificateRequest) (*x509.Certificate, error) {
	panic("enroll")
}

// TestPanicIsTransient: a panic under Issue or Roots is recovered into a
// Transient *ca.Error, so that the pipeline's last attempt still reports.
func TestPanicIsTransient(t *testing.T) {
	csr, _ := newCSR(t, "device-1")
	root, _ := selfSigned(t, "test CA", true)
	ctx := context.Background()
	for name, call := range map[string]func(c *Connector) error{
		"Roots": func(c *Connector) error { _, err := c.Roots(ctx); return err },
		"Issue from cacerts": func(c *Connector) error {
			_, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"})
			return err
		},
		"Issue from enroll": func(c *Connector) error {
			c.cacerts, c.fetched = []*x509.Certificate{root}, time.Now()
			_, err := c.Issue(ctx, ca.Request{CSR: csr, RequestID: "process-1"})
			return err
		},
	} {
		c := connect(t, map[string]any{"url": "https://127.0.0.1:1"}, nil)
		c.api = panicking{}
		err := call(c)
		var ce *ca.Error
		if !errors.As(err, &ce) || ce.Kind != ca.Transient || ce.UserMessage != ca.MsgInternal {
			t.Errorf("%s: %v, want a transient *ca.Error from the recovered panic", name, err)
		}
	}
}

// TestHangingServer: a server that accepts the request and never answers
// is given up after the timeout setting, even under a context without a
// deadline, with a Transient error (globalsign's client has no timeout).
func TestHangingServer(t *testing.T) {
	release := make(chan struct{})
	url, caFile := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })
	csr, _ := newCSR(t, "device-1")
	root, _ := selfSigned(t, "test CA", true)
	for name, call := range map[string]func(c *Connector) error{
		"Roots": func(c *Connector) error { _, err := c.Roots(context.Background()); return err },
		"Issue": func(c *Connector) error {
			c.cacerts, c.fetched = []*x509.Certificate{root}, time.Now()
			_, err := c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "process-1"})
			return err
		},
	} {
		c := connect(t, map[string]any{"url": url, "caFile": caFile, "timeout": "300ms"}, nil)
		done := make(chan error, 1)
		go func() { done <- call(c) }()
		select {
		case err := <-done:
			if ca.KindOf(err) != ca.Transient || err == nil {
				t.Errorf("%s: %v, want a transient error", name, err)
			}
		case <-time.After(time.Minute): // a hang detector, not a timing assert
			t.Fatalf("%s did not return: the timeout setting is not applied", name)
		}
	}
}
