package sceptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"testing"

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
