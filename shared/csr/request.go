package csr

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Template is what the CSR asks for. Empty fields are left out of the request.
type Template struct {
	// Subject is encoded as crypto/x509 does (pkix.Name.ToRDNSequence):
	// several values of one field, such as two OrganizationalUnit entries,
	// share one multi-valued RDN. For one RDN each, put them in ExtraNames.
	Subject pkix.Name

	// Subject alternative names.
	DNSNames           []string
	EmailAddresses     []string // rfc822Name
	URIs               []string // uniformResourceIdentifier, absolute
	UserPrincipalNames []string // otherName 1.3.6.1.4.1.311.20.2.3, UTF8String

	// KeyUsage, when not zero, is requested as a critical keyUsage extension.
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage

	// MSTemplateName, when set, is requested in the Microsoft certificate
	// template name extension (1.3.6.1.4.1.311.20.2, a BMPString) that AD CS
	// and NDES read to pick the template.
	MSTemplateName string

	// ChallengePassword, when set, goes in the PKCS#9 challengePassword
	// attribute (SCEP). It is a secret: it never appears in an error.
	ChallengePassword string
}

var (
	oidExtensionRequest  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
	oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}
	oidExtSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtMSTemplateName = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2}
	oidUserPrincipalName = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
	oidSHA256WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidECDSAWithSHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
)

var (
	tagBMPString         = cbasn1.Tag(30)
	tagOtherName         = cbasn1.Tag(0).ContextSpecific().Constructed() // GeneralName [0] IMPLICIT
	tagRFC822Name        = cbasn1.Tag(1).ContextSpecific()
	tagDNSName           = cbasn1.Tag(2).ContextSpecific()
	tagURI               = cbasn1.Tag(6).ContextSpecific()
	tagExplicit0         = cbasn1.Tag(0).ContextSpecific().Constructed() // OtherName value [0] EXPLICIT
	tagRequestAttributes = cbasn1.Tag(0).ContextSpecific().Constructed() // attributes [0] IMPLICIT
)

// maxChallengePassword is ub-challenge-password (RFC 2985), in characters.
const maxChallengePassword = 255

// OIDs of the extended key usages crypto/x509 names (it does not export its table).
var extKeyUsageOIDs = map[x509.ExtKeyUsage]asn1.ObjectIdentifier{
	x509.ExtKeyUsageAny:                            {2, 5, 29, 37, 0},
	x509.ExtKeyUsageServerAuth:                     {1, 3, 6, 1, 5, 5, 7, 3, 1},
	x509.ExtKeyUsageClientAuth:                     {1, 3, 6, 1, 5, 5, 7, 3, 2},
	x509.ExtKeyUsageCodeSigning:                    {1, 3, 6, 1, 5, 5, 7, 3, 3},
	x509.ExtKeyUsageEmailProtection:                {1, 3, 6, 1, 5, 5, 7, 3, 4},
	x509.ExtKeyUsageIPSECEndSystem:                 {1, 3, 6, 1, 5, 5, 7, 3, 5},
	x509.ExtKeyUsageIPSECTunnel:                    {1, 3, 6, 1, 5, 5, 7, 3, 6},
	x509.ExtKeyUsageIPSECUser:                      {1, 3, 6, 1, 5, 5, 7, 3, 7},
	x509.ExtKeyUsageTimeStamping:                   {1, 3, 6, 1, 5, 5, 7, 3, 8},
	x509.ExtKeyUsageOCSPSigning:                    {1, 3, 6, 1, 5, 5, 7, 3, 9},
	x509.ExtKeyUsageMicrosoftServerGatedCrypto:     {1, 3, 6, 1, 4, 1, 311, 10, 3, 3},
	x509.ExtKeyUsageNetscapeServerGatedCrypto:      {2, 16, 840, 1, 113730, 4, 1},
	x509.ExtKeyUsageMicrosoftCommercialCodeSigning: {1, 3, 6, 1, 4, 1, 311, 2, 1, 22},
	x509.ExtKeyUsageMicrosoftKernelCodeSigning:     {1, 3, 6, 1, 4, 1, 311, 61, 1, 1},
}

