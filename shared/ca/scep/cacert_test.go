package scep

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/smallstep/scep"
)

type testCert struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
}

func makeCert(t *testing.T, cn string, isCA bool, usage x509.KeyUsage, parent *testCert) *testCert {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              usage,
		BasicConstraintsValid: isCA,
		IsCA:                  isCA,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert, key}
}

func names(certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, c.Subject.CommonName)
	}
	return out
}

func TestSelectCerts(t *testing.T) {
	const caUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	root := makeCert(t, "root", true, caUsage, nil)
	issuing := makeCert(t, "issuing", true, caUsage, root)
	raSign := makeCert(t, "ra-sign", false, x509.KeyUsageDigitalSignature, issuing)
	raEnc := makeCert(t, "ra-enc", false, x509.KeyUsageKeyEncipherment, issuing)
	other := makeCert(t, "other-root", true, caUsage|x509.KeyUsageKeyEncipherment, nil)
	pin := func(c *testCert) []byte { s := sha256.Sum256(c.cert.Raw); return s[:] }

	type selection struct {
		All, Roots, Intermediates []string
		Recipient, Signer, Issuer string
	}
	for _, tc := range []struct {
		name  string
		certs []*testCert
		pin   []byte
		want  selection
	}{
		{"single CA (scepserver)", []*testCert{root}, nil,
			selection{[]string{"root"}, []string{"root"}, nil, "root", "root", "root"}},
		{"intermediate only (step-ca)", []*testCert{issuing}, nil,
			selection{[]string{"issuing"}, []string{"issuing"}, []string{"issuing"}, "issuing", "issuing", "issuing"}},
		{"NDES: RA certificates first", []*testCert{raSign, raEnc, issuing, root}, nil,
			selection{[]string{"ra-sign", "ra-enc", "issuing", "root"}, []string{"issuing", "root"}, []string{"issuing"}, "ra-enc", "ra-sign", "issuing"}},
		{"NDES: CA first", []*testCert{root, issuing, raEnc, raSign}, nil,
			selection{[]string{"root", "issuing", "ra-enc", "ra-sign"}, []string{"root", "issuing"}, []string{"issuing"}, "ra-enc", "ra-sign", "issuing"}},
		{"NDES pinned on the root drops a stranger", []*testCert{other, raSign, raEnc, issuing, root}, pin(root),
			selection{[]string{"ra-sign", "ra-enc", "issuing", "root"}, []string{"root"}, []string{"issuing"}, "ra-enc", "ra-sign", "issuing"}},
		{"pinned on the issuing CA", []*testCert{raSign, raEnc, issuing, root}, pin(issuing),
			selection{[]string{"ra-sign", "ra-enc", "issuing"}, []string{"issuing"}, []string{"issuing"}, "ra-enc", "ra-sign", "issuing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var certs []*x509.Certificate
			for _, c := range tc.certs {
				certs = append(certs, c.cert)
			}
			info, err := selectCerts(certs, tc.pin)
			if err != nil {
				t.Fatal(err)
			}
			issuer := ""
			for _, c := range certs {
				if string(c.RawSubject) == string(info.issuer) {
					issuer = c.Subject.CommonName
				}
			}
			got := selection{names(info.all), names(info.roots), names(info.intermediates), info.recipient.Subject.CommonName, info.signer.Subject.CommonName, issuer}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	t.Run("pin matches nothing", func(t *testing.T) {
		_, err := selectCerts([]*x509.Certificate{raEnc.cert, issuing.cert}, pin(other))
		if _, ok := err.(*pinError); !ok || !strings.Contains(err.Error(), Fingerprint(issuing.cert)) {
			t.Errorf("err = %v, want a pinError listing what GetCACert returned", err)
		}
	})
}

func TestParseCACert(t *testing.T) {
	a := makeCert(t, "a", true, x509.KeyUsageCertSign, nil)
	b := makeCert(t, "b", false, x509.KeyUsageKeyEncipherment, a)
	deg, err := scep.DegenerateCertificates([]*x509.Certificate{a.cert, b.cert})
	if err != nil {
		t.Fatal(err)
	}
	pemBoth := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.cert.Raw})...)
	for _, tc := range []struct {
		name string
		body []byte
		want []string
	}{
		{"raw DER", a.cert.Raw, []string{"a"}},
		{"degenerate PKCS#7", deg, []string{"a", "b"}},
		{"PEM", pemBoth, []string{"a", "b"}},
		{"HTML", []byte("<html>login</html>"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := parseCACert(tc.body)
			if tc.want == nil {
				if err == nil {
					t.Errorf("parsed %v, want an error", names(certs))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, names(certs)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailInfoNameNeverPanics(t *testing.T) {
	for _, fi := range []scep.FailInfo{"", "5", "badRequest", scep.BadRequest} {
		if failInfoName(fi) == "" {
			t.Errorf("failInfoName(%q) is empty", string(fi))
		}
		if e := failureError(fi, ""); e.UserMessage == "" {
			t.Errorf("failureError(%q) has no user message", string(fi))
		}
	}
}
