package profile

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNeedsOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tmpl []string
		want Needs
	}{
		{"none", []string{"${DEVICE_SERIAL_NUMBER}", "plain"}, Needs{}},
		{"device", []string{"${DEVICE_ASSET_ID:DEVICE_SERIAL_NUMBER}"}, Needs{Device: true}},
		{"device org unit", []string{"x", "${DEVICE_ORG_UNIT_PATH}"}, Needs{Device: true}},
		{"user", []string{"${USER_EMPLOYEE_ID}"}, Needs{User: true}},
		{"custom, sorted and once", []string{"${USER_CUSTOM:B.f}-${USER_CUSTOM:A.g:DEVICE_SERIAL_NUMBER}", "${USER_CUSTOM:B.f}"}, Needs{User: true, Custom: []string{"A.g", "B.f"}}},
		{"fallback to a device variable", []string{"${USER_ORG_UNIT_PATH:DEVICE_ANNOTATED_LOCATION}"}, Needs{Device: true, User: true}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, NeedsOf(tc.tmpl...)); diff != "" {
			t.Errorf("%s: NeedsOf(%q) (-want +got):\n%s", tc.name, tc.tmpl, diff)
		}
	}
}

func TestRenderDirectoryVariables(t *testing.T) {
	t.Parallel()
	vars := NewVars("C1", "p1", "prof", "ada@example.com", "u1", "d1", "SN42")
	vars[VarDeviceAssetID] = "ASSET-7"
	vars[VarDeviceAnnotatedLocation] = ""
	vars[UserCustomVar("Employment.costCenter")] = "CC12"
	tests := []struct {
		name, tmpl, want, wantErr string
	}{
		{"value", "${DEVICE_ASSET_ID}", "ASSET-7", ""},
		{"custom field", "${USER_CUSTOM:Employment.costCenter}", "CC12", ""},
		{"custom field with fallback", "${USER_CUSTOM:Employment.badge:DEVICE_SERIAL_NUMBER}", "SN42", ""},
		{"fallback", "${DEVICE_ANNOTATED_LOCATION:DEVICE_SERIAL_NUMBER}", "SN42", ""},
		{"empty inside text", "dev-${DEVICE_ANNOTATED_LOCATION}",
			"", "the certificate field subject.commonName (dev-${DEVICE_ANNOTATED_LOCATION}) needs ${DEVICE_ANNOTATED_LOCATION}, which is empty for this device or user: fill in the ChromeOS device's location (annotatedLocation) in the Admin console"},
		{"empty custom", "${USER_CUSTOM:Employment.badge}", "", "fill in the user's custom attribute Employment.badge (customSchemas)"},
		{"empty fallback chain ending in a directory variable", "${DEVICE_SERIAL_NUMBER:USER_EMPLOYEE_ID}", "SN42", ""},
	}
	for _, tc := range tests {
		p := Profile{Subject: Subject{CommonName: tc.tmpl}}
		got, err := p.Render(vars)
		if tc.wantErr != "" {
			var de *DirectoryValueError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: Render(%q) error = %v, want a DirectoryValueError with %q", tc.name, tc.tmpl, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Render(%q): %v", tc.name, tc.tmpl, err)
			continue
		}
		if got.Subject.CommonName != tc.want {
			t.Errorf("%s: Render(%q) = %q, want %q", tc.name, tc.tmpl, got.Subject.CommonName, tc.want)
		}
	}
}