// BuildRequestInfo returns the DER CertificationRequestInfo (RFC 2986) for
// the client key spki and the request t: the bytes the client is asked to
// sign. spki must be an RSA-2048 or EC P-256 key (see ParseKey) and is
// embedded byte for byte. Every invalid value in t is reported, each by name.
func BuildRequestInfo(spki []byte, t Template) ([]byte, error) {
	if _, _, err := ParseKey(spki); err != nil {
		return nil, fmt.Errorf("csr: build request: %w", err)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("csr: build request: %w", err)
	}
	rdns := t.Subject.ToRDNSequence()
	subject, err := asn1.Marshal(rdns)
	if err != nil {
		return nil, fmt.Errorf("csr: build request: marshal subject: %w", err)
	}

	var exts [][]byte
	if t.hasSAN() {
		// RFC 5280 4.2.1.6: with an empty subject the SAN must be critical.
		exts = append(exts, extension(oidExtSubjectAltName, len(rdns) == 0, t.addSAN))
	}
	if t.KeyUsage != 0 {
		exts = append(exts, extension(oidExtKeyUsage, true, func(b *cryptobyte.Builder) { addKeyUsage(b, t.KeyUsage) }))
	}
	if len(t.ExtKeyUsage) > 0 {
		exts = append(exts, extension(oidExtExtKeyUsage, false, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, u := range t.ExtKeyUsage {
					b.AddASN1ObjectIdentifier(extKeyUsageOIDs[u])
				}
			})
		}))
	}
	if t.MSTemplateName != "" {
		exts = append(exts, extension(oidExtMSTemplateName, false, func(b *cryptobyte.Builder) {
			b.AddASN1(tagBMPString, func(b *cryptobyte.Builder) { b.AddBytes(bmpString(t.MSTemplateName)) })
		}))
	}

	var attrs [][]byte
	if len(exts) > 0 {
		attrs = append(attrs, attribute(oidExtensionRequest, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, e := range exts {
					b.AddBytes(e)
				}
			})
		}))
	}
	if t.ChallengePassword != "" {
		attrs = append(attrs, attribute(oidChallengePassword, func(b *cryptobyte.Builder) {
			tag := cbasn1.UTF8String
			if isPrintableString(t.ChallengePassword) {
				tag = cbasn1.PrintableString
			}
			b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(t.ChallengePassword)) })
		}))
	}
	// DER orders the elements of a SET OF by their encodings.
	slices.SortFunc(attrs, bytes.Compare)

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0) // version v1
		b.AddBytes(subject)
		b.AddBytes(spki)
		b.AddASN1(tagRequestAttributes, func(b *cryptobyte.Builder) {
			for _, a := range attrs {
				b.AddBytes(a)
			}
		})
	})
	cri, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("csr: build request: %w", err)
	}

	// The client signs only once: make sure, before it does, that the
	// request parses as a CSR, so that Assemble cannot fail on its content.
	req, err := x509.ParseCertificateRequest(assemble(cri, algorithmIdentifier(oidSHA256WithRSA), nil))
	if err != nil {
		return nil, fmt.Errorf("csr: build request: the request does not parse back: %w", err)
	}
	if !bytes.Equal(req.RawSubjectPublicKeyInfo, spki) {
		return nil, errors.New("csr: build request: the embedded key does not read back byte for byte")
	}
	return cri, nil
}

func (t *Template) hasSAN() bool {
	return len(t.DNSNames)+len(t.EmailAddresses)+len(t.URIs)+len(t.UserPrincipalNames) > 0
}

// validate reports every problem in t at once. The challenge password is
// never quoted.
func (t *Template) validate() error {
	var errs []error
	rdns := t.Subject.ToRDNSequence()
	if len(rdns) == 0 && !t.hasSAN() {
		errs = append(errs, errors.New("the request has neither a subject nor a subject alternative name"))
	}
	errs = append(errs, checkSubject(rdns)...)
	for _, n := range t.DNSNames {
		if err := CheckDNSName(n); err != nil {
			errs = append(errs, fmt.Errorf("invalid DNS name %q: %w", n, err))
		}
	}
	for _, e := range t.EmailAddresses {
		if err := CheckEmail(e); err != nil {
			errs = append(errs, fmt.Errorf("invalid email address %q: %w", e, err))
		}
	}
	for _, u := range t.URIs {
		if err := CheckURI(u); err != nil {
			errs = append(errs, fmt.Errorf("invalid URI %q: %w", u, err))
		}
	}
	for _, u := range t.UserPrincipalNames {
		if err := CheckUPN(u); err != nil {
			errs = append(errs, fmt.Errorf("invalid user principal name %q: %w", u, err))
		}
	}
	if t.KeyUsage < 0 || t.KeyUsage >= 1<<9 {
		errs = append(errs, fmt.Errorf("invalid key usage %#x: only the nine bits of RFC 5280 are defined", int(t.KeyUsage)))
	}
	for _, u := range t.ExtKeyUsage {
		if _, ok := extKeyUsageOIDs[u]; !ok {
			errs = append(errs, fmt.Errorf("unknown extended key usage %d", int(u)))
		}
	}
	if t.MSTemplateName != "" {
		if err := checkBMP(t.MSTemplateName); err != nil {
			errs = append(errs, fmt.Errorf("invalid certificate template name %q: %w", t.MSTemplateName, err))
		}
	}
	if p := t.ChallengePassword; p != "" {
		switch {
		case !utf8.ValidString(p):
			errs = append(errs, errors.New("invalid challenge password: not valid UTF-8"))
		case utf8.RuneCountInString(p) > maxChallengePassword:
			errs = append(errs, fmt.Errorf("invalid challenge password: %d characters, at most %d allowed", utf8.RuneCountInString(p), maxChallengePassword))
		}
	}
	return errors.Join(errs...)
}

