// Package csr builds the PKCS#10 CertificationRequestInfo that a ChromeOS
// client is asked to sign (signData) and, once the signature is back, checks
// it and assembles the signed certificate signing request that goes to the CA.
//
// The client's SubjectPublicKeyInfo is embedded byte for byte, never
// re-marshalled, so the CSR carries exactly the key the client signed with.
package csr

import (
	"bytes"
	"crypto"
	"crypto/dsa" //nolint:staticcheck // only to name a refused key
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// KeyType names a client key the adapter accepts.
type KeyType string

// The key types a ChromeOS client generates, and the only ones accepted.
const (
	RSA2048 KeyType = "RSA-2048"
	ECP256  KeyType = "EC-P256"
)

// Signature algorithm names as the Certificate Provisioning API spells them
// in signatureAlgorithm.
const (
	AlgorithmRSAPKCS1v15SHA256 = "SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256"
	AlgorithmECDSASHA256       = "SIGNATURE_ALGORITHM_ECDSA_SHA256"
)

// SignatureAlgorithm returns the signatureAlgorithm to pass to signData for a
// key of type kt, or "" for a key type this package does not know.
func SignatureAlgorithm(kt KeyType) string {
	switch kt {
	case RSA2048:
		return AlgorithmRSAPKCS1v15SHA256
	case ECP256:
		return AlgorithmECDSASHA256
	}
	return ""
}

// UnsupportedKeyError reports a SubjectPublicKeyInfo that is not an RSA-2048
// or EC P-256 key, or that does not parse. Its message is meant to be read by
// a person (it can go to the device through setFailure).
type UnsupportedKeyError struct {
	// Key names the refused key as precisely as it could be told, for
	// example "RSA-4096", "EC P-384", "Ed25519"; empty when the bytes are not
	// a SubjectPublicKeyInfo at all.
	Key string
	// Err is why a key of an otherwise acceptable kind was refused (a
	// malformed encoding), or the parser's complaint; nil when the kind of
	// key alone is the reason.
	Err error
}

const acceptedKeys = "only RSA-2048 and EC P-256 keys are accepted"

func (e *UnsupportedKeyError) Error() string {
	switch {
	case e.Err == nil:
		return fmt.Sprintf("unsupported key %s: %s", e.Key, acceptedKeys)
	case e.Key == "":
		return fmt.Sprintf("unsupported key: %v (%s)", e.Err, acceptedKeys)
	default:
		return fmt.Sprintf("unsupported key %s: %v (%s)", e.Key, e.Err, acceptedKeys)
	}
}

func (e *UnsupportedKeyError) Unwrap() error { return e.Err }

var (
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAPSS        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidDSA           = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	oidX25519        = asn1.ObjectIdentifier{1, 3, 101, 110}
	oidX448          = asn1.ObjectIdentifier{1, 3, 101, 111}
	oidEd25519       = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidEd448         = asn1.ObjectIdentifier{1, 3, 101, 113}
)

// Named curves worth naming in an error message.
var curveNames = map[string]string{
	"1.3.132.0.33":          "P-224",
	"1.2.840.10045.3.1.7":   "P-256",
	"1.3.132.0.34":          "P-384",
	"1.3.132.0.35":          "P-521",
	"1.3.132.0.10":          "secp256k1",
	"1.2.840.10045.3.1.1":   "P-192",
	"1.3.36.3.3.2.8.1.1.7":  "brainpoolP256r1",
	"1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
	"1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
}

// ParseKey parses a DER SubjectPublicKeyInfo and accepts it only if it is an
// RSA key with a modulus of exactly 2048 bits or an EC key on P-256, encoded
// as canonical DER (the form ChromeOS clients produce). Any other input
// returns an *UnsupportedKeyError.
func ParseKey(spki []byte) (crypto.PublicKey, KeyType, error) {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, "", describeUnparsed(spki, err)
	}
	var kt KeyType
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits != 2048 {
			return nil, "", &UnsupportedKeyError{Key: fmt.Sprintf("RSA-%d", bits)}
		}
		// crypto/rsa refuses to verify with such exponents; say so now
		// rather than after the client has signed.
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, "", &UnsupportedKeyError{Key: "RSA-2048", Err: fmt.Errorf("invalid public exponent %d", pub.E)}
		}
		kt = RSA2048
	case *ecdsa.PublicKey:
		if name := pub.Curve.Params().Name; name != "P-256" {
			return nil, "", &UnsupportedKeyError{Key: "EC " + name}
		}
		kt = ECP256
	case ed25519.PublicKey:
		return nil, "", &UnsupportedKeyError{Key: "Ed25519"}
	case *ecdh.PublicKey:
		return nil, "", &UnsupportedKeyError{Key: "X25519"}
	case *dsa.PublicKey:
		return nil, "", &UnsupportedKeyError{Key: fmt.Sprintf("DSA-%d", pub.P.BitLen())}
	default:
		return nil, "", &UnsupportedKeyError{Key: fmt.Sprintf("of Go type %T", pub)}
	}
	// Go's parser ignores bytes after the RSAPublicKey inside the BIT STRING;
	// OpenSSL, BoringSSL and CAs do not. Only the canonical encoding is safe
	// to embed verbatim.
	canonical, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil || !bytes.Equal(canonical, spki) {
		return nil, "", &UnsupportedKeyError{Key: string(kt), Err: errors.New("the SubjectPublicKeyInfo is not canonical DER")}
	}
	return pub, kt, nil
}

