package csr

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// TestRoundTrip follows a request through the whole flow: build what the
// client signs, sign it as the client would, verify, assemble, and read the
// CSR back as a CA would.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	full := fullTemplate()
	fullView := func(alg x509.SignatureAlgorithm) csrView {
		subject := full.Subject
		// crypto/x509/pkix puts both OUs in one RDN, a SET, which DER
		// sorts by encoding: the UTF8String (tag 12) before the
		// PrintableString (tag 19).
		subject.OrganizationalUnit = []string{"Zürich", "Devices"}
		return csrView{
			Subject:            subject,
			DNSNames:           full.DNSNames,
			EmailAddresses:     full.EmailAddresses,
			URIs:               full.URIs,
			UserPrincipalNames: full.UserPrincipalNames,
			KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			KeyUsageCritical:   true,
			ExtKeyUsage:        []string{"1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.4"},
			MSTemplateName:     "ChromeOSUser",
			ChallengePassword:  "F3A1C2B4D5E6F708",
			ChallengeTag:       cbasn1.PrintableString,
			ExtensionOrder:     []string{"2.5.29.17", "2.5.29.15", "2.5.29.37", "1.3.6.1.4.1.311.20.2"},
			SignatureAlgorithm: alg,
		}
	}
	tests := []struct {
		name string
		kt   KeyType
		tmpl Template
		want csrView
	}{
		{
			name: "RSA-2048, everything",
			kt:   RSA2048,
			tmpl: full,
			want: fullView(x509.SHA256WithRSA),
		},
		{
			name: "EC P-256, everything",
			kt:   ECP256,
			tmpl: full,
			want: fullView(x509.ECDSAWithSHA256),
		},
		{
			name: "subject only: no extensions, no attributes",
			kt:   ECP256,
			tmpl: Template{Subject: pkix.Name{CommonName: "device-1234"}},
			want: csrView{
				Subject:            pkix.Name{CommonName: "device-1234"},
				SignatureAlgorithm: x509.ECDSAWithSHA256,
			},
		},
		{
			name: "empty subject: the SAN is critical",
			kt:   RSA2048,
			tmpl: Template{UserPrincipalNames: []string{"jürgen@corp.example.com"}},
			want: csrView{
				UserPrincipalNames: []string{"jürgen@corp.example.com"},
				SANCritical:        true,
				ExtensionOrder:     []string{"2.5.29.17"},
				SignatureAlgorithm: x509.SHA256WithRSA,
			},
		},
		{
			name: "UTF-8 challenge password, key usage with decipherOnly",
			kt:   ECP256,
			tmpl: Template{
				Subject:           pkix.Name{CommonName: "Gerät 7", Organization: []string{"Ünïcode AG"}},
				KeyUsage:          x509.KeyUsageKeyAgreement | x509.KeyUsageDecipherOnly,
				ChallengePassword: "pässwort*&",
			},
			want: csrView{
				Subject:            pkix.Name{CommonName: "Gerät 7", Organization: []string{"Ünïcode AG"}},
				KeyUsage:           x509.KeyUsageKeyAgreement | x509.KeyUsageDecipherOnly,
				KeyUsageCritical:   true,
				ExtensionOrder:     []string{"2.5.29.15"},
				ChallengePassword:  "pässwort*&",
				ChallengeTag:       cbasn1.UTF8String,
				SignatureAlgorithm: x509.ECDSAWithSHA256,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := key(t, tc.kt)
			cri, err := BuildRequestInfo(k.spki, tc.tmpl)
			if err != nil {
				t.Fatalf("BuildRequestInfo: %v", err)
			}
			sig := k.sign(t, cri)
			if err := Verify(k.spki, cri, sig, k.algorithm); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			der, err := Assemble(cri, sig, k.algorithm)
			if err != nil {
				t.Fatalf("Assemble: %v", err)
			}
			req, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatalf("ParseCertificateRequest: %v", err)
			}
			if err := req.CheckSignature(); err != nil {
				t.Errorf("CheckSignature: %v", err)
			}
			if diff := cmp.Diff(tc.want, viewOf(t, req)); diff != "" {
				t.Errorf("CSR content (-want +got):\n%s", diff)
			}
			if !bytes.Equal(req.RawSubjectPublicKeyInfo, k.spki) {
				t.Errorf("SPKI in the CSR\n%x\nis not the client's\n%x", req.RawSubjectPublicKeyInfo, k.spki)
			}
			if !bytes.Equal(req.RawTBSCertificateRequest, cri) {
				t.Error("the CSR's CertificationRequestInfo is not the bytes the client signed")
			}
			subject, err := asn1.Marshal(tc.tmpl.Subject.ToRDNSequence())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(req.RawSubject, subject) {
				t.Errorf("subject encoding %x, want Go's %x", req.RawSubject, subject)
			}
			if req.Version != 0 {
				t.Errorf("version %d, want 0 (v1)", req.Version)
			}
		})
	}
}

