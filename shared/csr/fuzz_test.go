package csr

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// fuzzKeys are fixed client keys (testdata/fuzz-client-keys.pem): generating
// an RSA key in every fuzz worker, under coverage instrumentation, takes
// longer than a short fuzz run.
var fuzzKeys = sync.OnceValues(func() (map[KeyType]testKey, error) {
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz-client-keys.pem"))
	if err != nil {
		return nil, err
	}
	out := map[KeyType]testKey{}
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			break
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		signer := k.(crypto.Signer)
		spki, err := x509.MarshalPKIXPublicKey(signer.Public())
		if err != nil {
			return nil, err
		}
		_, kt, err := ParseKey(spki)
		if err != nil {
			return nil, err
		}
		out[kt] = testKey{signer: signer, spki: spki, algorithm: SignatureAlgorithm(kt)}
	}
	if len(out) != 2 {
		return nil, fmt.Errorf("want an RSA-2048 and a P-256 key, found %d", len(out))
	}
	return out, nil
})

func fuzzKey(t testing.TB, kt KeyType) testKey {
	t.Helper()
	all, err := fuzzKeys()
	if err != nil {
		t.Fatal(err)
	}
	return all[kt]
}

// algorithms a fuzz input picks from by index; the last is not one.
var fuzzAlgorithms = []string{AlgorithmRSAPKCS1v15SHA256, AlgorithmECDSASHA256, "SIGNATURE_ALGORITHM_UNSPECIFIED"}

func fuzzAlgorithm(i uint8) string { return fuzzAlgorithms[int(i)%len(fuzzAlgorithms)] }

// spkiSeeds are real SubjectPublicKeyInfos: the API sample's, the test
// keys, and keys of the kinds that are refused.
func spkiSeeds(f *testing.F) [][]byte {
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	ed, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	rk := fuzzKey(f, RSA2048)
	return [][]byte{
		b64(f, vectorSPKI),
		rk.spki,
		fuzzKey(f, ECP256).spki,
		rsaSPKI(f, 4096, 65537),
		rsaSPKI(f, 2048, 4),
		marshalPub(f, ec384.Public()),
		marshalPub(f, ed),
		x509.MarshalPKCS1PublicKey(rk.signer.Public().(*rsa.PublicKey)),
		append(append([]byte{}, rk.spki...), 0),
		{0x30, 0x82},
	}
}

// FuzzParseKey: whatever the bytes, ParseKey does not panic; a refusal is
// an *UnsupportedKeyError; an accepted key is an RSA-2048 or EC P-256 key
// whose encoding is exactly its canonical DER, so that it can be embedded
// in the request byte for byte.
func FuzzParseKey(f *testing.F) {
	for _, s := range spkiSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spki []byte) {
		pub, kt, err := ParseKey(spki)
		if err != nil {
			var uke *UnsupportedKeyError
			if !errors.As(err, &uke) {
				t.Fatalf("ParseKey error %v (%T) is not an *UnsupportedKeyError", err, err)
			}
			_ = uke.Error()
			return
		}
		canonical, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil || !bytes.Equal(canonical, spki) {
			t.Fatalf("accepted a key that is not canonical DER: %x (%v)", spki, err)
		}
		switch pub := pub.(type) {
		case *rsa.PublicKey:
			if kt != RSA2048 || pub.N.BitLen() != 2048 {
				t.Fatalf("accepted RSA-%d as %s", pub.N.BitLen(), kt)
			}
		case *ecdsa.PublicKey:
			if kt != ECP256 || pub.Curve != elliptic.P256() {
				t.Fatalf("accepted EC %s as %s", pub.Curve.Params().Name, kt)
			}
		default:
			t.Fatalf("accepted a %T key as %s", pub, kt)
		}
	})
}

// verifiesIndependently checks a signature with crypto/x509, crypto/rsa and
// crypto/ecdsa directly, as a CA would: the oracle for FuzzVerify.
func verifiesIndependently(spki, data, sig []byte, algorithm string) bool {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return false
	}
	digest := sha256.Sum256(data)
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return algorithm == AlgorithmRSAPKCS1v15SHA256 && pub.N.BitLen() == 2048 &&
			rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
	case *ecdsa.PublicKey:
		return algorithm == AlgorithmECDSASHA256 && pub.Curve == elliptic.P256() &&
			ecdsa.VerifyASN1(pub, digest[:], sig)
	}
	return false
}

