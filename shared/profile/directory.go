package profile

import (
	"fmt"
	"slices"
	"strings"
)

// Directory variables: their values come from the Admin SDK Directory API,
// looked up only for a process whose profile uses one (see Needs).
const (
	VarDeviceAssetID           = "DEVICE_ASSET_ID"
	VarDeviceAnnotatedLocation = "DEVICE_ANNOTATED_LOCATION"
	VarDeviceAnnotatedUser     = "DEVICE_ANNOTATED_USER"
	VarDeviceOrgUnitPath       = "DEVICE_ORG_UNIT_PATH"
	VarUserOrgUnitPath         = "USER_ORG_UNIT_PATH"
	VarUserEmployeeID          = "USER_EMPLOYEE_ID"
	varUserCustom              = "USER_CUSTOM"
	userCustomPrefix           = varUserCustom + ":"
)

// Whose attribute a directory variable is, in messages.
const (
	deviceAttribute = "the ChromeOS device's "
	userAttrib      = "the user's "
)

// directoryVars maps each directory variable to the attribute an
// administrator fills in, as the Directory API and the Admin console name it.
var directoryVars = map[string]string{
	VarDeviceAssetID:           deviceAttribute + "Asset ID (annotatedAssetId)",
	VarDeviceAnnotatedLocation: deviceAttribute + "location (annotatedLocation)",
	VarDeviceAnnotatedUser:     deviceAttribute + "user (annotatedUser)",
	VarDeviceOrgUnitPath:       deviceAttribute + "organizational unit (orgUnitPath)",
	VarUserOrgUnitPath:         userAttrib + "organizational unit (orgUnitPath)",
	VarUserEmployeeID:          userAttrib + "Employee ID (externalIds of type organization)",
}

// UserCustomVar is the variable name of custom schema field "Schema.field":
// USER_CUSTOM:Schema.field, as written in ${USER_CUSTOM:Schema.field}.
func UserCustomVar(schemaField string) string { return userCustomPrefix + schemaField }

// refNames splits the inside of ${...} into the variables it names, in order
// of preference: "A:B" is A, else B; USER_CUSTOM takes the next part as its
// schema field, so "USER_CUSTOM:S.f:DEVICE_SERIAL_NUMBER" is
// USER_CUSTOM:S.f, else DEVICE_SERIAL_NUMBER.
func refNames(ref string) []string {
	parts := strings.Split(ref, ":")
	var names []string
	for i := 0; i < len(parts); i++ {
		if parts[i] == varUserCustom && i+1 < len(parts) {
			names = append(names, userCustomPrefix+parts[i+1])
			i++
			continue
		}
		names = append(names, parts[i])
	}
	return names
}

// isDirectoryVar reports whether name is a directory variable.
func isDirectoryVar(name string) bool {
	_, ok := directoryVars[name]
	return ok || strings.HasPrefix(name, userCustomPrefix)
}

// checkCustom reports what is wrong with a USER_CUSTOM:Schema.field name.
func checkCustom(name string) string {
	sf := strings.TrimPrefix(name, userCustomPrefix)
	schema, field, ok := strings.Cut(sf, ".")
	if !ok || schema == "" || field == "" || strings.Contains(field, ".") {
		return fmt.Sprintf("${%s} must name one custom schema field as USER_CUSTOM:Schema.field", name)
	}
	for _, c := range sf {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Sprintf("${%s}: a schema or field name holds only letters, digits, '_' and '-'", name)
		}
	}
	return ""
}

// attribute names the directory attribute behind a directory variable.
func attribute(name string) string {
	if a, ok := directoryVars[name]; ok {
		return a
	}
	return userAttrib + "custom attribute " + strings.TrimPrefix(name, userCustomPrefix) + " (customSchemas)"
}

// Needs says which Directory API look-ups a process's templates need.
type Needs struct {
	Device bool
	User   bool
	// Custom are the user's custom schema fields, as "Schema.field", sorted.
	Custom []string
}

// Any reports whether any look-up is needed.
func (n Needs) Any() bool { return n.Device || n.User }

// NeedsOf returns the look-ups that templates use.
func NeedsOf(templates ...string) Needs {
	var n Needs
	for _, t := range templates {
		for _, m := range varRef.FindAllStringSubmatch(t, -1) {
			for _, name := range refNames(m[1]) {
				switch {
				case strings.HasPrefix(name, userCustomPrefix):
					n.User = true
					if sf := strings.TrimPrefix(name, userCustomPrefix); !slices.Contains(n.Custom, sf) {
						n.Custom = append(n.Custom, sf)
					}
				case strings.HasPrefix(name, "DEVICE_") && isDirectoryVar(name):
					n.Device = true
				case isDirectoryVar(name):
					n.User = true
				}
			}
		}
	}
	slices.Sort(n.Custom)
	return n
}

// Needs returns the look-ups p's templates use.
func (p *Profile) Needs() Needs {
	t := []string{p.Subject.CommonName, p.Subject.Locality, p.Subject.Province, p.Subject.Country}
	t = append(t, p.Subject.Organization...)
	t = append(t, p.Subject.OrganizationalUnit...)
	for _, s := range p.SubjectAltNames {
		t = append(t, s.Value)
	}
	return NeedsOf(t...)
}

// Needs returns the look-ups s's templates use (Google usually resolves
// them before; a template it left is resolved here).
func (s Scep) Needs() Needs {
	t := []string{s.CommonName, s.Organization, s.Locality, s.State, s.Country}
	t = append(t, s.OrganizationalUnits...)
	for _, san := range s.SubjectAltNames {
		t = append(t, san.Value)
	}
	return NeedsOf(t...)
}

// DirectoryValueError says that a directory variable a field needs, without
// a fallback, is empty for this device or user: an administrator must fill
// in the attribute, or give the variable a fallback.
type DirectoryValueError struct {
	Field     string // subject.commonName
	Template  string // the administrator's template of the field
	Variable  string // DEVICE_ASSET_ID
	Attribute string // the ChromeOS device's Asset ID (annotatedAssetId)
}

func (e *DirectoryValueError) Error() string {
	return fmt.Sprintf("the certificate field %s (%s) needs ${%s}, which is empty for this device or user: fill in %s in the Admin console, or give the variable a fallback such as ${%s:DEVICE_SERIAL_NUMBER}",
		e.Field, e.Template, e.Variable, e.Attribute, e.Variable)
}

// IsDirectoryVariable reports whether name (as in ${name}; a custom schema
// field as USER_CUSTOM:Schema.field) is a well-formed directory variable.
func IsDirectoryVariable(name string) bool {
	if strings.HasPrefix(name, userCustomPrefix) {
		return checkCustom(name) == ""
	}
	return isDirectoryVar(name)
}