// Subject attributes with an upper bound (RFC 5280 appendix A.1), which CAs
// such as AD CS enforce. A request the CA refuses costs the client's only
// signature, so they are checked before it signs.
var subjectBounds = map[string]struct {
	name string
	max  int
}{
	"2.5.4.3":  {"common name", 64},
	"2.5.4.5":  {"serial number", 64},
	"2.5.4.6":  {"country", 2},
	"2.5.4.7":  {"locality", 128},
	"2.5.4.8":  {"state or province", 128},
	"2.5.4.10": {"organization", 64},
	"2.5.4.11": {"organizational unit", 64},
	"2.5.4.17": {"postal code", 40},
}

func checkSubject(rdns pkix.RDNSequence) []error {
	var errs []error
	for _, rdn := range rdns {
		for _, atv := range rdn {
			v, ok := atv.Value.(string)
			if !ok {
				continue
			}
			b, bounded := subjectBounds[atv.Type.String()]
			name := atv.Type.String()
			if bounded {
				name = b.name
			}
			n := utf8.RuneCountInString(v)
			switch {
			case !utf8.ValidString(v):
				errs = append(errs, fmt.Errorf("invalid subject %s %q: not valid UTF-8", name, v))
			case n == 0:
				errs = append(errs, fmt.Errorf("invalid subject %s: empty", name))
			case !IsPrintableText(v):
				errs = append(errs, fmt.Errorf("invalid subject %s %q: holds the control or invisible character %U", name, v, firstUnprintable(v)))
			case atv.Type.String() == "2.5.4.6" && (n != 2 || !isUpperASCII(v)):
				errs = append(errs, fmt.Errorf("invalid subject country %q: want a two-letter ISO 3166 code such as \"US\"", v))
			case bounded && n > b.max:
				errs = append(errs, fmt.Errorf("invalid subject %s %q: %d characters, at most %d allowed", name, v, n, b.max))
			}
		}
	}
	return errs
}

// IsPrintableText reports whether s is valid UTF-8 text that a person can
// read as it is: letters, marks, numbers, punctuation, symbols and the ASCII
// space, and nothing else (no control characters such as NUL or newline, no
// invisible format characters such as zero-width spaces or bidi overrides,
// no other spaces, no unassigned code points).
func IsPrintableText(s string) bool {
	return utf8.ValidString(s) && firstUnprintable(s) < 0
}

// firstUnprintable returns the first rune of s that IsPrintableText refuses,
// or -1.
func firstUnprintable(s string) rune {
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return c
		}
	}
	return -1
}

func isUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// CheckDNSName reports why name is not a host name that a request may carry:
// letters, digits, '-' and '_' in labels of at most 63 characters, at most
// 253 in all; a leftmost label "*" (a wildcard) is allowed.
func CheckDNSName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("%d characters, at most 253 allowed", len(name))
	}
	for i, label := range strings.Split(name, ".") {
		if i == 0 && label == "*" && strings.Contains(name, ".") {
			continue // a wildcard as the whole leftmost label
		}
		if err := CheckDNSLabel(label); err != nil {
			return err
		}
	}
	return nil
}

// CheckDNSLabel reports why label is not one label of a host name. It
// accepts letters, digits, hyphens (not first or last) and, since Active
// Directory host names carry them, underscores.
func CheckDNSLabel(label string) error {
	if label == "" {
		return errors.New("empty label")
	}
	if len(label) > 63 {
		return fmt.Errorf("label %q is longer than 63 characters", label)
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with a hyphen", label)
	}
	for _, c := range label {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("label %q holds %q: only letters, digits, '-' and '_' are allowed", label, c)
		}
	}
	return nil
}

