package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Errors that Verify and Assemble wrap, for errors.Is.
var (
	// ErrAlgorithmMismatch: the signature algorithm is not the one for the key.
	ErrAlgorithmMismatch = errors.New("signature algorithm does not match the key")
	// ErrInvalidSignature: the signature is malformed or does not verify.
	ErrInvalidSignature = errors.New("invalid signature")
)

// keyTypeFor returns the key type a signatureAlgorithm value is for.
func keyTypeFor(algorithm string) (KeyType, error) {
	switch algorithm {
	case AlgorithmRSAPKCS1v15SHA256:
		return RSA2048, nil
	case AlgorithmECDSASHA256:
		return ECP256, nil
	}
	return "", fmt.Errorf("unknown signature algorithm %q (want %s or %s)", algorithm, AlgorithmRSAPKCS1v15SHA256, AlgorithmECDSASHA256)
}

// Verify checks that signature is the client's signature over signData with
// the key spki, made with algorithm (a signatureAlgorithm value):
// RSASSA-PKCS1-v1_5 with SHA-256, or ECDSA P-256 with SHA-256, ASN.1 DER.
// Failures wrap ErrAlgorithmMismatch or ErrInvalidSignature, or are an
// *UnsupportedKeyError.
func Verify(spki, signData, signature []byte, algorithm string) error {
	want, err := keyTypeFor(algorithm)
	if err != nil {
		return fmt.Errorf("csr: verify: %w", err)
	}
	pub, kt, err := ParseKey(spki)
	if err != nil {
		return fmt.Errorf("csr: verify: %w", err)
	}
	if kt != want {
		return fmt.Errorf("csr: verify: %w: %s was used with an %s key, which needs %s",
			ErrAlgorithmMismatch, algorithm, kt, SignatureAlgorithm(kt))
	}
	digest := sha256.Sum256(signData)
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if len(signature) != pub.Size() {
			return fmt.Errorf("csr: verify: %w: the RSA signature is %d bytes, an RSA-2048 signature is %d",
				ErrInvalidSignature, len(signature), pub.Size())
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], signature); err != nil {
			return fmt.Errorf("csr: verify: %w: the RSA PKCS#1 v1.5 SHA-256 signature does not match the key and the %d bytes signed",
				ErrInvalidSignature, len(signData))
		}
	case *ecdsa.PublicKey:
		if !isECDSASignature(signature) {
			hint := ""
			if len(signature) == 64 {
				hint = " (64 bytes: raw r||s?)"
			}
			return fmt.Errorf("csr: verify: %w: the ECDSA signature is not a DER SEQUENCE { r, s }%s", ErrInvalidSignature, hint)
		}
		if !ecdsa.VerifyASN1(pub, digest[:], signature) {
			return fmt.Errorf("csr: verify: %w: the ECDSA P-256 SHA-256 signature does not match the key and the %d bytes signed",
				ErrInvalidSignature, len(signData))
		}
	}
	return nil
}

// isECDSASignature reports whether sig is a DER SEQUENCE of two positive INTEGERs.
func isECDSASignature(sig []byte) bool {
	in := cryptobyte.String(sig)
	var seq cryptobyte.String
	var r, s []byte
	return in.ReadASN1(&seq, cbasn1.SEQUENCE) && in.Empty() &&
		seq.ReadASN1Integer(&r) && seq.ReadASN1Integer(&s) && seq.Empty()
}

// Assemble returns the DER CertificationRequest
// SEQUENCE { cri, AlgorithmIdentifier, BIT STRING signature } for the
// CertificationRequestInfo cri (from BuildRequestInfo) and the client's
// signature over it, made with algorithm (a signatureAlgorithm value). The
// result is parsed back with crypto/x509 and its signature checked before it
// is returned; failures wrap ErrAlgorithmMismatch or ErrInvalidSignature.
func Assemble(cri, signature []byte, algorithm string) ([]byte, error) {
	want, err := keyTypeFor(algorithm)
	if err != nil {
		return nil, fmt.Errorf("csr: assemble: %w", err)
	}
	in := cryptobyte.String(cri)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("csr: assemble: the request info is not one DER SEQUENCE")
	}
	algID := algorithmIdentifier(oidSHA256WithRSA)
	wantAlg := x509.SHA256WithRSA
	if want == ECP256 {
		algID = algorithmIdentifier(oidECDSAWithSHA256)
		wantAlg = x509.ECDSAWithSHA256
	}
	der := assemble(cri, algID, signature)

	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("csr: assemble: the CSR does not parse: %w", err)
	}
	if req.SignatureAlgorithm != wantAlg {
		return nil, fmt.Errorf("csr: assemble: the CSR reads back with signature algorithm %v, want %v", req.SignatureAlgorithm, wantAlg)
	}
	_, kt, err := ParseKey(req.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, fmt.Errorf("csr: assemble: %w", err)
	}
	if kt != want {
		return nil, fmt.Errorf("csr: assemble: %w: %s was used with an %s key, which needs %s",
			ErrAlgorithmMismatch, algorithm, kt, SignatureAlgorithm(kt))
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: assemble: %w: the CSR's signature does not verify: %w", ErrInvalidSignature, err)
	}
	return der, nil
}

// PEM encodes a DER CSR as one "CERTIFICATE REQUEST" PEM block.
func PEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// algorithmIdentifier returns the DER AlgorithmIdentifier for a signature
// algorithm: RSA ones carry NULL parameters (RFC 4055), ECDSA ones none
// (RFC 5758).
func algorithmIdentifier(oid asn1.ObjectIdentifier) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if oid.Equal(oidSHA256WithRSA) {
			b.AddASN1NULL()
		}
	})
	return b.BytesOrPanic()
}

// assemble writes SEQUENCE { cri, algID, BIT STRING sig }.
func assemble(cri, algID, sig []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(cri)
		b.AddBytes(algID)
		b.AddASN1BitString(sig)
	})
	return b.BytesOrPanic()
}
