package simulation

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// A local run whose profiles use directory variables uploads every
// certificate, filled from the emulator's directory through the real
// Directory API client (issue 14).
func TestLocalRunWithDirectoryVariables(t *testing.T) {
	t.Parallel()
	a := Default()
	dev := a.Profiles[cpemulator.DefaultDeviceProfileRef]
	dev.Subject.CommonName = "${DEVICE_ASSET_ID}"
	dev.Subject.OrganizationalUnit = []string{"${DEVICE_ANNOTATED_LOCATION}"}
	a.Profiles[cpemulator.DefaultDeviceProfileRef] = dev
	usr := a.Profiles[cpemulator.DefaultUserProfileRef]
	usr.Subject.OrganizationalUnit = []string{"${USER_EMPLOYEE_ID}"}
	a.Profiles[cpemulator.DefaultUserProfileRef] = usr
	o := Options{
		Clients:   6,
		Adapter:   &a,
		FastDelay: Range{Min: time.Millisecond, Max: 20 * time.Millisecond},
		Schedule:  pipeline.PollSchedule{Initial: 20 * time.Millisecond, Multiplier: 1.5, Max: 200 * time.Millisecond, Deadline: 30 * time.Second},
		Seed:      14,
	}
	w, err := Execute(context.Background(), &o)
	if err != nil {
		t.Fatal(err)
	}
	r := w.Report(&o)
	if r.Outcomes.Uploaded != o.Clients {
		t.Fatalf("outcomes %+v, want all %d uploaded", r.Outcomes, o.Clients)
	}
	devices := 0
	for _, s := range w.emu.Processes() {
		block, _ := pem.Decode([]byte(s.UploadedPEM))
		if block == nil {
			t.Fatalf("%s: no certificate", s.Name)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		ou := strings.Join(cert.Subject.OrganizationalUnit, ",")
		switch s.Kind {
		case cpemulator.Device:
			devices++
			if !strings.HasPrefix(cert.Subject.CommonName, "ASSET-") || ou != "HQ-1" {
				t.Errorf("%s: device certificate CN %q OU %q, want ASSET-<serial> and HQ-1", s.Name, cert.Subject.CommonName, ou)
			}
		case cpemulator.User:
			if !strings.HasPrefix(ou, "E") {
				t.Errorf("%s: user certificate OU %q, want the employee id", s.Name, ou)
			}
		}
	}
	if got := w.emu.DirectoryCalls(cpemulator.MethodDirectoryDevice, ""); got != devices {
		t.Errorf("%d device reads for %d devices, want one each", got, devices)
	}
}
