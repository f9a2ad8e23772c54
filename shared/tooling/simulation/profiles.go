package simulation

import (
	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

func defaultProfiles() map[string]profile.Profile {
	return map[string]profile.Profile{
		cpemulator.DefaultDeviceProfileRef: {
			Subject:         profile.Subject{CommonName: "${DEVICE_SERIAL_NUMBER}", Organization: []string{"Example Corp"}},
			SubjectAltNames: []profile.SAN{{Type: profile.SANURI, Value: "urn:chromeos:device:${DEVICE_DIRECTORY_ID}"}},
			Validity:        "720h",
		},
		cpemulator.DefaultUserProfileRef: {
			Subject:         profile.Subject{CommonName: "${USER_EMAIL}", Organization: []string{"Example Corp"}},
			SubjectAltNames: []profile.SAN{{Type: profile.SANEmail, Value: "${USER_EMAIL}"}, {Type: profile.SANUPN, Value: "${USER_EMAIL}"}},
			Validity:        "720h",
		},
	}
}
