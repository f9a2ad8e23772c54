package csr

import (
	"crypto/x509"
	"errors"
	"testing"
)

// The hot pieces of the pipeline, per key type a ChromeOS client generates:
// building the request info (claim), verifying the client's signature and
// assembling the CSR (poll). Each benchmark checks its result once outside
// the timed loop, independently of the code under test, so it can fail.

var benchKeyTypes = []KeyType{RSA2048, ECP256}

func BenchmarkBuildRequestInfo(b *testing.B) {
	for _, kt := range benchKeyTypes {
		b.Run(string(kt), func(b *testing.B) {
			k, tmpl := key(b, kt), fullTemplate()
			var cri []byte
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if cri, err = BuildRequestInfo(k.spki, tmpl); err != nil {
					b.Fatal(err)
				}
			}
			checkCSR(b, k, buildCSR(b, k, cri))
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, kt := range benchKeyTypes {
		b.Run(string(kt), func(b *testing.B) {
			k := key(b, kt)
			data, err := BuildRequestInfo(k.spki, fullTemplate())
			if err != nil {
				b.Fatal(err)
			}
			sig := k.sign(b, data)
			// The check can fail: a signature over other bytes is refused.
			if err := Verify(k.spki, append([]byte{0}, data...), sig, k.algorithm); !errors.Is(err, ErrInvalidSignature) {
				b.Fatalf("Verify(other data) = %v, want ErrInvalidSignature", err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := Verify(k.spki, data, sig, k.algorithm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAssemble(b *testing.B) {
	for _, kt := range benchKeyTypes {
		b.Run(string(kt), func(b *testing.B) {
			k := key(b, kt)
			cri, err := BuildRequestInfo(k.spki, fullTemplate())
			if err != nil {
				b.Fatal(err)
			}
			sig := k.sign(b, cri)
			var der []byte
			b.ReportAllocs()
			for b.Loop() {
				if der, err = Assemble(cri, sig, k.algorithm); err != nil {
					b.Fatal(err)
				}
			}
			checkCSR(b, k, der)
		})
	}
}

// buildCSR has the client sign cri and assembles the CSR.
func buildCSR(b *testing.B, k testKey, cri []byte) []byte {
	b.Helper()
	der, err := Assemble(cri, k.sign(b, cri), k.algorithm)
	if err != nil {
		b.Fatalf("Assemble: %v", err)
	}
	return der
}

// checkCSR reads der back with crypto/x509 as a CA would: it must carry the
// client's key and full template, and its signature must verify.
func checkCSR(b *testing.B, k testKey, der []byte) {
	b.Helper()
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		b.Fatalf("the CSR does not parse: %v", err)
	}
	if err := req.CheckSignature(); err != nil {
		b.Fatalf("the CSR's signature does not verify: %v", err)
	}
	if string(req.RawSubjectPublicKeyInfo) != string(k.spki) {
		b.Fatal("the CSR does not carry the client's key")
	}
	want := fullTemplate()
	if req.Subject.CommonName != want.Subject.CommonName || len(req.DNSNames) != len(want.DNSNames) || len(req.URIs) != len(want.URIs) {
		b.Fatalf("the CSR reads back as CN %q, DNS %v, URIs %v; want the full template", req.Subject.CommonName, req.DNSNames, req.URIs)
	}
}
