package csr

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func flip(b []byte, i int) []byte {
	out := append([]byte{}, b...)
	out[i] ^= 0x01
	return out
}

// TestVerifyAPIVector checks the guide's sample: the process key, signData
// "data to sign\n" and the client's signature.
func TestVerifyAPIVector(t *testing.T) {
	t.Parallel()
	spki, data, sig := b64(t, vectorSPKI), b64(t, vectorSignData), b64(t, vectorSignature)
	if string(data) != "data to sign\n" {
		t.Fatalf("signData decodes to %q", data)
	}
	tests := []struct {
		name      string
		spki      []byte
		data      []byte
		sig       []byte
		algorithm string
		wantIs    error
		wantErr   string
	}{
		{name: "as published", spki: spki, data: data, sig: sig, algorithm: AlgorithmRSAPKCS1v15SHA256},
		{
			name: "signature byte flipped", spki: spki, data: data, sig: flip(sig, 100), algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: verify: invalid signature: the RSA PKCS#1 v1.5 SHA-256 signature does not match the key and the 13 bytes signed",
		},
		{
			name: "signData byte flipped", spki: spki, data: flip(data, 0), sig: sig, algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: verify: invalid signature: the RSA PKCS#1 v1.5 SHA-256 signature does not match the key and the 13 bytes signed",
		},
		{
			name: "modulus byte flipped", spki: flip(spki, 100), data: data, sig: sig, algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: verify: invalid signature: the RSA PKCS#1 v1.5 SHA-256 signature does not match the key and the 13 bytes signed",
		},
		{
			name: "ECDSA named for an RSA key", spki: spki, data: data, sig: sig, algorithm: AlgorithmECDSASHA256,
			wantIs:  ErrAlgorithmMismatch,
			wantErr: "csr: verify: signature algorithm does not match the key: SIGNATURE_ALGORITHM_ECDSA_SHA256 was used with an RSA-2048 key, which needs SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tc.spki, tc.data, tc.sig, tc.algorithm)
			checkErr(t, err, tc.wantIs, tc.wantErr)
		})
	}
}