// describeUnparsed names, from its AlgorithmIdentifier, a key that
// crypto/x509 could not parse.
func describeUnparsed(spki []byte, parseErr error) *UnsupportedKeyError {
	in := cryptobyte.String(spki)
	var info, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	switch {
	case !in.ReadASN1(&info, cbasn1.SEQUENCE):
		return &UnsupportedKeyError{Err: fmt.Errorf("the %d bytes given are not a DER SubjectPublicKeyInfo", len(spki))}
	case !in.Empty():
		return &UnsupportedKeyError{Err: fmt.Errorf("stray bytes (%d) follow the SubjectPublicKeyInfo", len(in))}
	case !info.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid):
		if _, err := x509.ParsePKCS1PublicKey(spki); err == nil {
			return &UnsupportedKeyError{Err: errors.New("a PKCS#1 RSAPublicKey was given where a SubjectPublicKeyInfo is expected")}
		}
		return &UnsupportedKeyError{Err: fmt.Errorf("the %d bytes given are not a DER SubjectPublicKeyInfo", len(spki))}
	}
	switch {
	case oid.Equal(oidRSAEncryption):
		return &UnsupportedKeyError{Key: "RSA", Err: parseErr}
	case oid.Equal(oidRSAPSS):
		return &UnsupportedKeyError{Key: "RSASSA-PSS"}
	case oid.Equal(oidDSA):
		return &UnsupportedKeyError{Key: "DSA", Err: parseErr}
	case oid.Equal(oidEd25519):
		return &UnsupportedKeyError{Key: "Ed25519", Err: parseErr}
	case oid.Equal(oidEd448):
		return &UnsupportedKeyError{Key: "Ed448"}
	case oid.Equal(oidX25519):
		return &UnsupportedKeyError{Key: "X25519", Err: parseErr}
	case oid.Equal(oidX448):
		return &UnsupportedKeyError{Key: "X448"}
	case oid.Equal(oidECPublicKey):
		var curve asn1.ObjectIdentifier
		if !alg.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) {
			return &UnsupportedKeyError{Key: "EC with explicit curve parameters"}
		}
		if !alg.ReadASN1ObjectIdentifier(&curve) {
			return &UnsupportedKeyError{Key: "EC", Err: parseErr}
		}
		name, known := curveNames[curve.String()]
		switch {
		case !known:
			return &UnsupportedKeyError{Key: "EC on curve " + curve.String()}
		case name == "P-256":
			// The right curve, but a bad point or encoding.
			return &UnsupportedKeyError{Key: "EC P-256", Err: parseErr}
		default:
			return &UnsupportedKeyError{Key: "EC " + name}
		}
	default:
		return &UnsupportedKeyError{Key: "with algorithm " + oid.String()}
	}
}
