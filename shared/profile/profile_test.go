package profile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/csr"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	user := NewVars("C1", "p1", "prof", "ada@example.com", "u1", "", "")
	device := NewVars("C1", "p1", "prof", "", "", "d1", "SN42")
	tests := []struct {
		name, tmpl string
		vars       Vars
		want       string
	}{
		{"plain", "no variables", user, "no variables"},
		{"email parts", "${USER_EMAIL_NAME} at ${USER_EMAIL_DOMAIN}", user, "ada at example.com"},
		{"fallback used", "${DEVICE_SERIAL_NUMBER:USER_EMAIL}", user, "ada@example.com"},
		{"fallback not needed", "${DEVICE_SERIAL_NUMBER:USER_EMAIL}", device, "SN42"},
		{"all empty", "${USER_EMAIL}", device, ""},
		{"already resolved text", "ada@example.com", device, "ada@example.com"},
	}
	for _, tc := range tests {
		if got := Expand(tc.tmpl, tc.vars); got != tc.want {
			t.Errorf("%s: Expand(%q) = %q, want %q", tc.name, tc.tmpl, got, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	p := Profile{
		Subject:           Subject{CommonName: "${DEVICE_SERIAL_NUMBER:USER_EMAIL}", Organization: []string{"Example"}, Country: "DE"},
		SubjectAltNames:   []SAN{{Type: SANEmail, Value: "${USER_EMAIL}"}, {Type: SANUPN, Value: "${USER_EMAIL}"}, {Type: SANDNS, Value: "${DEVICE_DIRECTORY_ID:PROCESS_ID}.devices.example.com"}, {Type: SANURI, Value: "urn:x:${CUSTOMER_ID}"}},
		KeyUsages:         []string{"KEY_USAGE_SIGNING"},
		ExtendedKeyUsages: []string{"CLIENT_AUTH", "EMAIL_PROTECTION"},
		TemplateName:      "ChromeOSUser",
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := p.Render(NewVars("C1", "p1", "prof", "ada@example.com", "u1", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	want := csr.Template{
		Subject:        pkix.Name{CommonName: "ada@example.com", Organization: []string{"Example"}, Country: []string{"DE"}},
		EmailAddresses: []string{"ada@example.com"}, UserPrincipalNames: []string{"ada@example.com"},
		DNSNames: []string{"p1.devices.example.com"}, URIs: []string{"urn:x:C1"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
		MSTemplateName: "ChromeOSUser",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Render (-want +got):\n%s", diff)
	}
	// A device has no user: the email SAN renders empty and is named.
	_, err = p.Render(NewVars("C1", "p1", "prof", "", "", "d1", "SN1"))
	var efe *EmptyFieldError
	if !errors.As(err, &efe) || !strings.Contains(err.Error(), "subjectAltNames[0]") {
		t.Errorf("Render for a device: %v, want an EmptyFieldError naming subjectAltNames[0]", err)
	}
}

func TestRenderDefaults(t *testing.T) {
	t.Parallel()
	p := Profile{Subject: Subject{CommonName: "x"}}
	got, err := p.Render(Vars{})
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || len(got.ExtKeyUsage) != 1 || got.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("defaults: key usage %v, EKU %v", got.KeyUsage, got.ExtKeyUsage)
	}
}

func TestRenderScep(t *testing.T) {
	t.Parallel()
	s := Scep{
		CommonName: "${USER_EMAIL}", Organization: "Example", OrganizationalUnits: []string{"IT"}, Locality: "Berlin", State: "BE", Country: "DE",
		SubjectAltNames:         []SAN{{Type: SANUPN, Value: "${USER_EMAIL}"}},
		KeyUsages:               []string{"KEY_USAGE_SIGNING", "KEY_USAGE_KEY_ENCIPHERMENT"},
		CertificateTemplateName: "Wifi",
	}
	got, err := RenderScep(s, NewVars("C", "p", "", "bo@example.com", "", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject.CommonName != "bo@example.com" || got.UserPrincipalNames[0] != "bo@example.com" || got.MSTemplateName != "Wifi" || got.Subject.Province[0] != "BE" {
		t.Errorf("RenderScep = %+v", got)
	}
	s.SubjectAltNames = []SAN{{Type: "IP_ADDRESS", Value: "1.2.3.4"}}
	s.KeyUsages = []string{"KEY_USAGE_CRL_SIGN"}
	if _, err := RenderScep(s, Vars{}); err == nil || !strings.Contains(err.Error(), "IP_ADDRESS") || !strings.Contains(err.Error(), "KEY_USAGE_CRL_SIGN") {
		t.Errorf("RenderScep with unsupported values: %v", err)
	}
}

// clientSPKI is an EC P-256 client key, so that rendered templates go through
// BuildRequestInfo as the pipeline sends them.
func clientSPKI(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return spki
}

// hostileCase is one field template and one value of ${DEVICE_SERIAL_NUMBER}.
type hostileCase struct {
	name   string
	typ    string // a SAN type, or "CN" for the subject common name
	tmpl   string
	serial string
	// want is the rendered value when it is accepted; wantField, when set,
	// is the field the error must name (the value is refused).
	want      string
	wantField string
}

func hostileCases() []hostileCase {
	const dns, email, upn, uri = SANDNS, SANEmail, SANUPN, SANURI
	long := strings.Repeat("a", 64)
	return []hostileCase{
		// DNS names: a variable supplies one label, never a wildcard or more labels.
		{name: "dns ok", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "SN-42_x", want: "SN-42_x.corp.example.com"},
		{name: "dns wildcard", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "*", wantField: "subjectAltNames[0]"},
		{name: "dns partial wildcard", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "a*", wantField: "subjectAltNames[0]"},
		{name: "dns extra label", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "a.b", wantField: "subjectAltNames[0]"},
		{name: "dns wildcard and label", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "*.evil", wantField: "subjectAltNames[0]"},
		{name: "dns NUL", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "x\x00.evil.com", wantField: "subjectAltNames[0]"},
		{name: "dns newline", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "\n", wantField: "subjectAltNames[0]"},
		{name: "dns confusable", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "\u0430dmin", wantField: "subjectAltNames[0]"},
		{name: "dns long label", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: long, wantField: "subjectAltNames[0]"},
		{name: "dns empty", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "", wantField: "subjectAltNames[0]"},
		{name: "dns whole name", typ: dns, tmpl: "${DEVICE_SERIAL_NUMBER}", serial: "evil.com", wantField: "subjectAltNames[0]"},
		{name: "dns literal wildcard kept", typ: dns, tmpl: "*.${DEVICE_SERIAL_NUMBER}.corp.example.com", serial: "sn1", want: "*.sn1.corp.example.com"},
		// Email addresses: a variable before the '@' supplies a local part, after it one label.
		{name: "email ok", typ: email, tmpl: "${DEVICE_SERIAL_NUMBER}@devices.example.com", serial: "o'brien.x+1", want: "o'brien.x+1@devices.example.com"},
		{name: "email second at", typ: email, tmpl: "${DEVICE_SERIAL_NUMBER}@devices.example.com", serial: "a@evil.com", wantField: "subjectAltNames[0]"},
		{name: "email NUL", typ: email, tmpl: "${DEVICE_SERIAL_NUMBER}@devices.example.com", serial: "x\x00.evil.com", wantField: "subjectAltNames[0]"},
		{name: "email newline", typ: email, tmpl: "${DEVICE_SERIAL_NUMBER}@devices.example.com", serial: "a\nb", wantField: "subjectAltNames[0]"},
		{name: "email domain label", typ: email, tmpl: "user@${DEVICE_SERIAL_NUMBER}.example.com", serial: "a.evil", wantField: "subjectAltNames[0]"},
		{name: "email domain wildcard", typ: email, tmpl: "user@${DEVICE_SERIAL_NUMBER}.example.com", serial: "*", wantField: "subjectAltNames[0]"},
		{name: "email whole value", typ: email, tmpl: "${DEVICE_SERIAL_NUMBER}", serial: "a@b.example.com", wantField: "subjectAltNames[0]"},
		{name: "email empty", typ: email, tmpl: "${DEVICE_SERIAL_NUMBER}@devices.example.com", serial: "", wantField: "subjectAltNames[0]"},
		// UPNs: the same shape; UTF-8 is allowed in the local part, controls and invisibles are not.
		{name: "upn ok", typ: upn, tmpl: "${DEVICE_SERIAL_NUMBER}@corp.example.com", serial: "jürgen", want: "jürgen@corp.example.com"},
		{name: "upn second at", typ: upn, tmpl: "${DEVICE_SERIAL_NUMBER}@corp.example.com", serial: "a@evil.com", wantField: "subjectAltNames[0]"},
		{name: "upn NUL", typ: upn, tmpl: "${DEVICE_SERIAL_NUMBER}@corp.example.com", serial: "x\x00.evil.com", wantField: "subjectAltNames[0]"},
		{name: "upn zero width", typ: upn, tmpl: "${DEVICE_SERIAL_NUMBER}@corp.example.com", serial: "a\u200bb", wantField: "subjectAltNames[0]"},
		{name: "upn domain label", typ: upn, tmpl: "user@${DEVICE_SERIAL_NUMBER}", serial: "evil.com", wantField: "subjectAltNames[0]"},
		// URIs: a variable in the path is percent-encoded; in the host it is one label; it never supplies the scheme.
		{name: "uri path encoded", typ: uri, tmpl: "https://corp.example.com/devices/${DEVICE_SERIAL_NUMBER}", serial: "a/../b?c#d e", want: "https://corp.example.com/devices/a%2F..%2Fb%3Fc%23d%20e"},
		{name: "uri urn encoded", typ: uri, tmpl: "urn:chromeos:device:${DEVICE_SERIAL_NUMBER}", serial: "x:y z/ü", want: "urn:chromeos:device:x%3Ay%20z%2F%C3%BC"},
		{name: "uri NUL", typ: uri, tmpl: "urn:chromeos:device:${DEVICE_SERIAL_NUMBER}", serial: "x\x00.evil.com", wantField: "subjectAltNames[0]"},
		{name: "uri newline", typ: uri, tmpl: "urn:chromeos:device:${DEVICE_SERIAL_NUMBER}", serial: "\n", wantField: "subjectAltNames[0]"},
		{name: "uri dot segment", typ: uri, tmpl: "https://corp.example.com/devices/${DEVICE_SERIAL_NUMBER}/cert", serial: "..", wantField: "subjectAltNames[0]"},
		{name: "uri host label", typ: uri, tmpl: "https://${DEVICE_SERIAL_NUMBER}.corp.example.com/", serial: "evil.com/x", wantField: "subjectAltNames[0]"},
		{name: "uri host userinfo", typ: uri, tmpl: "https://${DEVICE_SERIAL_NUMBER}.corp.example.com/", serial: "evil.com@", wantField: "subjectAltNames[0]"},
		{name: "uri scheme", typ: uri, tmpl: "${DEVICE_SERIAL_NUMBER}://corp.example.com/", serial: "https", wantField: "subjectAltNames[0]"},
		// Subject text: printable, no control or invisible characters.
		{name: "cn ok", typ: "CN", tmpl: "${DEVICE_SERIAL_NUMBER}", serial: "*.example.com, O=x", want: "*.example.com, O=x"},
		{name: "cn NUL", typ: "CN", tmpl: "${DEVICE_SERIAL_NUMBER}", serial: "victim.example.com\x00.evil.com", wantField: "subject.commonName"},
		{name: "cn newline", typ: "CN", tmpl: "${DEVICE_SERIAL_NUMBER}", serial: "a\nb", wantField: "subject.commonName"},
		{name: "cn only newline", typ: "CN", tmpl: "${DEVICE_SERIAL_NUMBER}", serial: "\n", wantField: "subject.commonName"},
		{name: "cn bidi override", typ: "CN", tmpl: "${DEVICE_SERIAL_NUMBER}", serial: "moc.live\u202e", wantField: "subject.commonName"},
		{name: "cn not UTF-8", typ: "CN", tmpl: "${DEVICE_SERIAL_NUMBER}", serial: "a\xff", wantField: "subject.commonName"},
		{name: "cn empty", typ: "CN", tmpl: "${DEVICE_SERIAL_NUMBER}", serial: "", wantField: "subject.commonName"},
	}
}

// scepField is how the SCEP profile names a field of hostileCase.
func scepField(f string) string {
	if f == "subject.commonName" {
		return "scepProfile.subjectCommonName"
	}
	return "scepProfile." + f
}

// TestRenderRefusesHostileValues: a variable's value must fit the field it
// lands in, or the process fails naming the field; the message does not
// quote the value.
func TestRenderRefusesHostileValues(t *testing.T) {
	t.Parallel()
	spki := clientSPKI(t)
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vars := NewVars("C1", "p1", "prof", "", "", "d1", tc.serial)
			p := Profile{Subject: Subject{CommonName: "device", Organization: []string{"Example"}}}
			s := Scep{CommonName: "device", Organization: "Example"}
			if tc.typ == "CN" {
				p.Subject.CommonName, s.CommonName = tc.tmpl, tc.tmpl
			} else {
				p.SubjectAltNames = []SAN{{Type: tc.typ, Value: tc.tmpl}}
				s.SubjectAltNames = []SAN{{Type: tc.typ, Value: tc.tmpl}}
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			for _, r := range []struct {
				kind, field string
				render      func() (csr.Template, error)
			}{
				{"generic", tc.wantField, func() (csr.Template, error) { return p.Render(vars) }},
				{"scep", scepField(tc.wantField), func() (csr.Template, error) { return RenderScep(s, vars) }},
			} {
				tmpl, err := r.render()
				if err == nil {
					// The pipeline builds the request next; its refusals count too.
					_, err = csr.BuildRequestInfo(spki, tmpl)
				}
				if tc.wantField == "" {
					if err != nil {
						t.Fatalf("%s: %v, want %q accepted", r.kind, err, tc.want)
					}
					got := tmpl.Subject.CommonName
					if tc.typ != "CN" {
						got = strings.Join(slices.Concat(tmpl.DNSNames, tmpl.EmailAddresses, tmpl.UserPrincipalNames, tmpl.URIs), ",")
					}
					if got != tc.want {
						t.Errorf("%s: rendered %q, want %q", r.kind, got, tc.want)
					}
					continue
				}
				if err == nil {
					t.Errorf("%s: accepted: CN %q, SANs %q %q %q %q", r.kind, tmpl.Subject.CommonName, tmpl.DNSNames, tmpl.EmailAddresses, tmpl.UserPrincipalNames, tmpl.URIs)
					continue
				}
				if !strings.Contains(err.Error(), r.field) {
					t.Errorf("%s: error %q does not name the field %s", r.kind, err, r.field)
				}
				if len(tc.serial) > 2 && strings.Contains(err.Error(), tc.serial) {
					t.Errorf("%s: error %q quotes the value", r.kind, err)
				}
			}
		})
	}
}

// TestRenderEmailVariables: USER_EMAIL may fill a whole address and
// USER_EMAIL_DOMAIN a host name (a domain of the customer's); neither may
// bring a wildcard, and nothing else may bring an '@' or a dot into a host.
func TestRenderEmailVariables(t *testing.T) {
	t.Parallel()
	spki := clientSPKI(t)
	tests := []struct {
		name, typ, tmpl, email string
		want                   string // "" when refused
	}{
		{"email whole", SANEmail, "${USER_EMAIL}", "ada@example.com", "ada@example.com"},
		{"email rebuilt", SANEmail, "${USER_EMAIL_NAME}+cros@${USER_EMAIL_DOMAIN}", "ada@corp.example.com", "ada+cros@corp.example.com"},
		{"upn whole", SANUPN, "${USER_EMAIL}", "ada@example.com", "ada@example.com"},
		{"dns under the domain", SANDNS, "${DEVICE_SERIAL_NUMBER}.${USER_EMAIL_DOMAIN}", "ada@corp.example.com", "SN1.corp.example.com"},
		{"uri host from the domain", SANURI, "https://${USER_EMAIL_DOMAIN}/u/${USER_EMAIL}", "ada@corp.example.com", "https://corp.example.com/u/ada@corp.example.com"},
		{"domain wildcard", SANDNS, "${USER_EMAIL_DOMAIN}", "ada@*.example.com", ""},
		{"email with wildcard domain", SANEmail, "${USER_EMAIL}", "ada@*.example.com", ""},
		{"email two ats", SANEmail, "${USER_EMAIL}", "ada@x@example.com", ""},
		{"email in a local part", SANEmail, "${USER_EMAIL}@corp.example.com", "ada@example.com", ""},
		{"email as a DNS name", SANDNS, "${USER_EMAIL}", "ada@example.com", ""},
		{"email name with a dot into a host", SANDNS, "${USER_EMAIL_NAME}.corp.example.com", "a.evil@example.com", ""},
		{"upn with space", SANUPN, "${USER_EMAIL}", "a da@example.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Profile{Subject: Subject{CommonName: "x"}, SubjectAltNames: []SAN{{Type: tc.typ, Value: tc.tmpl}}}
			tmpl, err := p.Render(NewVars("C1", "p1", "prof", tc.email, "u1", "d1", "SN1"))
			if err == nil {
				_, err = csr.BuildRequestInfo(spki, tmpl)
			}
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "subjectAltNames[0]") {
					t.Errorf("Render = %+v, %v; want an error naming subjectAltNames[0]", tmpl, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(slices.Concat(tmpl.DNSNames, tmpl.EmailAddresses, tmpl.UserPrincipalNames, tmpl.URIs), ","); got != tc.want {
				t.Errorf("rendered %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRenderVariableErrorMessage: the device reads this message (the
// pipeline puts it after "The certificate could not be filled in: ").
func TestRenderVariableErrorMessage(t *testing.T) {
	t.Parallel()
	p := Profile{SubjectAltNames: []SAN{{Type: SANDNS, Value: "${DEVICE_SERIAL_NUMBER:PROCESS_ID}.corp.example.com"}}}
	_, err := p.Render(NewVars("C1", "p1", "prof", "", "", "d1", "*"))
	want := "the certificate field subjectAltNames[0] (${DEVICE_SERIAL_NUMBER:PROCESS_ID}.corp.example.com) cannot take the value of ${DEVICE_SERIAL_NUMBER} for this device or user: it holds '*', and a DNS label holds only letters, digits, '-' and '_'"
	var ve *VariableError
	if !errors.As(err, &ve) || err.Error() != want {
		t.Errorf("Render error:\n got %v\nwant %s", err, want)
	}
}

func TestValidateRefusesControlCharacters(t *testing.T) {
	t.Parallel()
	p := Profile{
		Subject:         Subject{CommonName: "a\x00b", Organization: []string{"Ex\u202eample"}},
		SubjectAltNames: []SAN{{Type: SANDNS, Value: "host\n.example.com"}},
	}
	want := []string{
		"subject.commonName: the template holds the control or invisible character U+0000",
		"subject.organization[0]: the template holds the control or invisible character U+202E",
		"subjectAltNames[0].value: the template holds the control or invisible character U+000A",
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("Validate accepted control characters")
	}
	if diff := cmp.Diff(strings.Join(want, "\n"), err.Error()); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
}
