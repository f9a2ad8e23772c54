package csr

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func TestParseKeyAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spki []byte
		want KeyType
	}{
		{"API sample key", b64(t, vectorSPKI), RSA2048},
		{"RSA-2048", key(t, RSA2048).spki, RSA2048},
		{"EC P-256", key(t, ECP256).spki, ECP256},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pub, kt, err := ParseKey(tc.spki)
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if kt != tc.want {
				t.Errorf("key type = %q, want %q", kt, tc.want)
			}
			again, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.spki, again); diff != "" {
				t.Errorf("returned key does not marshal to the input (-in +out):\n%s", diff)
			}
		})
	}
}

// rsaSPKI marshals an RSA public key with a modulus of exactly bits bits;
// the modulus need not be a product of primes to be refused.
func rsaSPKI(t testing.TB, bits, e int) []byte {
	t.Helper()
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, big.NewInt(0x10001))
	der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: e})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func marshalPub(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseKeyRefuses(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	goodRSA := key(t, RSA2048).spki
	goodEC := key(t, ECP256).spki
	ecPoint := goodEC[len(goodEC)-65:]
	p256OID := asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	named := func(curve asn1.ObjectIdentifier) []byte {
		var b cryptobyte.Builder
		b.AddASN1ObjectIdentifier(curve)
		return b.BytesOrPanic()
	}
	// The RSAPublicKey with two stray bytes after it, inside the BIT STRING:
	// crypto/x509 ignores them, OpenSSL and BoringSSL do not.
	rsaKey := cryptobyte.String(goodRSA)
	var info cryptobyte.String
	var bitString asn1.BitString
	if !rsaKey.ReadASN1(&info, cbasn1.SEQUENCE) || !info.SkipASN1(cbasn1.SEQUENCE) ||
		!info.ReadASN1BitString(&bitString) {
		t.Fatal("cannot take the RSA test key apart")
	}
	rsaPublicKey := bitString.Bytes
	strayAfterKey := append(append([]byte{}, rsaPublicKey...), 0x00, 0x00)
	nullParams := []byte{0x05, 0x00}

	tests := []struct {
		name    string
		spki    []byte
		wantKey string
		wantErr string
	}{
		{
			name:    "RSA-1024",
			spki:    rsaSPKI(t, 1024, 65537),
			wantKey: "RSA-1024",
			wantErr: "unsupported key RSA-1024: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "RSA-4096",
			spki:    rsaSPKI(t, 4096, 65537),
			wantKey: "RSA-4096",
			wantErr: "unsupported key RSA-4096: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "RSA one bit short",
			spki:    rsaSPKI(t, 2047, 65537),
			wantKey: "RSA-2047",
			wantErr: "unsupported key RSA-2047: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "RSA-2048 with exponent 1",
			spki:    rsaSPKI(t, 2048, 1),
			wantKey: "RSA-2048",
			wantErr: "unsupported key RSA-2048: invalid public exponent 1 (only RSA-2048 and EC P-256 keys are accepted)",
		},
		{
			name:    "RSA-2048 with bytes after the key",
			spki:    spkiDER(oidRSAEncryption, nullParams, strayAfterKey),
			wantKey: "RSA-2048",
			wantErr: "unsupported key RSA-2048: the SubjectPublicKeyInfo is not canonical DER (only RSA-2048 and EC P-256 keys are accepted)",
		},
		{
			name:    "RSA without NULL parameters",
			spki:    spkiDER(oidRSAEncryption, nil, rsaPublicKey),
			wantKey: "RSA",
			wantErr: "unsupported key RSA: x509: RSA key missing NULL parameters (only RSA-2048 and EC P-256 keys are accepted)",
		},
		{
			name:    "RSASSA-PSS",
			spki:    spkiDER(oidRSAPSS, nil, rsaPublicKey),
			wantKey: "RSASSA-PSS",
			wantErr: "unsupported key RSASSA-PSS: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "EC P-384",
			spki:    marshalPub(t, &p384.PublicKey),
			wantKey: "EC P-384",
			wantErr: "unsupported key EC P-384: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "EC P-521",
			spki:    marshalPub(t, &p521.PublicKey),
			wantKey: "EC P-521",
			wantErr: "unsupported key EC P-521: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "EC secp256k1",
			spki:    spkiDER(oidECPublicKey, named(asn1.ObjectIdentifier{1, 3, 132, 0, 10}), ecPoint),
			wantKey: "EC secp256k1",
			wantErr: "unsupported key EC secp256k1: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "EC on an unknown curve",
			spki:    spkiDER(oidECPublicKey, named(asn1.ObjectIdentifier{1, 2, 3, 4}), ecPoint),
			wantKey: "EC on curve 1.2.3.4",
			wantErr: "unsupported key EC on curve 1.2.3.4: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "EC with explicit parameters",
			spki:    spkiDER(oidECPublicKey, []byte{0x30, 0x03, 0x02, 0x01, 0x01}, ecPoint),
			wantKey: "EC with explicit curve parameters",
			wantErr: "unsupported key EC with explicit curve parameters: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "EC P-256 point not on the curve",
			spki:    spkiDER(oidECPublicKey, named(p256OID), append([]byte{4}, make([]byte, 64)...)),
			wantKey: "EC P-256",
			wantErr: "unsupported key EC P-256: P256 point not on curve (only RSA-2048 and EC P-256 keys are accepted)",
		},
		{
			name:    "EC P-256 compressed point",
			spki:    spkiDER(oidECPublicKey, named(p256OID), append([]byte{2}, ecPoint[1:33]...)),
			wantKey: "EC P-256",
			wantErr: "unsupported key EC P-256: ecdsa: invalid uncompressed public key (only RSA-2048 and EC P-256 keys are accepted)",
		},
		{
			name:    "Ed25519",
			spki:    marshalPub(t, edPub),
			wantKey: "Ed25519",
			wantErr: "unsupported key Ed25519: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "Ed448",
			spki:    spkiDER(oidEd448, nil, make([]byte, 57)),
			wantKey: "Ed448",
			wantErr: "unsupported key Ed448: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "X25519",
			spki:    marshalPub(t, x25519.PublicKey()),
			wantKey: "X25519",
			wantErr: "unsupported key X25519: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name: "DSA",
			spki: func() []byte {
				var params cryptobyte.Builder
				params.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1BigInt(new(big.Int).Lsh(big.NewInt(1), 2047)) // p
					b.AddASN1BigInt(new(big.Int).Lsh(big.NewInt(1), 255))  // q
					b.AddASN1BigInt(big.NewInt(2))                         // g
				})
				var y cryptobyte.Builder
				y.AddASN1BigInt(big.NewInt(12345))
				return spkiDER(oidDSA, params.BytesOrPanic(), y.BytesOrPanic())
			}(),
			wantKey: "DSA-2048",
			wantErr: "unsupported key DSA-2048: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "unknown algorithm",
			spki:    spkiDER(asn1.ObjectIdentifier{1, 2, 3, 4}, nil, []byte{1, 2, 3}),
			wantKey: "with algorithm 1.2.3.4",
			wantErr: "unsupported key with algorithm 1.2.3.4: only RSA-2048 and EC P-256 keys are accepted",
		},
		{
			name:    "PKCS#1 instead of SubjectPublicKeyInfo",
			spki:    x509.MarshalPKCS1PublicKey(key(t, RSA2048).signer.Public().(*rsa.PublicKey)),
			wantErr: "unsupported key: a PKCS#1 RSAPublicKey was given where a SubjectPublicKeyInfo is expected (only RSA-2048 and EC P-256 keys are accepted)",
		},
		{
			name:    "bytes after the SubjectPublicKeyInfo",
			spki:    append(append([]byte{}, goodEC...), 0),
			wantErr: "unsupported key: stray bytes (1) follow the SubjectPublicKeyInfo (only RSA-2048 and EC P-256 keys are accepted)",
		},
		{
			name:    "garbage",
			spki:    []byte("not a key at all"),
			wantErr: "unsupported key: the 16 bytes given are not a DER SubjectPublicKeyInfo (only RSA-2048 and EC P-256 keys are accepted)",
		},
		{
			name:    "empty",
			spki:    nil,
			wantErr: "unsupported key: the 0 bytes given are not a DER SubjectPublicKeyInfo (only RSA-2048 and EC P-256 keys are accepted)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pub, kt, err := ParseKey(tc.spki)
			if err == nil {
				t.Fatalf("ParseKey accepted it as %q (%T)", kt, pub)
			}
			if pub != nil || kt != "" {
				t.Errorf("ParseKey returned %T, %q with its error", pub, kt)
			}
			var uke *UnsupportedKeyError
			if !errors.As(err, &uke) {
				t.Fatalf("error %T is not an *UnsupportedKeyError: %v", err, err)
			}
			if diff := cmp.Diff(tc.wantKey, uke.Key); diff != "" {
				t.Errorf("Key (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantErr, err.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSignatureAlgorithm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kt   KeyType
		want string
	}{
		{RSA2048, "SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256"},
		{ECP256, "SIGNATURE_ALGORITHM_ECDSA_SHA256"},
		{"RSA-4096", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := SignatureAlgorithm(tc.kt); got != tc.want {
			t.Errorf("SignatureAlgorithm(%q) = %q, want %q", tc.kt, got, tc.want)
		}
	}
}
