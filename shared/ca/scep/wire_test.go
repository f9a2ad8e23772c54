package scep

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/csr"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
)

// exchange is one HTTP request the connector made, as seen on the wire.
type exchange struct {
	Method, Op string
	Status     int
	Cipher     string // PKIOperation: the envelope's content cipher
}

type recorder struct {
	mu  sync.Mutex
	got []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := exchange{Method: req.Method, Op: req.URL.Query().Get("operation")}
	if ex.Op == "PKIOperation" {
		var msg []byte
		if req.Body != nil {
			msg, _ = io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(msg))
		} else {
			msg, _ = base64.StdEncoding.DecodeString(req.URL.Query().Get("message"))
		}
		ex.Cipher = envelopeCipher(msg)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		ex.Status = resp.StatusCode
	}
	r.mu.Lock()
	r.got = append(r.got, ex)
	r.mu.Unlock()
	return resp, err
}

// envelopeCipher names the content cipher of a pkiMessage's pkcsPKIEnvelope.
func envelopeCipher(msg []byte) string {
	var signed struct {
		Type    asn1.ObjectIdentifier
		Content struct {
			Version int
			Digests asn1.RawValue
			Encap   struct {
				Type    asn1.ObjectIdentifier
				Content []byte `asn1:"explicit,tag:0"`
			}
		} `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(msg, &signed); err != nil {
		return "unparsed: " + err.Error()
	}
	var env struct {
		Type    asn1.ObjectIdentifier
		Content struct {
			Version    int
			Recipients asn1.RawValue
			ECI        struct {
				Type asn1.ObjectIdentifier
				Alg  pkix.AlgorithmIdentifier
			}
		} `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(signed.Content.Encap.Content, &env); err != nil {
		return "unparsed: " + err.Error()
	}
	for _, c := range []contentCipher{cipherAES128CBC, cipherDES3CBC} {
		if env.Content.ECI.Alg.Algorithm.Equal(c.oid) {
			return c.name
		}
	}
	return env.Content.ECI.Alg.Algorithm.String()
}

// TestWire checks, against the real servers, what goes over the wire: the
// CertPoll probe (answered HTTP 500 by both: neither implements it), then
// PKCSReq POSTed with AES, or, for a CA advertising neither
// POSTPKIOperation nor AES, sent by GET with triple DES.
func TestWire(t *testing.T) {
	for _, tc := range []struct {
		name   string
		start  func(t *testing.T) *sceptest.Server
		method string
		cipher string
	}{
		{"scepserver", func(t *testing.T) *sceptest.Server {
			return sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
		}, http.MethodPost, "AES-128-CBC"},
		{"step-ca", func(t *testing.T) *sceptest.Server { return sceptest.StartStepCA(t, sceptest.StepCAOptions{}) }, http.MethodPost, "AES-128-CBC"},
		{"step-ca legacy caps", func(t *testing.T) *sceptest.Server {
			return sceptest.StartStepCA(t, sceptest.StepCAOptions{Capabilities: []string{"SHA-1", "DES3"}})
		}, http.MethodGet, "DES-EDE3-CBC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.start(t)
			c, err := New(context.Background(), s.Settings(nil), s.Secrets)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			c.client.Transport = rec
			key := sceptest.RSAKey(t)
			der := sceptest.NewCSR(t, key, csr.Template{ChallengePassword: s.Challenge, DNSNames: []string{"wire.example.com"}})
			if _, err := c.Issue(context.Background(), ca.Request{CSR: der, RequestID: "wire"}); err != nil {
				t.Fatalf("Issue: %v", err)
			}
			want := []exchange{
				{http.MethodGet, "GetCACaps", 200, ""},
				{http.MethodGet, "GetCACert", 200, ""},
				{tc.method, "PKIOperation", 500, tc.cipher}, // CertPoll
				{tc.method, "PKIOperation", 200, tc.cipher}, // PKCSReq
			}
			if diff := cmp.Diff(want, rec.got); diff != "" {
				t.Errorf("exchanges (-want +got):\n%s", diff)
			}
		})
	}
}
