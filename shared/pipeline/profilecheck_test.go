package pipeline

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMissingFromCertificate(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ku, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0xa0}, BitLength: 3}) // digitalSignature, keyEncipherment
	eku, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 2}})
	uri, _ := url.Parse("urn:device:abc")
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "dev"},
		DNSNames:       []string{"dev.example.com"},
		EmailAddresses: []string{"u@example.com"},
		URIs:           []*url.URL{uri},
		ExtraExtensions: []pkix.Extension{
			{Id: oidKeyUsage, Critical: true, Value: ku},
			{Id: oidExtKeyUsage, Value: eku},
		},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(tmpl *x509.Certificate) *x509.Certificate {
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(1), time.Now(), time.Now().Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		leaf *x509.Certificate
		want []string
	}{
		{"everything issued", issue(&x509.Certificate{
			DNSNames: []string{"dev.example.com"}, EmailAddresses: []string{"u@example.com"}, URIs: []*url.URL{uri},
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}), nil},
		{"more issued than asked", issue(&x509.Certificate{
			DNSNames: []string{"dev.example.com", "other.example.com"}, EmailAddresses: []string{"u@example.com"}, URIs: []*url.URL{uri},
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		}), nil},
		{"a SAN, a key usage and the EKU dropped", issue(&x509.Certificate{
			DNSNames: []string{"dev.example.com"}, URIs: []*url.URL{uri}, KeyUsage: x509.KeyUsageDigitalSignature,
		}), []string{"SAN email:u@example.com", "key usage keyEncipherment", "extended key usage 1.3.6.1.5.5.7.3.2"}},
		{"no SAN at all", issue(&x509.Certificate{
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}), []string{"SAN DNS:dev.example.com", "SAN email:u@example.com", "SAN URI:urn:device:abc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := missingFromCertificate(csrDER, tc.leaf)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := missingFromCertificate([]byte("0\x82"), issue(&x509.Certificate{})); err == nil {
		t.Error("a malformed request compared without error")
	}
}