func checkErr(t *testing.T, err, wantIs error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %q", wantErr)
	}
	if diff := cmp.Diff(wantErr, err.Error()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if wantIs != nil && !errors.Is(err, wantIs) {
		t.Errorf("errors.Is(%v, %v) = false", err, wantIs)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	rk, ek := key(t, RSA2048), key(t, ECP256)
	data := []byte("the CertificationRequestInfo")
	rsaSig, ecSig := rk.sign(t, data), ek.sign(t, data)
	// The same ECDSA signature as raw r||s, the form a client must not return.
	var r, s big.Int
	in := cryptobyte.String(ecSig)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) {
		t.Fatal("cannot take the ECDSA signature apart")
	}
	raw := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)

	tests := []struct {
		name      string
		spki      []byte
		sig       []byte
		algorithm string
		wantIs    error
		wantErr   string
	}{
		{name: "RSA", spki: rk.spki, sig: rsaSig, algorithm: AlgorithmRSAPKCS1v15SHA256},
		{name: "ECDSA", spki: ek.spki, sig: ecSig, algorithm: AlgorithmECDSASHA256},
		{
			name: "RSA signature, ECDSA algorithm", spki: rk.spki, sig: rsaSig, algorithm: AlgorithmECDSASHA256,
			wantIs:  ErrAlgorithmMismatch,
			wantErr: "csr: verify: signature algorithm does not match the key: SIGNATURE_ALGORITHM_ECDSA_SHA256 was used with an RSA-2048 key, which needs SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256",
		},
		{
			name: "ECDSA signature, RSA algorithm", spki: ek.spki, sig: ecSig, algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantIs:  ErrAlgorithmMismatch,
			wantErr: "csr: verify: signature algorithm does not match the key: SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256 was used with an EC-P256 key, which needs SIGNATURE_ALGORITHM_ECDSA_SHA256",
		},
		{
			name: "unknown algorithm", spki: rk.spki, sig: rsaSig, algorithm: "SIGNATURE_ALGORITHM_UNSPECIFIED",
			wantErr: `csr: verify: unknown signature algorithm "SIGNATURE_ALGORITHM_UNSPECIFIED" (want SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256 or SIGNATURE_ALGORITHM_ECDSA_SHA256)`,
		},
		{
			name: "RSA signature by another key", spki: rk.spki, sig: flip(rsaSig, 0), algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: verify: invalid signature: the RSA PKCS#1 v1.5 SHA-256 signature does not match the key and the 28 bytes signed",
		},
		{
			name: "RSA signature truncated", spki: rk.spki, sig: rsaSig[1:], algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: verify: invalid signature: the RSA signature is 255 bytes, an RSA-2048 signature is 256",
		},
		{
			name: "empty signature", spki: rk.spki, sig: nil, algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: verify: invalid signature: the RSA signature is 0 bytes, an RSA-2048 signature is 256",
		},
		{
			name: "ECDSA signature altered", spki: ek.spki, sig: flip(ecSig, len(ecSig)-1), algorithm: AlgorithmECDSASHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: verify: invalid signature: the ECDSA P-256 SHA-256 signature does not match the key and the 28 bytes signed",
		},
		{
			name: "ECDSA raw r||s", spki: ek.spki, sig: raw, algorithm: AlgorithmECDSASHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: verify: invalid signature: the ECDSA signature is not a DER SEQUENCE { r, s } (64 bytes: raw r||s?)",
		},
		{
			name: "ECDSA with trailing bytes", spki: ek.spki, sig: append(append([]byte{}, ecSig...), 0), algorithm: AlgorithmECDSASHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: verify: invalid signature: the ECDSA signature is not a DER SEQUENCE { r, s }",
		},
		{
			name: "unsupported key", spki: rsaSPKI(t, 4096, 65537), sig: rsaSig, algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantErr: "csr: verify: unsupported key RSA-4096: only RSA-2048 and EC P-256 keys are accepted",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkErr(t, Verify(tc.spki, data, tc.sig, tc.algorithm), tc.wantIs, tc.wantErr)
		})
	}
}

func TestVerifyUnsupportedKeyIsTyped(t *testing.T) {
	t.Parallel()
	err := Verify([]byte("garbage"), nil, nil, AlgorithmECDSASHA256)
	var uke *UnsupportedKeyError
	if !errors.As(err, &uke) {
		t.Fatalf("error %v is not an *UnsupportedKeyError", err)
	}
}

