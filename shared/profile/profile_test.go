package profile

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
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
