package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/esttest"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// The EST connector's device message for a 403 (shared/ca/est).
const (
	msgESTForbidden = "The certificate authority refused the request (forbidden). Ask your administrator to check the EST server's enrollment policy and the adapter's EST settings."
)

// estConfig is the EST example config pointed at srv, with its TLS client
// certificate.
func estConfig(t *testing.T, srv *esttest.Server) *simulation.Options {
	t.Helper()
	a := loadExample(t, "est.json",
		"https://est.corp.example:8443", srv.URL,
		"/etc/certprov/est-tls-ca.pem", srv.CAFile,
		"/etc/certprov/est-client.pem", srv.ClientCertFile)
	o := options(8, a, secrets(map[string]string{"EST_CLIENT_KEY": srv.ClientKeyPEM}))
	return &o
}

// estChain is what estserver's leaves chain to: /cacerts answers the
// issuing CA, then the root.
func estChain(srv *esttest.Server) chain {
	return chain{roots: []*x509.Certificate{srv.Root}, intermediates: srv.CACerts[:1]}
}

func TestESTServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("enrolls once under faults", func(t *testing.T) {
		srv := esttest.Start(t)
		// EST has no idempotency key: a crash between the answer and the
		// record would enroll again (TestCrashAfterCAAnswered).
		o := withFaults(*estConfig(t, srv), crashAfterCA)
		rep, procs := run(t, ctx, o)
		checkUploaded(t, rep, procs, estChain(srv))
	})

	t.Run("enrollment forbidden", func(t *testing.T) {
		// Under the label "triggererrors" estserver answers 403 to a CSR
		// named "Trigger Error Forbidden" (a CA policy refusal).
		srv := esttest.Start(t)
		px := startESTProxy(t, srv, 0)
		o := options(3, forbiddenConfig(t, px), nil)
		l := newLogs(nil)
		o.Log = l.Logger()
		rep, procs := run(t, ctx, o)
		checkFailed(t, rep, procs, msgESTForbidden, 1)
		checkReasons(t, l, "process failing", o.Clients, "simpleenroll: HTTP 403")
	})

	t.Run("outage ends", func(t *testing.T) {
		srv := esttest.Start(t)
		o := estConfig(t, srv)
		o.Clients = 6
		bin, err := esttest.Binary()
		if err != nil {
			t.Fatal(err)
		}
		out := newOutage(o.Clients, startAgain(t, "estserver", hostPort(t, srv.URL), bin, "-config", filepath.Join(srv.Dir, "est.json")))
		o.Log = newLogs(out.observe).Logger()
		srv.Stop()
		rep, procs := run(t, ctx, *o)
		out.check(t)
		checkUploaded(t, rep, procs, estChain(srv))
	})
}

// TestESTDeferred: the CA answers 202 Accepted with Retry-After twice per
// request (it holds them for approval), then issues. The pipeline asks
// again with the same CSR through the issue queue: one signData per process.
func TestESTDeferred(t *testing.T) {
	t.Parallel()
	srv := esttest.Start(t)
	px := startESTProxy(t, srv, 2)
	a := loadExample(t, "est.json", "https://est.corp.example:8443", px.URL, "/etc/certprov/est-tls-ca.pem", px.CAFile)
	setSetting(t, a, "clientCertFile", nil) // the proxy ends TLS
	setSetting(t, a, "clientKeyEnv", nil)
	o := options(6, a, nil)
	o.DuplicateRate = 0.3
	rep, procs := run(t, context.Background(), o)
	checkUploaded(t, rep, procs, estChain(srv))
	posts, deferred, issued := px.counts()
	if len(posts) != o.Clients || deferred != 2*o.Clients || issued != o.Clients {
		t.Errorf("proxy saw %d CSRs, deferred %d posts, estserver issued %d; want %d, %d, %d", len(posts), deferred, issued, o.Clients, 2*o.Clients, o.Clients)
	}
	for _, n := range posts {
		if n != 3 {
			t.Errorf("a CSR was posted %d times, want 3 (two 202s, then the certificate)", n)
		}
	}
}

// forbiddenConfig is the EST example through px under the triggererrors
// label, with profiles whose common name estserver refuses.
func forbiddenConfig(t *testing.T, px *estProxy) *config.Adapter {
	t.Helper()
	a := loadExample(t, "est.json", "https://est.corp.example:8443", px.URL, "/etc/certprov/est-tls-ca.pem", px.CAFile)
	setSetting(t, a, "clientCertFile", nil) // the proxy ends TLS
	setSetting(t, a, "clientKeyEnv", nil)
	setSetting(t, a, "label", esttest.TriggerErrorsLabel)
	for ref, p := range a.Profiles {
		p.Subject.CommonName = esttest.ForbiddenCN
		a.Profiles[ref] = p
	}
	return a
}

// estProxy is a TLS reverse proxy in front of the real estserver. It passes
// every request through, except that it answers the first Defer
// /simpleenroll posts of each CSR itself with 202 Accepted and Retry-After:
// 1, in estserver's own format (what a CA that holds requests for approval
// answers; estserver does so only for one common name, with Retry-After:
// 600); and it maps /cacerts under the triggererrors label to the plain
// path (estserver fails it there). It counts what it saw.
type estProxy struct {
	// URL is https://127.0.0.1:port; CAFile is its TLS certificate (the
	// connector's caFile).
	URL, CAFile string

	deferN   int
	mu       sync.Mutex
	posts    map[[32]byte]int
	deferred int
	issued   int
}

func startESTProxy(t *testing.T, srv *esttest.Server, deferN int) *estProxy {
	t.Helper()
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("estserver's TLS CA does not parse")
	}
	px := &estProxy{deferN: deferN, posts: map[[32]byte]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path = strings.Replace(r.Out.URL.Path, "/.well-known/est/"+esttest.TriggerErrorsLabel+"/cacerts", "/.well-known/est/cacerts", 1)
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		ModifyResponse: func(resp *http.Response) error {
			if strings.HasSuffix(resp.Request.URL.Path, "/simpleenroll") && resp.StatusCode == http.StatusOK {
				px.mu.Lock()
				px.issued++
				px.mu.Unlock()
			}
			return nil
		},
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/simpleenroll") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			sum := sha256.Sum256(body)
			px.mu.Lock()
			px.posts[sum]++
			hold := px.posts[sum] <= px.deferN
			if hold {
				px.deferred++
			}
			px.mu.Unlock()
			if hold {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusAccepted)
				io.WriteString(w, "202 request held for approval\n")
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	px.URL = ts.URL
	px.CAFile = filepath.Join(t.TempDir(), "proxy-tls.pem")
	if err := os.WriteFile(px.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return px
}

// counts returns the posts per CSR, the 202s the proxy answered and the
// certificates estserver issued.
func (px *estProxy) counts() (posts map[[32]byte]int, deferred, issued int) {
	px.mu.Lock()
	defer px.mu.Unlock()
	posts = map[[32]byte]int{}
	for k, v := range px.posts {
		posts[k] = v
	}
	return posts, px.deferred, px.issued
}
