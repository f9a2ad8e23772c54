package pipeline_test

import (
	"testing"

	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// A device whose serial number would widen what the certificate names (a
// wildcard, an extra label, a NUL in the subject) fails before signData,
// and the device is told which field could not take it (issue 11 item 7).
func TestHostileVariableFailsNamingTheField(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	p := h.p.Profiles[cpemulator.DefaultDeviceProfileRef]
	p.Subject.CommonName = "device"
	p.SubjectAltNames = []profile.SAN{{Type: profile.SANDNS, Value: "${DEVICE_SERIAL_NUMBER}.corp.example.com"}}
	h.p.Profiles[cpemulator.DefaultDeviceProfileRef] = p
	h.p.Profiles["cn_serial"] = profile.Profile{Subject: profile.Subject{CommonName: "${DEVICE_SERIAL_NUMBER}"}}
	for _, tc := range []struct {
		serial, profileRef, want string
	}{
		{"*", "", "The certificate could not be filled in: the certificate field subjectAltNames[0] (${DEVICE_SERIAL_NUMBER}.corp.example.com) cannot take the value of ${DEVICE_SERIAL_NUMBER}"},
		{"a.b", "", "the certificate field subjectAltNames[0]"},
		{"victim.example.com\x00.evil.com", "cn_serial", "The certificate could not be filled in: the certificate field subject.commonName (${DEVICE_SERIAL_NUMBER}) cannot take the value of ${DEVICE_SERIAL_NUMBER} for this device or user: it holds the control or invisible character U+0000"},
	} {
		name, note := h.add(cpemulator.ClientSpec{Kind: cpemulator.Device, Key: cpemulator.ECP256, Serial: tc.serial, ProfileRef: tc.profileRef})
		if err := h.claim(note, 1); err != nil {
			t.Fatalf("Claim: %v", err)
		}
		h.drain()
		h.wantFailed(name, tc.want)
		if s := h.snap(name); s.SignDataCalls != 0 {
			t.Errorf("serial %q: %d signData calls, want 0", tc.serial, s.SignDataCalls)
		}
	}
	h.noViolations()
}
