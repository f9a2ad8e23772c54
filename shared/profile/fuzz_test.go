package profile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/csr"
)

var sanTypes = []string{SANDNS, SANEmail, SANUPN, SANURI}

// fuzzClient is the client key the rendered requests are built for and
// signed with.
var fuzzClient = sync.OnceValues(func() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
})

// skeleton is tmpl with each variable replaced by what it may contribute to
// the structure of a name: USER_EMAIL_DOMAIN its host name, USER_EMAIL "v@"
// and its domain, every other variable a plain "v" (or nothing when empty).
// An accepted rendering has the structure of its skeleton: no more labels,
// '@', wildcards, path segments or URI parts than the administrator wrote.
func skeleton(tmpl string, vars Vars) string {
	return varRef.ReplaceAllStringFunc(tmpl, func(ref string) string {
		name, v := pick(ref[2:len(ref)-1], vars)
		switch {
		case v == "":
			return ""
		case name == varDomain:
			return v
		case name == varEmail:
			_, domain, _ := strings.Cut(v, "@")
			return "v@" + domain
		}
		return "v"
	})
}

// sameShape reports how rendered differs in structure from skel, a field of
// SAN type typ, or "".
func sameShape(typ, rendered, skel string) string {
	count := func(s string, subs ...string) []int {
		var n []int
		for _, sub := range subs {
			n = append(n, strings.Count(s, sub))
		}
		return n
	}
	switch typ {
	case SANDNS:
		if !slices.Equal(count(rendered, ".", "*"), count(skel, ".", "*")) {
			return "DNS labels or wildcards"
		}
	case SANEmail, SANUPN:
		at, skelAt := strings.LastIndex(rendered, "@"), strings.LastIndex(skel, "@")
		if strings.Count(rendered, "@") != strings.Count(skel, "@") || at < 0 || skelAt < 0 {
			return "'@'"
		}
		if !slices.Equal(count(rendered[at:], ".", "*"), count(skel[skelAt:], ".", "*")) {
			return "domain labels or wildcards"
		}
	case SANURI:
		r, err1 := url.Parse(rendered)
		s, err2 := url.Parse(strings.TrimSpace(skel))
		if err1 != nil || err2 != nil {
			return fmt.Sprintf("parse: %v, skeleton %v", err1, err2)
		}
		type shape struct {
			Scheme                    string
			User, Query, Fragment     bool
			HostDots, Slashes, Colons int
		}
		// The path as written: EscapedPath re-escapes the decoded path when
		// the written one holds a byte it would escape ('}'), and so turns a
		// variable's escaped "%2F" back into a separator the URI never had.
		rawPath := func(u *url.URL) string {
			if u.RawPath != "" {
				return u.RawPath
			}
			return u.Path
		}
		of := func(u *url.URL) shape {
			return shape{u.Scheme, u.User != nil, u.RawQuery != "" || u.ForceQuery, u.Fragment != "",
				strings.Count(u.Host, "."), strings.Count(rawPath(u), "/"), strings.Count(u.Opaque, ":")}
		}
		if diff := cmp.Diff(of(s), of(r)); diff != "" {
			return "URI structure (-skeleton +rendered):\n" + diff
		}
	}
	return ""
}