// TestSPKIEmbeddedVerbatim checks that the key goes into the request as the
// very bytes given, at its place in the CertificationRequestInfo, including
// the API's sample key (whose private half nobody has).
func TestSPKIEmbeddedVerbatim(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spki []byte
	}{
		{"API sample key", b64(t, vectorSPKI)},
		{"RSA-2048", key(t, RSA2048).spki},
		{"EC P-256", key(t, ECP256).spki},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cri, err := BuildRequestInfo(tc.spki, fullTemplate())
			if err != nil {
				t.Fatal(err)
			}
			in := cryptobyte.String(cri)
			var body, spki, attrs cryptobyte.String
			if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() ||
				!body.SkipASN1(cbasn1.INTEGER) || !body.SkipASN1(cbasn1.SEQUENCE) ||
				!body.ReadASN1Element(&spki, cbasn1.SEQUENCE) ||
				!body.ReadASN1(&attrs, cbasn1.Tag(0).ContextSpecific().Constructed()) || !body.Empty() {
				t.Fatalf("not a CertificationRequestInfo: %x", cri)
			}
			if diff := cmp.Diff(tc.spki, []byte(spki)); diff != "" {
				t.Errorf("embedded SPKI (-given +embedded):\n%s", diff)
			}
			// DER sorts SET OF members by their encodings.
			var prev []byte
			n := 0
			for ; !attrs.Empty(); n++ {
				var attr cryptobyte.String
				if !attrs.ReadASN1Element(&attr, cbasn1.SEQUENCE) {
					t.Fatalf("bad attribute in %x", cri)
				}
				if bytes.Compare(prev, attr) > 0 {
					t.Errorf("attributes out of DER order: %x before %x", prev, []byte(attr))
				}
				prev = attr
			}
			if n != 2 {
				t.Errorf("%d attributes, want 2 (extensionRequest, challengePassword)", n)
			}
		})
	}
}

// TestExtensionsMatchCryptoX509 compares the keyUsage and extKeyUsage
// encodings with those crypto/x509 writes into a certificate.
func TestExtensionsMatchCryptoX509(t *testing.T) {
	t.Parallel()
	k := key(t, ECP256)
	tests := []struct {
		name string
		ku   x509.KeyUsage
		eku  []x509.ExtKeyUsage
	}{
		{"digitalSignature", x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{"keyEncipherment", x509.KeyUsageKeyEncipherment, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{"signing and encipherment", x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, []x509.ExtKeyUsage{x509.ExtKeyUsageAny}},
		{"certSign and cRLSign", x509.KeyUsageCertSign | x509.KeyUsageCRLSign, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning, x509.ExtKeyUsageTimeStamping}},
		{"decipherOnly", x509.KeyUsageDecipherOnly, []x509.ExtKeyUsage{x509.ExtKeyUsageMicrosoftKernelCodeSigning}},
		{"all nine bits", 1<<9 - 1, []x509.ExtKeyUsage{
			x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageIPSECEndSystem,
			x509.ExtKeyUsageIPSECTunnel, x509.ExtKeyUsageIPSECUser, x509.ExtKeyUsageMicrosoftServerGatedCrypto,
			x509.ExtKeyUsageNetscapeServerGatedCrypto, x509.ExtKeyUsageMicrosoftCommercialCodeSigning,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			certDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
				SerialNumber: big.NewInt(1),
				Subject:      pkix.Name{CommonName: "x"},
				NotBefore:    time.Unix(0, 0),
				NotAfter:     time.Unix(1, 0),
				KeyUsage:     tc.ku,
				ExtKeyUsage:  tc.eku,
			}, &x509.Certificate{Subject: pkix.Name{CommonName: "x"}}, k.signer.Public(), k.signer)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(certDER)
			if err != nil {
				t.Fatal(err)
			}
			cri, err := BuildRequestInfo(k.spki, Template{Subject: pkix.Name{CommonName: "x"}, KeyUsage: tc.ku, ExtKeyUsage: tc.eku})
			if err != nil {
				t.Fatal(err)
			}
			req, err := x509.ParseCertificateRequest(assemble(cri, algorithmIdentifier(oidECDSAWithSHA256), nil))
			if err != nil {
				t.Fatal(err)
			}
			pick := func(exts []pkix.Extension) []pkix.Extension {
				var out []pkix.Extension
				for _, e := range exts {
					if e.Id.Equal(oidExtKeyUsage) || e.Id.Equal(oidExtExtKeyUsage) {
						out = append(out, e)
					}
				}
				return out
			}
			if diff := cmp.Diff(pick(cert.Extensions), pick(req.Extensions)); diff != "" {
				t.Errorf("extensions (-crypto/x509 +csr):\n%s", diff)
			}
		})
	}
}

