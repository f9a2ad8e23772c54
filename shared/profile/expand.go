package profile

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chromeos-certprov/adapter/shared/csr"
)

// Where a variable's value lands decides what it may hold. A value never
// widens what the certificate names: it cannot supply a wildcard, an extra
// DNS label, a second '@', URI structure or a control character. Only the
// administrator's literal template text can.

// kind is the kind of certificate field a template fills.
type kind int

const (
	kindSubject kind = iota // a subject attribute: printable text
	kindDNS                 // dNSName
	kindEmail               // rfc822Name
	kindUPN                 // otherName UPN
	kindURI                 // uniformResourceIdentifier
)

func sanKind(typ string) kind {
	switch typ {
	case SANDNS:
		return kindDNS
	case SANEmail:
		return kindEmail
	case SANUPN:
		return kindUPN
	case SANURI:
		return kindURI
	}
	return kindSubject
}

// The shapes of the variables' values. USER_EMAIL is an email address and
// USER_EMAIL_DOMAIN its domain (a domain of the customer's, verified by
// Google); every other variable is an identifier, which may fill one DNS
// label, a local part or a URI component, and no more.
const (
	varEmail  = "USER_EMAIL"
	varDomain = "USER_EMAIL_DOMAIN"
)

// VariableError says that a variable's value for this process does not fit
// the certificate field it lands in. The value itself is never quoted: it
// can be personal data, and it is what an attacker controls.
type VariableError struct {
	Field    string // the field, as the profile names it: subjectAltNames[0]
	Template string // the administrator's template of the field
	Variable string // the variable whose value was refused: DEVICE_SERIAL_NUMBER
	Reason   string // why, without the value
}

func (e *VariableError) Error() string {
	return fmt.Sprintf("the certificate field %s (%s) cannot take the value of ${%s} for this device or user: %s", e.Field, e.Template, e.Variable, e.Reason)
}

// FieldError says that a field rendered for this process is not a valid
// value of its kind (such as a DNS name with an empty label because a
// variable was empty).
type FieldError struct {
	Field    string
	Template string
	Err      error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("the certificate field %s (%s) is not valid for this device or user: %v", e.Field, e.Template, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// render substitutes the variables of tmpl for a field of kind k, checking
// each value where it lands, and then checks the whole result. A result that
// is empty is returned as "" without error (the callers decide).
func render(field string, k kind, tmpl string, vars Vars) (string, error) {
	var out strings.Builder
	literalAt := strings.Contains(literalText(tmpl), "@")
	last := 0
	for _, m := range varRef.FindAllStringSubmatchIndex(tmpl, -1) {
		out.WriteString(tmpl[last:m[0]])
		last = m[1]
		name, v := pick(tmpl[m[2]:m[3]], vars)
		if v == "" && isDirectoryVar(name) {
			return "", &DirectoryValueError{Field: field, Template: tmpl, Variable: name, Attribute: attribute(name)}
		}
		fits, reason := fit(k, out.String(), literalAt, name, v)
		if reason != "" {
			return "", &VariableError{Field: field, Template: tmpl, Variable: name, Reason: reason}
		}
		out.WriteString(fits)
	}
	out.WriteString(tmpl[last:])
	v := strings.TrimSpace(out.String())
	if v == "" {
		return "", nil
	}
	if err := checkWhole(k, v); err != nil {
		return "", &FieldError{Field: field, Template: tmpl, Err: err}
	}
	return v, nil
}

// pick returns the first variable of a ${A:B} reference with a value, or the
// last one named when none has.
func pick(ref string, vars Vars) (string, string) {
	names := refNames(ref)
	for _, n := range names {
		if v := vars[n]; v != "" {
			return n, v
		}
	}
	return names[len(names)-1], ""
}

// literalText is tmpl without its variable references.
func literalText(tmpl string) string {
	return varRef.ReplaceAllString(tmpl, "")
}

// fit checks the value v of variable name where it lands in a field of kind
// k, after the text before (literal text and earlier values). It returns the
// text to insert, or why v does not fit.
func fit(k kind, before string, literalAt bool, name, v string) (string, string) {
	if !utf8.ValidString(v) {
		return "", "it is not valid UTF-8"
	}
	if c := firstUnprintable(v); c >= 0 {
		return "", fmt.Sprintf("it holds the control or invisible character %U", c)
	}
	switch k {
	case kindSubject:
		return v, ""
	case kindDNS:
		return v, hostPart(name, v)
	case kindEmail, kindUPN:
		if strings.Contains(before, "@") {
			return v, hostPart(name, v) // in the domain
		}
		if name == varEmail && !literalAt {
			// The value brings the '@': it must be a whole address.
			local, domain, _ := strings.Cut(v, "@")
			if r := localPart(k, local); r != "" {
				return "", r
			}
			return v, hostPart(varDomain, domain)
		}
		return v, localPart(k, v)
	case kindURI:
		return uriPart(before, name, v)
	}
	return v, ""
}

// hostPart checks a value that lands in a host name: one DNS label, or for
// USER_EMAIL_DOMAIN a host name; never a wildcard.
func hostPart(name, v string) string {
	if v == "" {
		return "" // the whole name is checked after
	}
	if name != varDomain {
		if strings.Contains(v, ".") {
			return "it holds '.', and a variable may supply only one DNS label here"
		}
		return labelProblem(v)
	}
	if len(v) > 253 {
		return fmt.Sprintf("it is %d characters long, longer than a DNS name may be (253)", len(v))
	}
	for _, l := range strings.Split(v, ".") {
		if r := labelProblem(l); r != "" {
			return r
		}
	}
	return ""
}

func labelProblem(l string) string {
	switch {
	case l == "":
		return "it holds an empty DNS label"
	case len(l) > 63:
		return fmt.Sprintf("it makes a DNS label of %d characters, more than 63", len(l))
	case l[0] == '-' || l[len(l)-1] == '-':
		return "it makes a DNS label that starts or ends with '-'"
	}
	for _, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Sprintf("it holds %s, and a DNS label holds only letters, digits, '-' and '_'", describe(c))
		}
	}
	return ""
}

