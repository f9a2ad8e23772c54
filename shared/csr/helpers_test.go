package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"sync"
	"testing"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The guide's sample process (shared/seeds/000_02bf90d9718122bc.txt and its
// translations): its subjectPublicKeyInfo, signData and the client's
// signature, which verify with RSASSA-PKCS1-v1_5/SHA-256.
const (
	vectorSPKI      = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqtbosvGe1JzJJYBPsPzFY33xD9fSJhQLZh21ELD2vEZ5OSzxXzQOhlXZ2Mv4C3m4zn8mjuYykprBxaMggryd8kyhycm2DDsL2/KUkdQNPnv6mBQ8iionF84iabh+FWph1CU63j2vCPnw0VYSv7cz+bHsxs3tXFB7PqqQZr7WcWAAxFaIqoTkJrTGMzDFs8GHUA6mFhMj0WsPzp3aicj24uW0AAJjVFmiZ+pz1lOOL4coNsVrujrX2E6lU8AHjmoQT6ThRVnuo1jFXoASB4A1It6dtu/P8L3zhsVWYRtOZjLLVvGryzT8z0A8iW5k+apkb465jgLd2vuxFPekAgPRDwIDAQAB"
	vectorSignData  = "ZGF0YSB0byBzaWduCg=="
	vectorSignature = "mPfL8v/DR+ZqbtJ6X5cJCTrzfOO3wPHCY8nV/stbokdNZnkRJ8U0PBzgm6pWy08pMmOfrs9ZMBXcQ0i05Oe6AwgHYYN5RHuwdnhAklJYriDT4fXdzewD6KuA6x7ZX1d2xYnh0p2XczcdNOJsrz2T/p+89PLcB6I1PIg1Cwz4I1YCAS2OMAQF5DxS+SvMpPbkdzkNG4SCCL/hJNayxRMr98SbQ0aQE77AtxzpXGof5cBEBOcbQ+T+kBIgArQ87D6bQVHVB3di+TvYepK6hwxiLbhCEDGHgi2DfMp8kEWnAVPVzi6xht5jPNhVqILALRbQQ1nUjlP8UO+/y+WR4M36Yg=="
)

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testKey is a client key pair: the private half stands in for the device.
type testKey struct {
	signer    crypto.Signer
	spki      []byte
	algorithm string
}

// sign signs like the ChromeOS client does for signData.
func (k testKey) sign(t testing.TB, data []byte) []byte {
	t.Helper()
	digest := sha256.Sum256(data)
	sig, err := k.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

var keys = sync.OnceValues(func() (map[KeyType]testKey, error) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	out := map[KeyType]testKey{}
	for kt, s := range map[KeyType]crypto.Signer{RSA2048: rk, ECP256: ek} {
		spki, err := x509.MarshalPKIXPublicKey(s.Public())
		if err != nil {
			return nil, err
		}
		out[kt] = testKey{signer: s, spki: spki, algorithm: SignatureAlgorithm(kt)}
	}
	return out, nil
})

func key(t testing.TB, kt KeyType) testKey {
	t.Helper()
	all, err := keys()
	if err != nil {
		t.Fatal(err)
	}
	return all[kt]
}

// fullTemplate asks for everything the package can put in a request.
func fullTemplate() Template {
	return Template{
		Subject: pkix.Name{
			CommonName:         "user@example.com",
			Organization:       []string{"Example Org"},
			OrganizationalUnit: []string{"Devices", "Zürich"},
			Locality:           []string{"Mountain View"},
			Province:           []string{"California"},
			Country:            []string{"US"},
		},
		DNSNames:           []string{"host.example.com", "*.corp.example.com"},
		EmailAddresses:     []string{"user@example.com"},
		URIs:               []string{"spiffe://example.com/device/1234", "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"},
		UserPrincipalNames: []string{"user@corp.example.com"},
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
		MSTemplateName:     "ChromeOSUser",
		ChallengePassword:  "F3A1C2B4D5E6F708",
	}
}

// csrView is what a CA would read out of a CSR, decoded independently of the
// code under test.
type csrView struct {
	Subject            pkix.Name
	DNSNames           []string
	EmailAddresses     []string
	URIs               []string
	UserPrincipalNames []string
	SANCritical        bool
	KeyUsage           x509.KeyUsage
	KeyUsageCritical   bool
	ExtKeyUsage        []string
	MSTemplateName     string
	ChallengePassword  string
	ChallengeTag       cbasn1.Tag
	ExtensionOrder     []string
	SignatureAlgorithm x509.SignatureAlgorithm
}