// CheckEmail reports why addr is not an rfc822Name a request may carry: a
// bare ASCII local@domain mailbox whose domain is a host name (no wildcard).
func CheckEmail(addr string) error {
	if addr == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(addr); i++ {
		if addr[i] < ' ' || addr[i] == 0x7f {
			return errors.New("holds a control character")
		}
	}
	if !isASCII(addr) {
		return errors.New("rfc822Name must be ASCII (IA5String)")
	}
	parsed, err := mail.ParseAddress(addr)
	if err != nil || parsed.Name != "" || parsed.Address != addr {
		return errors.New("not a bare local@domain mailbox")
	}
	at := strings.LastIndexByte(addr, '@')
	if err := CheckDNSName(addr[at+1:]); err != nil || strings.HasPrefix(addr[at+1:], "*") {
		return errors.New("the domain is not a host name")
	}
	return nil
}

// CheckURI reports why s is not a uniformResourceIdentifier a request may
// carry: an absolute ASCII URI without spaces or control characters.
func CheckURI(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if !isASCII(s) {
		return errors.New("a URI must be ASCII (IA5String); percent-encode other characters")
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f {
			return errors.New("holds a space or control character")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("does not parse as a URI")
	}
	if !u.IsAbs() {
		return errors.New("not absolute: a scheme is required")
	}
	if u.Opaque == "" && u.Host == "" && u.Path == "" {
		return errors.New("nothing after the scheme")
	}
	return nil
}

// CheckUPN reports why upn is not a user principal name a request may carry:
// UTF-8 user@domain without spaces, control or invisible characters.
func CheckUPN(upn string) error {
	if upn == "" {
		return errors.New("empty")
	}
	if !utf8.ValidString(upn) {
		return errors.New("not valid UTF-8")
	}
	at := strings.LastIndexByte(upn, '@')
	if at <= 0 || at == len(upn)-1 {
		return errors.New("want user@domain")
	}
	for _, c := range upn {
		if unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return errors.New("holds a space or control character")
		}
	}
	return nil
}

func checkBMP(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, c := range s {
		if c > 0xFFFF {
			return fmt.Errorf("%q is outside the Basic Multilingual Plane (BMPString)", c)
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isPrintableString reports whether s fits the ASN.1 PrintableString set
// (X.680 41.4), so DER-minded readers see the type PKCS#9 prefers.
func isPrintableString(s string) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune(" '()+,-./:=?", c):
		default:
			return false
		}
	}
	return true
}

// bmpString encodes s (checked by checkBMP) as UCS-2 big-endian, without a terminator.
func bmpString(s string) []byte {
	out := make([]byte, 0, 2*len(s))
	for _, c := range s {
		out = append(out, byte(c>>8), byte(c))
	}
	return out
}

// addSAN writes the GeneralNames of the subjectAltName extension.
func (t *Template) addSAN(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, n := range t.DNSNames {
			b.AddASN1(tagDNSName, func(b *cryptobyte.Builder) { b.AddBytes([]byte(n)) })
		}
		for _, e := range t.EmailAddresses {
			b.AddASN1(tagRFC822Name, func(b *cryptobyte.Builder) { b.AddBytes([]byte(e)) })
		}
		for _, u := range t.URIs {
			b.AddASN1(tagURI, func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
		}
		for _, upn := range t.UserPrincipalNames {
			// otherName [0] IMPLICIT SEQUENCE { type-id, value [0] EXPLICIT UTF8String }
			b.AddASN1(tagOtherName, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidUserPrincipalName)
				b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(upn)) })
				})
			})
		}
	})
}

// addKeyUsage writes the keyUsage BIT STRING as DER wants a named bit list:
// bit 0 first, trailing zero bits dropped.
func addKeyUsage(b *cryptobyte.Builder, ku x509.KeyUsage) {
	var bits []byte
	for i := 0; i < 9; i++ {
		if ku&(1<<i) == 0 {
			continue
		}
		for len(bits) <= i/8 {
			bits = append(bits, 0)
		}
		bits[i/8] |= 0x80 >> (i % 8)
	}
	last := bits[len(bits)-1]
	unused := 0
	for last&(1<<unused) == 0 {
		unused++
	}
	b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) {
		b.AddUint8(uint8(unused))
		b.AddBytes(bits)
	})
}

// extension returns a DER Extension whose extnValue is written by value.
func extension(oid asn1.ObjectIdentifier, critical bool, value cryptobyte.BuilderContinuation) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if critical { // DEFAULT FALSE: DER leaves it out when false
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
	return b.BytesOrPanic()
}

// attribute returns a DER Attribute with the single value written by value.
func attribute(oid asn1.ObjectIdentifier, value cryptobyte.BuilderContinuation) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.SET, value)
	})
	return b.BytesOrPanic()
}