// localPart checks a value that lands before the '@' of an email address
// (dot-atom text, ASCII) or of a UPN (printable UTF-8 without spaces).
func localPart(k kind, v string) string {
	for _, c := range v {
		switch {
		case c == '@':
			return "it holds '@', which would start the domain"
		case k == kindUPN:
			if unicode.IsSpace(c) {
				return fmt.Sprintf("it holds %s, which a user principal name cannot", describe(c))
			}
		case !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".!#$%&'*+-/=?^_`{|}~", c)):
			return fmt.Sprintf("it holds %s, which the local part of an email address cannot", describe(c))
		}
	}
	return ""
}

// uriPart checks or percent-encodes a value that lands in a URI: never in
// the scheme; in the authority only a DNS label (or USER_EMAIL_DOMAIN); in
// the rest percent-encoded (RFC 3986 unreserved characters and '@' kept),
// and never a whole "." or ".." segment.
func uriPart(before, name, v string) (string, string) {
	if !strings.Contains(before, ":") {
		return "", "a variable cannot supply the scheme of a URI"
	}
	if i := strings.Index(before, "://"); i >= 0 && !strings.ContainsAny(before[i+3:], "/?#") {
		return v, hostPart(name, v)
	}
	if v == "." || v == ".." {
		return "", "it is a dot segment ('.' or '..') of a URI path"
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~@", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String(), ""
}

// checkWhole checks a rendered field as the request will carry it.
func checkWhole(k kind, v string) error {
	switch k {
	case kindDNS:
		return csr.CheckDNSName(v)
	case kindEmail:
		return csr.CheckEmail(v)
	case kindUPN:
		return csr.CheckUPN(v)
	case kindURI:
		return csr.CheckURI(v)
	}
	if !csr.IsPrintableText(v) {
		return fmt.Errorf("it holds the control or invisible character %U", firstUnprintable(v))
	}
	return nil
}

// firstUnprintable returns the first rune of s that is not printable text
// (csr.IsPrintableText), or -1.
func firstUnprintable(s string) rune {
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return c
		}
	}
	return -1
}

// describe names a character without quoting anything around it.
func describe(c rune) string {
	if c < utf8.RuneSelf && unicode.IsPrint(c) {
		return fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf("%#U", c)
}