func viewOf(t testing.TB, req *x509.CertificateRequest) csrView {
	t.Helper()
	v := csrView{
		Subject:            req.Subject,
		DNSNames:           req.DNSNames,
		EmailAddresses:     req.EmailAddresses,
		SignatureAlgorithm: req.SignatureAlgorithm,
	}
	v.Subject.Names = nil
	for _, u := range req.URIs {
		v.URIs = append(v.URIs, u.String())
	}
	for _, e := range req.Extensions {
		v.ExtensionOrder = append(v.ExtensionOrder, e.Id.String())
		switch e.Id.String() {
		case "2.5.29.17":
			v.SANCritical = e.Critical
			v.UserPrincipalNames = upnsOf(t, e.Value)
		case "2.5.29.15":
			var bits asn1.BitString
			if rest, err := asn1.Unmarshal(e.Value, &bits); err != nil || len(rest) > 0 {
				t.Fatalf("keyUsage %x: %v", e.Value, err)
			}
			for i := 0; i < bits.BitLength; i++ {
				if bits.At(i) == 1 {
					v.KeyUsage |= 1 << i
				}
			}
			v.KeyUsageCritical = e.Critical
		case "2.5.29.37":
			var oids []asn1.ObjectIdentifier
			if rest, err := asn1.Unmarshal(e.Value, &oids); err != nil || len(rest) > 0 {
				t.Fatalf("extKeyUsage %x: %v", e.Value, err)
			}
			for _, o := range oids {
				v.ExtKeyUsage = append(v.ExtKeyUsage, o.String())
			}
		case "1.3.6.1.4.1.311.20.2":
			s := cryptobyte.String(e.Value)
			var bmp cryptobyte.String
			if !s.ReadASN1(&bmp, cbasn1.Tag(30)) || !s.Empty() || len(bmp)%2 != 0 {
				t.Fatalf("template name is not a BMPString: %x", e.Value)
			}
			units := make([]uint16, len(bmp)/2)
			for i := range units {
				units[i] = uint16(bmp[2*i])<<8 | uint16(bmp[2*i+1])
			}
			v.MSTemplateName = string(utf16.Decode(units))
		}
	}
	v.ChallengePassword, v.ChallengeTag = challengeOf(t, req.RawTBSCertificateRequest)
	return v
}

// upnsOf reads the UPN otherNames out of a subjectAltName extension value.
func upnsOf(t testing.TB, san []byte) []string {
	t.Helper()
	s := cryptobyte.String(san)
	var names cryptobyte.String
	if !s.ReadASN1(&names, cbasn1.SEQUENCE) || !s.Empty() {
		t.Fatalf("SAN is not a SEQUENCE: %x", san)
	}
	var upns []string
	for !names.Empty() {
		var name cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&name, &tag) {
			t.Fatalf("bad GeneralName in %x", san)
		}
		if tag != cbasn1.Tag(0).ContextSpecific().Constructed() {
			continue
		}
		var oid asn1.ObjectIdentifier
		var explicit, value cryptobyte.String
		if !name.ReadASN1ObjectIdentifier(&oid) ||
			!name.ReadASN1(&explicit, cbasn1.Tag(0).ContextSpecific().Constructed()) || !name.Empty() ||
			!explicit.ReadASN1(&value, cbasn1.UTF8String) || !explicit.Empty() {
			t.Fatalf("otherName is not type-id, [0] EXPLICIT UTF8String: %x", san)
		}
		if oid.String() != "1.3.6.1.4.1.311.20.2.3" {
			t.Fatalf("otherName type %v, want the UPN", oid)
		}
		upns = append(upns, string(value))
	}
	return upns
}

// challengeOf reads the challengePassword attribute out of a DER
// CertificationRequestInfo.
func challengeOf(t testing.TB, cri []byte) (string, cbasn1.Tag) {
	t.Helper()
	s := cryptobyte.String(cri)
	var body, attrs cryptobyte.String
	var version int
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() ||
		!body.ReadASN1Integer(&version) || version != 0 ||
		!body.SkipASN1(cbasn1.SEQUENCE) || !body.SkipASN1(cbasn1.SEQUENCE) ||
		!body.ReadASN1(&attrs, cbasn1.Tag(0).ContextSpecific().Constructed()) || !body.Empty() {
		t.Fatalf("not a CertificationRequestInfo: %x", cri)
	}
	for !attrs.Empty() {
		var attr, values, value cryptobyte.String
		var oid asn1.ObjectIdentifier
		var tag cbasn1.Tag
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) ||
			!attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
			t.Fatalf("bad attribute in %x", cri)
		}
		if oid.String() != "1.2.840.113549.1.9.7" {
			continue
		}
		if !values.ReadAnyASN1(&value, &tag) || !values.Empty() {
			t.Fatalf("challengePassword does not hold one value: %x", cri)
		}
		return string(value), tag
	}
	return "", 0
}

// spkiDER writes a SubjectPublicKeyInfo by hand, for keys Go cannot marshal.
func spkiDER(oid asn1.ObjectIdentifier, params []byte, key []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddBytes(params)
		})
		b.AddASN1BitString(key)
	})
	return b.BytesOrPanic()
}