// FuzzRender renders a generic profile and the same fields as a SCEP profile
// with fuzzed templates and variable values (a device's serial number and
// directory id, a user's email, all of which the adapter does not control),
// then builds, signs and assembles the request with a real key. Seeded with
// the README and e2e example profiles and with hostile values. Whatever the
// input, nothing panics; a refusal names the field and never quotes the
// refused value; an accepted rendering has no more structure than the
// template (no wildcard, DNS label, '@' or URI part from a variable) and no
// control or invisible character in the subject; and whatever
// BuildRequestInfo accepts assembles into a CSR that crypto/x509 parses back
// with exactly the rendered names.
func FuzzRender(f *testing.F) {
	type seed struct {
		cn     string
		typ    uint8
		san    string
		serial string
		email  string
		devID  string
	}
	seeds := []seed{
		// README and shared/ca/e2e/testdata profiles.
		{"${DEVICE_SERIAL_NUMBER}", 3, "urn:chromeos:device:${DEVICE_DIRECTORY_ID}", "5CD1234XYZ", "", "0f8fad5b-d9cb-469f"},
		{"${USER_EMAIL}", 1, "${USER_EMAIL}", "", "ada@example.com", ""},
		{"${USER_EMAIL}", 2, "${USER_EMAIL}", "", "ada@example.com", ""},
		{"${USER_EMAIL_NAME:DEVICE_SERIAL_NUMBER}", 2, "${USER_EMAIL_NAME:DEVICE_SERIAL_NUMBER}@corp.example", "SN1", "bo@example.com", "d1"},
		{"device", 0, "${DEVICE_SERIAL_NUMBER}.${USER_EMAIL_DOMAIN}", "SN1", "ada@corp.example.com", ""},
		{"device", 0, "*.${DEVICE_SERIAL_NUMBER}.corp.example.com", "SN1", "", ""},
		{"device", 3, "https://${USER_EMAIL_DOMAIN}/u/${USER_EMAIL}?d=${DEVICE_DIRECTORY_ID}#x", "", "ada@corp.example.com", "d/1"},
		{"victim.example.com\x00.evil.com", 0, "host.example.com", "", "", ""},
	}
	for _, tc := range hostileCases() {
		s := seed{cn: "device", serial: tc.serial, devID: "d1", email: "ada@example.com"}
		if tc.typ == "CN" {
			s.cn, s.san = tc.tmpl, "urn:x:${DEVICE_DIRECTORY_ID}"
			s.typ = 3
		} else {
			s.typ, s.san = uint8(slices.Index(sanTypes, tc.typ)), tc.tmpl
		}
		seeds = append(seeds, s)
	}
	for _, s := range seeds {
		f.Add(s.cn, s.typ, s.san, s.serial, s.email, s.devID)
	}
	f.Fuzz(func(t *testing.T, cnTmpl string, typ uint8, sanTmpl, serial, email, devID string) {
		k, err := fuzzClient()
		if err != nil {
			t.Fatal(err)
		}
		spki, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		sanType := sanTypes[int(typ)%len(sanTypes)]
		vars := NewVars("C1", "p1", "prof", email, "u1", devID, serial)
		p := Profile{Subject: Subject{CommonName: cnTmpl}, SubjectAltNames: []SAN{{Type: sanType, Value: sanTmpl}}}
		s := Scep{CommonName: cnTmpl, SubjectAltNames: []SAN{{Type: sanType, Value: sanTmpl}}}
		renders := []struct {
			kind, cnField, sanField string
			render                  func() (csr.Template, error)
		}{
			{"scep", "scepProfile.subjectCommonName", "scepProfile.subjectAltNames[0]", func() (csr.Template, error) { return RenderScep(s, vars) }},
		}
		if p.Validate() == nil {
			renders = append(renders, struct {
				kind, cnField, sanField string
				render                  func() (csr.Template, error)
			}{"generic", "subject.commonName", "subjectAltNames[0]", func() (csr.Template, error) { return p.Render(vars) }})
		}
		for _, r := range renders {
			tmpl, err := r.render()
			if err != nil {
				if !strings.Contains(err.Error(), r.cnField) && !strings.Contains(err.Error(), r.sanField) {
					t.Fatalf("%s: the error names no field: %v", r.kind, err)
				}
				var ve *VariableError
				if errors.As(err, &ve) {
					v := vars[ve.Variable]
					if len(v) > 3 && strings.Contains(ve.Error(), v) && !strings.Contains(ve.Template, v) && !strings.Contains(ve.Field, v) {
						t.Fatalf("%s: the error quotes the refused value: %v", r.kind, err)
					}
				}
				continue
			}
			if !csr.IsPrintableText(tmpl.Subject.CommonName) {
				t.Fatalf("%s: subject common name %q holds a control or invisible character", r.kind, tmpl.Subject.CommonName)
			}
			rendered := slices.Concat(tmpl.DNSNames, tmpl.EmailAddresses, tmpl.UserPrincipalNames, tmpl.URIs)
			if len(rendered) != 1 {
				t.Fatalf("%s: rendered %d SANs from one template", r.kind, len(rendered))
			}
			if why := sameShape(sanType, rendered[0], skeleton(sanTmpl, vars)); why != "" {
				t.Fatalf("%s: %s %q rendered from %q with serial %q, email %q, device %q differs from the template in %s",
					r.kind, sanType, rendered[0], sanTmpl, serial, email, devID, why)
			}
			cri, err := csr.BuildRequestInfo(spki, tmpl)
			if err != nil {
				continue
			}
			digest := sha256.Sum256(cri)
			sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			der, err := csr.Assemble(cri, sig, csr.AlgorithmECDSASHA256)
			if err != nil {
				t.Fatalf("%s: Assemble: %v", r.kind, err)
			}
			req, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatalf("%s: ParseCertificateRequest: %v", r.kind, err)
			}
			for _, atv := range req.Subject.Names {
				if v, ok := atv.Value.(string); ok && !csr.IsPrintableText(v) {
					t.Fatalf("%s: the CSR's subject attribute %v holds %q", r.kind, atv.Type, v)
				}
			}
			if req.Subject.CommonName != tmpl.Subject.CommonName ||
				!slices.Equal(req.DNSNames, tmpl.DNSNames) || !slices.Equal(req.EmailAddresses, tmpl.EmailAddresses) ||
				len(req.URIs) != len(tmpl.URIs) {
				t.Fatalf("%s: the CSR names CN %q %q %q %v; the template CN %q %q %q %q", r.kind,
					req.Subject.CommonName, req.DNSNames, req.EmailAddresses, req.URIs,
					tmpl.Subject.CommonName, tmpl.DNSNames, tmpl.EmailAddresses, tmpl.URIs)
			}
		}
	})
}