// FuzzVerify: whatever the key, data, signature and algorithm, Verify does
// not panic, its errors are of the documented kinds, and it accepts a
// signature if and only if the signature really verifies with the key (an
// RSA-2048 or P-256 key in canonical DER, with the algorithm for its type).
func FuzzVerify(f *testing.F) {
	data := []byte("data to sign\n")
	f.Add(b64(f, vectorSPKI), b64(f, vectorSignData), b64(f, vectorSignature), uint8(0))
	f.Add(b64(f, vectorSPKI), b64(f, vectorSignData), b64(f, vectorSignature), uint8(1))
	for _, kt := range []KeyType{RSA2048, ECP256} {
		k := fuzzKey(f, kt)
		sig := k.sign(f, data)
		alg := uint8(slices.Index(fuzzAlgorithms, k.algorithm))
		f.Add(k.spki, data, sig, alg)
		f.Add(k.spki, data, flip(sig, len(sig)-1), alg)
		f.Add(k.spki, data, sig, alg+1)
	}
	for _, s := range spkiSeeds(f) {
		f.Add(s, data, []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, uint8(1))
	}
	f.Fuzz(func(t *testing.T, spki, data, sig []byte, alg uint8) {
		algorithm := fuzzAlgorithm(alg)
		err := Verify(spki, data, sig, algorithm)
		var uke *UnsupportedKeyError
		if err != nil && !errors.Is(err, ErrInvalidSignature) && !errors.Is(err, ErrAlgorithmMismatch) &&
			!errors.As(err, &uke) && !strings.Contains(err.Error(), "unknown signature algorithm") {
			t.Fatalf("Verify error of an undocumented kind: %v", err)
		}
		_, _, keyErr := ParseKey(spki)
		want := keyErr == nil && verifiesIndependently(spki, data, sig, algorithm)
		if got := err == nil; got != want {
			t.Fatalf("Verify accepted=%v (%v), but the signature verifies independently=%v", got, err, want)
		}
	})
}

// fuzzTemplate makes a Template from fuzz strings; an empty string leaves a
// field out.
func fuzzTemplate(cn, org, dns, email, uri, upn, tmplName, challenge string, ku uint16) Template {
	t := Template{
		Subject:           pkix.Name{CommonName: cn},
		KeyUsage:          x509.KeyUsage(ku & 0x1ff),
		MSTemplateName:    tmplName,
		ChallengePassword: challenge,
	}
	if org != "" {
		t.Subject.Organization = []string{org}
	}
	add := func(dst *[]string, v string) {
		if v != "" {
			*dst = append(*dst, v)
		}
	}
	add(&t.DNSNames, dns)
	add(&t.EmailAddresses, email)
	add(&t.URIs, uri)
	add(&t.UserPrincipalNames, upn)
	if ku&0x8000 != 0 {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return t
}

// FuzzBuildAndAssemble follows a fuzzed request through the whole flow with
// a real key: whatever BuildRequestInfo accepts, the client's real signature
// over it assembles into a CSR that crypto/x509 parses, whose signature
// checks, whose CertificationRequestInfo is the bytes signed, and which
// names exactly what the template asked for, with no control or invisible
// character in its subject. A signature with one bit flipped, or the other
// algorithm, is refused.
func FuzzBuildAndAssemble(f *testing.F) {
	full := fullTemplate()
	f.Add(false, full.Subject.CommonName, "Example Org", "host.example.com", "user@example.com", "spiffe://example.com/device/1234", "jürgen@corp.example.com", "ChromeOSUser", "F3A1C2B4D5E6F708", uint16(0x8005))
	f.Add(true, "device-1234", "", "*.corp.example.com", "", "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", "", "", "pässwort*&", uint16(0x0101))
	f.Add(true, "", "", "", "", "", "user@corp", "", "", uint16(0))
	f.Add(false, "victim.example.com\x00.evil.com", "Ex\u202eample", "a.*.example.com", "a\x00b@example.com", "HTTPS://Example.com/%41", "us er@corp", "User😀", "x", uint16(0xffff))
	f.Add(true, strings.Repeat("c", 65), "Zürich", strings.Repeat("a", 64)+".example.com", "Name <u@example.com>", "https://[::1]/", "a\u200bb@corp", "T", strings.Repeat("p", 256), uint16(2))
	f.Fuzz(func(t *testing.T, ec bool, cn, org, dns, email, uri, upn, tmplName, challenge string, ku uint16) {
		kt := RSA2048
		if ec {
			kt = ECP256
		}
		k := fuzzKey(t, kt)
		tmpl := fuzzTemplate(cn, org, dns, email, uri, upn, tmplName, challenge, ku)
		cri, err := BuildRequestInfo(k.spki, tmpl)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "csr: build request: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			// The error depends on the challenge password only through
			// its validity and length: the same request with another
			// password of the same kind fails with the very same text.
			alt := "\xff"
			if utf8.ValidString(challenge) {
				alt = strings.Repeat("Z", utf8.RuneCountInString(challenge))
			}
			other := tmpl
			other.ChallengePassword = alt
			if _, err2 := BuildRequestInfo(k.spki, other); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("the error depends on the challenge password's content:\n%v\nwith another password:\n%v", err, err2)
			}
			return
		}
		sig := k.sign(t, cri)
		der, err := Assemble(cri, sig, k.algorithm)
		if err != nil {
			t.Fatalf("Assemble refused a request BuildRequestInfo accepted, with a real signature: %v", err)
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatalf("ParseCertificateRequest: %v", err)
		}
		if err := req.CheckSignature(); err != nil {
			t.Fatalf("CheckSignature: %v", err)
		}
		if !bytes.Equal(req.RawTBSCertificateRequest, cri) || !bytes.Equal(req.RawSubjectPublicKeyInfo, k.spki) {
			t.Fatal("the CSR does not carry the signed bytes and the client's key verbatim")
		}
		for _, atv := range req.Subject.Names {
			if s, ok := atv.Value.(string); ok && !IsPrintableText(s) {
				t.Fatalf("subject attribute %v holds %q", atv.Type, s)
			}
		}
		var uris []string
		for _, u := range req.URIs {
			uris = append(uris, u.String())
		}
		var wantURIs []string
		for _, u := range tmpl.URIs {
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatalf("accepted URI %q does not parse: %v", u, err)
			}
			wantURIs = append(wantURIs, pu.String())
		}
		type names struct{ CN, DNS, Email, URI, UPN []string }
		got := names{[]string{req.Subject.CommonName}, req.DNSNames, req.EmailAddresses, uris, nil}
		for _, e := range req.Extensions {
			if e.Id.Equal(oidExtSubjectAltName) {
				got.UPN = upnsOf(t, e.Value)
			}
		}
		want := names{[]string{tmpl.Subject.CommonName}, tmpl.DNSNames, tmpl.EmailAddresses, wantURIs, tmpl.UserPrincipalNames}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("the CSR names (-template +CSR):\n%s", diff)
		}
		if pw, _ := challengeOf(t, cri); pw != tmpl.ChallengePassword {
			t.Fatal("the challenge password does not read back")
		}
		if _, err := Assemble(cri, flip(sig, len(sig)/2), k.algorithm); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("Assemble with a flipped signature bit: %v, want ErrInvalidSignature", err)
		}
		other := AlgorithmECDSASHA256
		if ec {
			other = AlgorithmRSAPKCS1v15SHA256
		}
		if _, err := Assemble(cri, sig, other); err == nil {
			t.Fatal("Assemble accepted the other algorithm")
		}
	})
}

