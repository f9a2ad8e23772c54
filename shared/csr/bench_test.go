package csr

import "testing"

func BenchmarkBuildRequestInfo(b *testing.B) {
	spki, tmpl := key(b, RSA2048).spki, fullTemplate()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildRequestInfo(spki, tmpl); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkVerify(b *testing.B, kt KeyType) {
	k := key(b, kt)
	data, err := BuildRequestInfo(k.spki, fullTemplate())
	if err != nil {
		b.Fatal(err)
	}
	sig := k.sign(b, data)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(k.spki, data, sig, k.algorithm); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRSA(b *testing.B)   { benchmarkVerify(b, RSA2048) }
func BenchmarkVerifyECDSA(b *testing.B) { benchmarkVerify(b, ECP256) }

func BenchmarkAssemble(b *testing.B) {
	for _, kt := range []KeyType{RSA2048, ECP256} {
		b.Run(string(kt), func(b *testing.B) {
			k := key(b, kt)
			cri, err := BuildRequestInfo(k.spki, fullTemplate())
			if err != nil {
				b.Fatal(err)
			}
			sig := k.sign(b, cri)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Assemble(cri, sig, k.algorithm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
