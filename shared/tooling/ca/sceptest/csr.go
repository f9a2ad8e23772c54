package sceptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"testing"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/chromeos-certprov/adapter/shared/csr"
)

// RSAKey and ECKey make the two client key types ChromeOS uses.
func RSAKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ECKey makes an EC P-256 client key.
func ECKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// NewCSR builds a CSR the way the pipeline does: shared/csr builds the
// CertificationRequestInfo (tmpl.ChallengePassword inside it), the client
// key signs it once, and csr.Assemble makes the DER CertificationRequest.
func NewCSR(t testing.TB, key crypto.Signer, tmpl csr.Template) []byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	cri, err := csr.BuildRequestInfo(spki, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(cri)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	alg := csr.AlgorithmRSAPKCS1v15SHA256
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		alg = csr.AlgorithmECDSASHA256
	}
	der, err := csr.Assemble(cri, sig, alg)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

var (
	oidSubjectAltName    = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidUserPrincipalName = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
	oidMSTemplateName    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2}
)

// UserPrincipalNames returns the Microsoft UPN otherName SANs of cert
// (crypto/x509 does not parse otherName).
func UserPrincipalNames(cert *x509.Certificate) []string {
	var upns []string
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		in := cryptobyte.String(ext.Value)
		var names cryptobyte.String
		if !in.ReadASN1(&names, cbasn1.SEQUENCE) {
			return nil
		}
		for !names.Empty() {
			var name cryptobyte.String
			var tag cbasn1.Tag
			if !names.ReadAnyASN1(&name, &tag) {
				return upns
			}
			if tag != cbasn1.Tag(0).ContextSpecific().Constructed() {
				continue
			}
			var id asn1.ObjectIdentifier
			var value, upn cryptobyte.String
			if name.ReadASN1ObjectIdentifier(&id) && id.Equal(oidUserPrincipalName) &&
				name.ReadASN1(&value, cbasn1.Tag(0).ContextSpecific().Constructed()) &&
				value.ReadASN1(&upn, cbasn1.UTF8String) {
				upns = append(upns, string(upn))
			}
		}
	}
	return upns
}

// MSTemplateName returns the Microsoft certificate template name extension
// (1.3.6.1.4.1.311.20.2, a BMPString) of cert, or "".
func MSTemplateName(cert *x509.Certificate) string {
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidMSTemplateName) {
			continue
		}
		var raw asn1.RawValue
		if _, err := asn1.Unmarshal(ext.Value, &raw); err != nil || raw.Tag != 30 || len(raw.Bytes)%2 != 0 {
			return ""
		}
		u := make([]uint16, len(raw.Bytes)/2)
		for i := range u {
			u[i] = uint16(raw.Bytes[2*i])<<8 | uint16(raw.Bytes[2*i+1])
		}
		return string(utf16.Decode(u))
	}
	return ""
}