func TestBuildRequestInfoRefuses(t *testing.T) {
	t.Parallel()
	cn := pkix.Name{CommonName: "device"}
	const secret = "SECRET-never-in-errors"
	tests := []struct {
		name    string
		spki    []byte
		tmpl    Template
		wantErr string
	}{
		{
			name:    "neither subject nor SAN",
			tmpl:    Template{KeyUsage: x509.KeyUsageDigitalSignature, ChallengePassword: "abc"},
			wantErr: "csr: build request: the request has neither a subject nor a subject alternative name",
		},
		{
			name: "bad subject attributes",
			tmpl: Template{Subject: pkix.Name{
				CommonName:         strings.Repeat("c", 65),
				Country:            []string{"usa", "de"},
				Organization:       []string{""},
				OrganizationalUnit: []string{"ok", "bad\xff"},
				Locality:           []string{strings.Repeat("l", 129)},
			}},
			wantErr: "csr: build request: " + strings.Join([]string{
				`invalid subject country "usa": want a two-letter ISO 3166 code such as "US"`,
				`invalid subject country "de": want a two-letter ISO 3166 code such as "US"`,
				`invalid subject locality "` + strings.Repeat("l", 129) + `": 129 characters, at most 128 allowed`,
				`invalid subject organization: empty`,
				`invalid subject organizational unit "bad\xff": not valid UTF-8`,
				`invalid subject common name "` + strings.Repeat("c", 65) + `": 65 characters, at most 64 allowed`,
			}, "\n"),
		},
		{
			name: "control and invisible characters in the subject",
			tmpl: Template{Subject: pkix.Name{
				CommonName:         "victim.example.com\x00.evil.com",
				Organization:       []string{"Example\nCorp"},
				OrganizationalUnit: []string{"a\u202eb", "tab\there"},
				Locality:           []string{"Zürich ok"},
			}},
			wantErr: "csr: build request: " + strings.Join([]string{
				`invalid subject organization "Example\nCorp": holds the control or invisible character U+000A`,
				`invalid subject organizational unit "a\u202eb": holds the control or invisible character U+202E`,
				`invalid subject organizational unit "tab\there": holds the control or invisible character U+0009`,
				`invalid subject common name "victim.example.com\x00.evil.com": holds the control or invisible character U+0000`,
			}, "\n"),
		},
		{
			name: "control characters in email addresses and UPNs",
			tmpl: Template{Subject: cn, EmailAddresses: []string{"a\x00b@example.com", "\"a\x01\"@example.com"}, UserPrincipalNames: []string{"a\u200bb@corp"}},
			wantErr: "csr: build request: " + strings.Join([]string{
				`invalid email address "a\x00b@example.com": holds a control character`,
				`invalid email address "\"a\x01\"@example.com": holds a control character`,
				`invalid user principal name "a\u200bb@corp": holds a space or control character`,
			}, "\n"),
		},
		{
			name: "bad DNS names, each named",
			tmpl: Template{Subject: cn, DNSNames: []string{
				"good.example.com", "exa mple.com", "-bad.example.com", "host..example.com", "", "*",
				"a.*.example.com", "host.example.com.", strings.Repeat("a", 64) + ".example.com", "bücher.example",
			}},
			wantErr: "csr: build request: " + strings.Join([]string{
				`invalid DNS name "exa mple.com": label "exa mple" holds ' ': only letters, digits, '-' and '_' are allowed`,
				`invalid DNS name "-bad.example.com": label "-bad" starts or ends with a hyphen`,
				`invalid DNS name "host..example.com": empty label`,
				`invalid DNS name "": empty`,
				`invalid DNS name "*": label "*" holds '*': only letters, digits, '-' and '_' are allowed`,
				`invalid DNS name "a.*.example.com": label "*" holds '*': only letters, digits, '-' and '_' are allowed`,
				`invalid DNS name "host.example.com.": empty label`,
				`invalid DNS name "` + strings.Repeat("a", 64) + `.example.com": label "` + strings.Repeat("a", 64) + `" is longer than 63 characters`,
				`invalid DNS name "bücher.example": label "bücher" holds 'ü': only letters, digits, '-' and '_' are allowed`,
			}, "\n"),
		},
		{
			name: "bad email addresses",
			tmpl: Template{Subject: cn, EmailAddresses: []string{
				"user@example.com", "not-an-email", "Name <user@example.com>", "user@", "üser@example.com", "user@exa_mple..com",
			}},
			wantErr: "csr: build request: " + strings.Join([]string{
				`invalid email address "not-an-email": not a bare local@domain mailbox`,
				`invalid email address "Name <user@example.com>": not a bare local@domain mailbox`,
				`invalid email address "user@": not a bare local@domain mailbox`,
				`invalid email address "üser@example.com": rfc822Name must be ASCII (IA5String)`,
				`invalid email address "user@exa_mple..com": not a bare local@domain mailbox`,
			}, "\n"),
		},
		{
			name: "bad URIs",
			tmpl: Template{Subject: cn, URIs: []string{
				"https://example.com/ok", "not a uri", "relative/path", "https:", "https://exämple.com", "%zz:x",
			}},
			wantErr: "csr: build request: " + strings.Join([]string{
				`invalid URI "not a uri": holds a space or control character`,
				`invalid URI "relative/path": not absolute: a scheme is required`,
				`invalid URI "https:": nothing after the scheme`,
				`invalid URI "https://exämple.com": a URI must be ASCII (IA5String); percent-encode other characters`,
				`invalid URI "%zz:x": does not parse as a URI`,
			}, "\n"),
		},
		{
			name: "bad user principal names",
			tmpl: Template{Subject: cn, UserPrincipalNames: []string{"user@corp", "nouser", "@corp", "user@", "us er@corp", ""}},
			wantErr: "csr: build request: " + strings.Join([]string{
				`invalid user principal name "nouser": want user@domain`,
				`invalid user principal name "@corp": want user@domain`,
				`invalid user principal name "user@": want user@domain`,
				`invalid user principal name "us er@corp": holds a space or control character`,
				`invalid user principal name "": empty`,
			}, "\n"),
		},
		{
			name:    "unknown extended key usage",
			tmpl:    Template{Subject: cn, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, 999}},
			wantErr: "csr: build request: unknown extended key usage 999",
		},
		{
			name:    "key usage beyond RFC 5280",
			tmpl:    Template{Subject: cn, KeyUsage: 1 << 9},
			wantErr: "csr: build request: invalid key usage 0x200: only the nine bits of RFC 5280 are defined",
		},
		{
			name:    "template name outside the BMP",
			tmpl:    Template{Subject: cn, MSTemplateName: "User😀"},
			wantErr: `csr: build request: invalid certificate template name "User😀": '😀' is outside the Basic Multilingual Plane (BMPString)`,
		},
		{
			name:    "challenge password too long, not quoted",
			tmpl:    Template{Subject: cn, ChallengePassword: secret + strings.Repeat("x", 256)},
			wantErr: "csr: build request: invalid challenge password: 278 characters, at most 255 allowed",
		},
		{
			name:    "challenge password not UTF-8, not quoted",
			tmpl:    Template{Subject: cn, ChallengePassword: secret + "\xff"},
			wantErr: "csr: build request: invalid challenge password: not valid UTF-8",
		},
		{
			name:    "unsupported key",
			spki:    rsaSPKI(t, 4096, 65537),
			tmpl:    fullTemplate(),
			wantErr: "csr: build request: unsupported key RSA-4096: only RSA-2048 and EC P-256 keys are accepted",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spki := tc.spki
			if spki == nil {
				spki = key(t, ECP256).spki
			}
			cri, err := BuildRequestInfo(spki, tc.tmpl)
			if err == nil {
				t.Fatalf("BuildRequestInfo accepted it: %x", cri)
			}
			if diff := cmp.Diff(tc.wantErr, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes the challenge password: %v", err)
			}
		})
	}
}

func TestBuildRequestInfoUnsupportedKeyIsTyped(t *testing.T) {
	t.Parallel()
	_, err := BuildRequestInfo(rsaSPKI(t, 1024, 65537), fullTemplate())
	var uke *UnsupportedKeyError
	if !errors.As(err, &uke) || uke.Key != "RSA-1024" {
		t.Fatalf("error %v is not an *UnsupportedKeyError for RSA-1024", err)
	}
}
