// Package profile turns what a certificate should say (a generic profile from
// the adapter's config, or the SCEP profile inside a process) and the facts of
// one process into the CSR template the client is asked to sign.
package profile

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chromeos-certprov/adapter/shared/csr"
)

// Profile is a generic profile: the adapter's own settings for a
// profileAdapterConfigReference. String fields are templates (see Vars).
type Profile struct {
	Subject Subject `json:"subject"`
	// SubjectAltNames are requested in the CSR.
	SubjectAltNames []SAN `json:"subjectAltNames,omitempty"`
	// KeyUsages: KEY_USAGE_SIGNING, KEY_USAGE_KEY_ENCIPHERMENT. Default: both.
	KeyUsages []string `json:"keyUsages,omitempty"`
	// ExtendedKeyUsages: CLIENT_AUTH, SERVER_AUTH, EMAIL_PROTECTION, CODE_SIGNING.
	// Default: CLIENT_AUTH.
	ExtendedKeyUsages []string `json:"extendedKeyUsages,omitempty"`
	// Validity is the requested lifetime, e.g. "8760h". Empty: the CA decides.
	Validity string `json:"validity,omitempty"`
	// TemplateName names the CA's certificate template (Microsoft template
	// extension for NDES, a CAS template), where the CA has one.
	TemplateName string `json:"templateName,omitempty"`
}

// Subject holds the subject DN templates. An attribute left out is not in the DN;
// an attribute given must not render empty.
type Subject struct {
	CommonName         string   `json:"commonName,omitempty"`
	Organization       []string `json:"organization,omitempty"`
	OrganizationalUnit []string `json:"organizationalUnit,omitempty"`
	Locality           string   `json:"locality,omitempty"`
	Province           string   `json:"province,omitempty"`
	Country            string   `json:"country,omitempty"`
}

// SAN is one subject alternative name template.
type SAN struct {
	// Type: RFC822_NAME, DNS_NAME, OTHER_NAME_USER_PRINCIPAL_NAME, UNIFORM_RESOURCE_IDENTIFIER.
	Type  string `json:"type"`
	Value string `json:"value"`
}

// SAN types, as the API names them.
const (
	SANEmail = "RFC822_NAME"
	SANDNS   = "DNS_NAME"
	SANUPN   = "OTHER_NAME_USER_PRINCIPAL_NAME"
	SANURI   = "UNIFORM_RESOURCE_IDENTIFIER"
)

var keyUsages = map[string]x509.KeyUsage{
	"KEY_USAGE_SIGNING":          x509.KeyUsageDigitalSignature,
	"KEY_USAGE_KEY_ENCIPHERMENT": x509.KeyUsageKeyEncipherment,
}

var extKeyUsages = map[string]x509.ExtKeyUsage{
	"CLIENT_AUTH":      x509.ExtKeyUsageClientAuth,
	"SERVER_AUTH":      x509.ExtKeyUsageServerAuth,
	"EMAIL_PROTECTION": x509.ExtKeyUsageEmailProtection,
	"CODE_SIGNING":     x509.ExtKeyUsageCodeSigning,
}

// Variables that a template may use; the directory ones (directory.go) too.
var (
	knownVars = map[string]bool{
		"USER_EMAIL": true, "USER_EMAIL_NAME": true, "USER_EMAIL_DOMAIN": true,
		"USER_DIRECTORY_ID": true, "DEVICE_DIRECTORY_ID": true, "DEVICE_SERIAL_NUMBER": true,
		"CUSTOMER_ID": true, "PROCESS_ID": true, "PROFILE_ID": true,
	}
	varRef = regexp.MustCompile(`\$\{([^}]*)\}`)
)

// Vars are the facts of one process that templates can use.
type Vars map[string]string

// NewVars returns the variables of a process. USER_EMAIL_NAME and
// USER_EMAIL_DOMAIN are derived from the email.
func NewVars(customer, process, profileID, userEmail, userID, deviceID, serial string) Vars {
	v := Vars{
		"CUSTOMER_ID": customer, "PROCESS_ID": process, "PROFILE_ID": profileID,
		"USER_EMAIL": userEmail, "USER_DIRECTORY_ID": userID,
		"DEVICE_DIRECTORY_ID": deviceID, "DEVICE_SERIAL_NUMBER": serial,
	}
	if name, domain, ok := strings.Cut(userEmail, "@"); ok {
		v["USER_EMAIL_NAME"], v["USER_EMAIL_DOMAIN"] = name, domain
	}
	return v
}

// checkTemplate reports unknown variables and malformed references in s.
func checkTemplate(field, s string) error {
	var errs []error
	if strings.Count(s, "${") != len(varRef.FindAllString(s, -1)) {
		errs = append(errs, fmt.Errorf("%s: unterminated ${ in %q", field, s))
	}
	for _, m := range varRef.FindAllStringSubmatch(s, -1) {
		for _, name := range refNames(m[1]) {
			switch {
			case strings.HasPrefix(name, userCustomPrefix):
				if r := checkCustom(name); r != "" {
					errs = append(errs, fmt.Errorf("%s: %s", field, r))
				}
			case isDirectoryVar(name):
			case !knownVars[name]:
				errs = append(errs, fmt.Errorf("%s: unknown variable ${%s}", field, name))
			}
		}
	}
	return errors.Join(errs...)
}

