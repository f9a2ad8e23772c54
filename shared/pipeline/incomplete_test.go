package pipeline_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// dropSANs is a CA that issues for the request's key and subject but drops
// every SAN, as a CA template that allows none does.
type dropSANs struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newDropSANs(t *testing.T) *dropSANs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drop-SANs CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &dropSANs{cert: cert, key: key}
}

func (d *dropSANs) Issue(_ context.Context, req ca.Request) (*ca.Issued, error) {
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, d.cert, csr.PublicKey, d.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	return &ca.Issued{Leaf: leaf}, err
}

func (d *dropSANs) Roots(context.Context) ([]*x509.Certificate, error) {
	return []*x509.Certificate{d.cert}, nil
}

// A certificate without what the request asked for (here: the user's email
// and UPN SANs) is uploaded with a WARNING naming what is missing, or, for a
// connection with refuseIncomplete, refused with a message that says so.
func TestIncompleteCertificate(t *testing.T) {
	t.Parallel()
	for _, refuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "warned", true: "refused"}[refuse], func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cpemulator.Options{})
			h.p.CAs[cpemulator.DefaultCARef] = newDropSANs(t)
			h.p.RefuseIncomplete = map[string]bool{cpemulator.DefaultCARef: refuse}
			logs := &syncBuffer{}
			h.p.Log = slog.New(slog.NewJSONHandler(logs, nil))
			name, note := h.add(cpemulator.ClientSpec{Kind: cpemulator.User, Key: cpemulator.ECP256})
			if err := h.claim(note, 1); err != nil {
				t.Fatal(err)
			}
			h.drain()
			var warned string
			for _, e := range logs.entries(t) {
				if e["msg"] == pipeline.MsgIncompleteCertificate && e["level"] == "WARN" {
					warned = toString(e["missing"])
				}
			}
			if !strings.Contains(warned, "SAN email:") || !strings.Contains(warned, "otherName:UPN") {
				t.Errorf("WARNING names %q, want the email and UPN SANs", warned)
			}
			if !refuse {
				if st := h.record(name).State; st != progress.StateUploaded {
					t.Errorf("state %s, want UPLOADED", st)
				}
				return
			}
			h.wantFailed(name, "without SAN email:")
		})
	}
}

func toString(v any) string {
	switch x := v.(type) {
	case []any:
		var s []string
		for _, e := range x {
			s = append(s, toString(e))
		}
		return strings.Join(s, ",")
	case string:
		return x
	}
	return ""
}