func TestAssembleRefuses(t *testing.T) {
	t.Parallel()
	rk, ek := key(t, RSA2048), key(t, ECP256)
	tmpl := Template{Subject: pkix.Name{CommonName: "device"}}
	rsaCRI, err := BuildRequestInfo(rk.spki, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	ecCRI, err := BuildRequestInfo(ek.spki, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	rsaSig, ecSig := rk.sign(t, rsaCRI), ek.sign(t, ecCRI)

	tests := []struct {
		name      string
		cri       []byte
		sig       []byte
		algorithm string
		wantIs    error
		wantErr   string
	}{
		{
			name: "RSA signature over other bytes", cri: rsaCRI, sig: rk.sign(t, ecCRI), algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: assemble: invalid signature: the CSR's signature does not verify: crypto/rsa: verification error",
		},
		{
			name: "ECDSA signature over other bytes", cri: ecCRI, sig: ek.sign(t, rsaCRI), algorithm: AlgorithmECDSASHA256,
			wantIs:  ErrInvalidSignature,
			wantErr: "csr: assemble: invalid signature: the CSR's signature does not verify: x509: ECDSA verification failure",
		},
		{
			name: "RSA key, ECDSA algorithm", cri: rsaCRI, sig: rsaSig, algorithm: AlgorithmECDSASHA256,
			wantIs:  ErrAlgorithmMismatch,
			wantErr: "csr: assemble: signature algorithm does not match the key: SIGNATURE_ALGORITHM_ECDSA_SHA256 was used with an RSA-2048 key, which needs SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256",
		},
		{
			name: "EC key, RSA algorithm", cri: ecCRI, sig: ecSig, algorithm: AlgorithmRSAPKCS1v15SHA256,
			wantIs:  ErrAlgorithmMismatch,
			wantErr: "csr: assemble: signature algorithm does not match the key: SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256 was used with an EC-P256 key, which needs SIGNATURE_ALGORITHM_ECDSA_SHA256",
		},
		{
			name: "unknown algorithm", cri: ecCRI, sig: ecSig, algorithm: "ECDSA",
			wantErr: `csr: assemble: unknown signature algorithm "ECDSA" (want SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256 or SIGNATURE_ALGORITHM_ECDSA_SHA256)`,
		},
		{
			name: "request info with trailing bytes", cri: append(append([]byte{}, ecCRI...), 0), sig: ecSig, algorithm: AlgorithmECDSASHA256,
			wantErr: "csr: assemble: the request info is not one DER SEQUENCE",
		},
		{
			name: "request info that is not one", cri: []byte{0x30, 0x00}, sig: ecSig, algorithm: AlgorithmECDSASHA256,
			wantErr: "csr: assemble: the CSR does not parse: asn1: syntax error: sequence truncated",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			der, err := Assemble(tc.cri, tc.sig, tc.algorithm)
			if err == nil {
				t.Fatalf("Assemble accepted it: %x", der)
			}
			checkErr(t, err, tc.wantIs, tc.wantErr)
		})
	}
}

// TestAssembleEncoding checks the AlgorithmIdentifier and BIT STRING bytes
// against RFC 4055 (NULL parameters) and RFC 5758 (none).
func TestAssembleEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kt        KeyType
		wantAlgID []byte
	}{
		{RSA2048, []byte{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00}},
		{ECP256, []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}},
	}
	for _, tc := range tests {
		t.Run(string(tc.kt), func(t *testing.T) {
			t.Parallel()
			k := key(t, tc.kt)
			cri, err := BuildRequestInfo(k.spki, Template{Subject: pkix.Name{CommonName: "x"}})
			if err != nil {
				t.Fatal(err)
			}
			sig := k.sign(t, cri)
			der, err := Assemble(cri, sig, k.algorithm)
			if err != nil {
				t.Fatal(err)
			}
			in := cryptobyte.String(der)
			var body, gotCRI, algID cryptobyte.String
			var bits []byte
			if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() ||
				!body.ReadASN1Element(&gotCRI, cbasn1.SEQUENCE) ||
				!body.ReadASN1Element(&algID, cbasn1.SEQUENCE) ||
				!body.ReadASN1BitStringAsBytes(&bits) || !body.Empty() {
				t.Fatalf("not SEQUENCE { CRI, AlgorithmIdentifier, BIT STRING }: %x", der)
			}
			if diff := cmp.Diff(cri, []byte(gotCRI)); diff != "" {
				t.Errorf("CRI (-signed +in CSR):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantAlgID, []byte(algID)); diff != "" {
				t.Errorf("AlgorithmIdentifier (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(sig, bits); diff != "" {
				t.Errorf("signature (-client +in CSR):\n%s", diff)
			}
		})
	}
}

func TestPEM(t *testing.T) {
	t.Parallel()
	k := key(t, ECP256)
	cri, err := BuildRequestInfo(k.spki, Template{Subject: pkix.Name{CommonName: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	der, err := Assemble(cri, k.sign(t, cri), k.algorithm)
	if err != nil {
		t.Fatal(err)
	}
	out := PEM(der)
	block, rest := pem.Decode(out)
	if block == nil {
		t.Fatalf("no PEM block in %q", out)
	}
	if diff := cmp.Diff(pem.Block{Type: "CERTIFICATE REQUEST", Headers: map[string]string{}, Bytes: der}, *block); diff != "" {
		t.Errorf("PEM block (-want +got):\n%s", diff)
	}
	if len(rest) != 0 {
		t.Errorf("more after the block: %q", rest)
	}
	if _, err := x509.ParseCertificateRequest(block.Bytes); err != nil {
		t.Error(err)
	}
}