// Expand substitutes the variables in s as they are. ${A:B} takes A, or B
// when A is empty. Text without variables is returned unchanged, so expanding
// text that Google already resolved is harmless. Expand does not check the
// values: Render and RenderScep do, for the field each lands in.
func Expand(s string, vars Vars) string {
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		for _, name := range refNames(ref[2 : len(ref)-1]) {
			if v := vars[name]; v != "" {
				return v
			}
		}
		return ""
	})
}

// Validate reports every problem with p at once.
func (p *Profile) Validate() error {
	var errs []error
	tmpl := func(field, s string) {
		if err := checkTemplate(field, s); err != nil {
			errs = append(errs, err)
		}
		if !utf8.ValidString(s) {
			errs = append(errs, fmt.Errorf("%s: the template is not valid UTF-8", field))
		} else if c := firstUnprintable(s); c >= 0 {
			errs = append(errs, fmt.Errorf("%s: the template holds the control or invisible character %U", field, c))
		}
	}
	tmpl("subject.commonName", p.Subject.CommonName)
	for i, o := range p.Subject.Organization {
		tmpl(fmt.Sprintf("subject.organization[%d]", i), o)
	}
	for i, o := range p.Subject.OrganizationalUnit {
		tmpl(fmt.Sprintf("subject.organizationalUnit[%d]", i), o)
	}
	tmpl("subject.locality", p.Subject.Locality)
	tmpl("subject.province", p.Subject.Province)
	tmpl("subject.country", p.Subject.Country)
	if c := p.Subject.Country; c != "" && !strings.Contains(c, "${") && len(c) != 2 {
		errs = append(errs, fmt.Errorf("subject.country: %q is not a two-letter country code", c))
	}
	for i, s := range p.SubjectAltNames {
		field := fmt.Sprintf("subjectAltNames[%d]", i)
		switch s.Type {
		case SANEmail, SANDNS, SANUPN, SANURI:
		default:
			errs = append(errs, fmt.Errorf("%s.type: unknown SAN type %q (want %s, %s, %s or %s)", field, s.Type, SANEmail, SANDNS, SANUPN, SANURI))
		}
		if s.Value == "" {
			errs = append(errs, fmt.Errorf("%s.value is empty", field))
		}
		tmpl(field+".value", s.Value)
	}
	if p.Subject.CommonName == "" && len(p.SubjectAltNames) == 0 {
		errs = append(errs, errors.New("subject.commonName and subjectAltNames are both empty: the certificate would name no one"))
	}
	for i, k := range p.KeyUsages {
		if _, ok := keyUsages[k]; !ok {
			errs = append(errs, fmt.Errorf("keyUsages[%d]: unknown key usage %q (want KEY_USAGE_SIGNING or KEY_USAGE_KEY_ENCIPHERMENT)", i, k))
		}
	}
	for i, k := range p.ExtendedKeyUsages {
		if _, ok := extKeyUsages[k]; !ok {
			errs = append(errs, fmt.Errorf("extendedKeyUsages[%d]: unknown extended key usage %q (want CLIENT_AUTH, SERVER_AUTH, EMAIL_PROTECTION or CODE_SIGNING)", i, k))
		}
	}
	if p.Validity != "" {
		if d, err := time.ParseDuration(p.Validity); err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("validity: %q is not a positive duration such as 8760h", p.Validity))
		}
	}
	return errors.Join(errs...)
}

// ValidityDuration is the parsed Validity (zero when unset).
func (p *Profile) ValidityDuration() time.Duration {
	d, _ := time.ParseDuration(p.Validity)
	return d
}

// EmptyFieldError says a template rendered empty for a process: the device
// message names the field.
type EmptyFieldError struct {
	Field    string
	Template string
}

func (e *EmptyFieldError) Error() string {
	return fmt.Sprintf("the certificate field %s (%s) is empty for this device or user", e.Field, e.Template)
}