// FuzzAssemble: whatever request info, signature and algorithm, Assemble
// does not panic, and what it returns is a CSR that crypto/x509 parses,
// whose signature checks, with the request info as given and an accepted
// key of the algorithm's type.
func FuzzAssemble(f *testing.F) {
	for _, kt := range []KeyType{RSA2048, ECP256} {
		k := fuzzKey(f, kt)
		cri, err := BuildRequestInfo(k.spki, fullTemplate())
		if err != nil {
			f.Fatal(err)
		}
		sig := k.sign(f, cri)
		alg := uint8(slices.Index(fuzzAlgorithms, k.algorithm))
		f.Add(cri, sig, alg)
		f.Add(cri, sig, alg+1)
		f.Add(cri, flip(sig, 3), alg)
		f.Add(cri[:len(cri)-1], sig, alg)
	}
	f.Add([]byte("0\x82"), []byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, cri, sig []byte, alg uint8) {
		algorithm := fuzzAlgorithm(alg)
		der, err := Assemble(cri, sig, algorithm)
		if err != nil {
			return
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatalf("Assemble returned a CSR that does not parse: %v", err)
		}
		if err := req.CheckSignature(); err != nil {
			t.Fatalf("Assemble returned a CSR whose signature does not check: %v", err)
		}
		if !bytes.Equal(req.RawTBSCertificateRequest, cri) {
			t.Fatal("the CSR's request info is not the bytes given")
		}
		if _, kt, err := ParseKey(req.RawSubjectPublicKeyInfo); err != nil || SignatureAlgorithm(kt) != algorithm {
			t.Fatalf("assembled with key %s (%v) for %s", kt, err, algorithm)
		}
		if !verifiesIndependently(req.RawSubjectPublicKeyInfo, cri, sig, algorithm) {
			t.Fatal("Assemble accepted a signature that does not verify")
		}
	})
}