// Render fills p's templates with vars.
func (p *Profile) Render(vars Vars) (csr.Template, error) {
	var t csr.Template
	var errs []error
	one := func(field string, k kind, tmpl string) string {
		if tmpl == "" {
			return ""
		}
		v, err := render(field, k, tmpl, vars)
		switch {
		case err != nil:
			errs = append(errs, err)
		case v == "":
			errs = append(errs, &EmptyFieldError{Field: field, Template: tmpl})
		}
		return v
	}
	many := func(field string, tmpls []string) []string {
		var out []string
		for i, s := range tmpls {
			if v := one(fmt.Sprintf("%s[%d]", field, i), kindSubject, s); v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	t.Subject = pkix.Name{
		CommonName:         one("subject.commonName", kindSubject, p.Subject.CommonName),
		Organization:       many("subject.organization", p.Subject.Organization),
		OrganizationalUnit: many("subject.organizationalUnit", p.Subject.OrganizationalUnit),
	}
	if v := one("subject.locality", kindSubject, p.Subject.Locality); v != "" {
		t.Subject.Locality = []string{v}
	}
	if v := one("subject.province", kindSubject, p.Subject.Province); v != "" {
		t.Subject.Province = []string{v}
	}
	if v := one("subject.country", kindSubject, p.Subject.Country); v != "" {
		t.Subject.Country = []string{v}
	}
	for i, s := range p.SubjectAltNames {
		v := one(fmt.Sprintf("subjectAltNames[%d]", i), sanKind(s.Type), s.Value)
		if v == "" {
			continue
		}
		addSAN(&t, s.Type, v)
	}
	kus := p.KeyUsages
	if len(kus) == 0 {
		kus = []string{"KEY_USAGE_SIGNING", "KEY_USAGE_KEY_ENCIPHERMENT"}
	}
	for _, k := range kus {
		t.KeyUsage |= keyUsages[k]
	}
	ekus := p.ExtendedKeyUsages
	if len(ekus) == 0 {
		ekus = []string{"CLIENT_AUTH"}
	}
	for _, k := range ekus {
		t.ExtKeyUsage = append(t.ExtKeyUsage, extKeyUsages[k])
	}
	t.MSTemplateName = p.TemplateName
	if err := errors.Join(errs...); err != nil {
		return csr.Template{}, err
	}
	return t, nil
}

func addSAN(t *csr.Template, typ, v string) {
	switch typ {
	case SANEmail:
		t.EmailAddresses = append(t.EmailAddresses, v)
	case SANDNS:
		t.DNSNames = append(t.DNSNames, v)
	case SANUPN:
		t.UserPrincipalNames = append(t.UserPrincipalNames, v)
	case SANURI:
		t.URIs = append(t.URIs, v)
	}
}

// Scep is the SCEP profile a process brings (the API's scepProfile).
type Scep struct {
	CommonName              string
	Organization            string
	OrganizationalUnits     []string
	Locality, State         string
	Country                 string
	SubjectAltNames         []SAN
	KeyUsages               []string
	CertificateTemplateName string
}

// RenderScep turns a process's SCEP profile into a CSR template, substituting
// variables (harmless if Google already did). Unknown SAN types and key usages
// are errors: the device is told which.
func RenderScep(s Scep, vars Vars) (csr.Template, error) {
	var t csr.Template
	var errs []error
	// A subject field that renders empty is left out.
	subject := func(field, tmpl string) string {
		v, err := render("scepProfile."+field, kindSubject, tmpl, vars)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	t.Subject.CommonName = subject("subjectCommonName", s.CommonName)
	if v := subject("organization", s.Organization); v != "" {
		t.Subject.Organization = []string{v}
	}
	for i, ou := range s.OrganizationalUnits {
		if v := subject(fmt.Sprintf("organizationalUnits[%d]", i), ou); v != "" {
			t.Subject.OrganizationalUnit = append(t.Subject.OrganizationalUnit, v)
		}
	}
	if v := subject("locality", s.Locality); v != "" {
		t.Subject.Locality = []string{v}
	}
	if v := subject("state", s.State); v != "" {
		t.Subject.Province = []string{v}
	}
	if v := subject("country", s.Country); v != "" {
		t.Subject.Country = []string{v}
	}
	for i, san := range s.SubjectAltNames {
		switch san.Type {
		case SANEmail, SANDNS, SANUPN, SANURI:
		default:
			errs = append(errs, fmt.Errorf("scepProfile.subjectAltNames[%d]: unsupported SAN type %q", i, san.Type))
			continue
		}
		field := fmt.Sprintf("scepProfile.subjectAltNames[%d]", i)
		v, err := render(field, sanKind(san.Type), san.Value, vars)
		switch {
		case err != nil:
			errs = append(errs, err)
			continue
		case v == "":
			errs = append(errs, &EmptyFieldError{Field: field, Template: san.Value})
			continue
		}
		addSAN(&t, san.Type, v)
	}
	for _, k := range s.KeyUsages {
		ku, ok := keyUsages[k]
		if !ok {
			errs = append(errs, fmt.Errorf("scepProfile.keyUsages: unsupported key usage %q", k))
			continue
		}
		t.KeyUsage |= ku
	}
	if t.Subject.CommonName == "" && len(t.DNSNames)+len(t.EmailAddresses)+len(t.URIs)+len(t.UserPrincipalNames) == 0 {
		errs = append(errs, &EmptyFieldError{Field: "scepProfile.subjectCommonName", Template: s.CommonName})
	}
	t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	t.MSTemplateName = s.CertificateTemplateName
	if err := errors.Join(errs...); err != nil {
		return csr.Template{}, err
	}
	return t, nil
}
