package pipeline_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// TestRecordHoldsSubjectAndCertificate: the record of a process names its
// device and user (from the claim's read of the process) and the issued
// certificate's serial, subject and validity (from the ISSUED transition),
// for certprov find; a process failed at the claim is named too.
func TestRecordHoldsSubjectAndCertificate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	for _, tc := range []struct {
		name                  string
		spec                  cpemulator.ClientSpec
		device, serial, email string
	}{
		{"device", cpemulator.ClientSpec{DeviceID: "dev-0a1b", Serial: "5CD1234XYZ"}, "dev-0a1b", "5CD1234XYZ", ""},
		{"unaffiliated user", cpemulator.ClientSpec{Kind: cpemulator.User, Email: "ada@example.com"}, "", "", "ada@example.com"},
		{"affiliated user", cpemulator.ClientSpec{Kind: cpemulator.User, Email: "bob@example.com", Affiliated: true, DeviceID: "dev-2c3d", Serial: "SER2"},
			"dev-2c3d", "SER2", "bob@example.com"},
	} {
		name, note := h.add(tc.spec)
		if err := h.claim(note, 1); err != nil {
			t.Fatal(err)
		}
		h.drain()
		h.wantUploaded(name)
		rec := h.record(name)
		if rec.DeviceID != tc.device || rec.DeviceSerial != tc.serial || rec.UserEmail != tc.email {
			t.Errorf("%s: record names device %q serial %q user %q; want %q %q %q", tc.name, rec.DeviceID, rec.DeviceSerial, rec.UserEmail, tc.device, tc.serial, tc.email)
		}
		block, _ := pem.Decode([]byte(rec.CertificatePEM))
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if rec.CertificateSerial != fmt.Sprintf("%X", cert.SerialNumber) || rec.CertificateSubject != cert.Subject.String() ||
			!rec.CertificateNotBefore.Equal(cert.NotBefore) || !rec.CertificateNotAfter.Equal(cert.NotAfter) {
			t.Errorf("%s: record's certificate %s %q %s..%s; the certificate's %X %q %s..%s", tc.name,
				rec.CertificateSerial, rec.CertificateSubject, rec.CertificateNotBefore, rec.CertificateNotAfter,
				cert.SerialNumber, cert.Subject, cert.NotBefore, cert.NotAfter)
		}
	}

	// Claimed elsewhere: the record still says whose process it was.
	name, note := h.add(cpemulator.ClientSpec{ClaimedBy: "another-adapter", DeviceID: "dev-4e5f", Serial: "SER3"})
	if err := h.claim(note, 1); err != nil {
		t.Fatal(err)
	}
	rec := h.record(name)
	if rec.State != progress.StateClaimedElsewhere || rec.DeviceID != "dev-4e5f" || rec.DeviceSerial != "SER3" || !rec.CertificateNotAfter.Equal(time.Time{}) {
		t.Errorf("claimed elsewhere: %s, device %q serial %q", rec.State, rec.DeviceID, rec.DeviceSerial)
	}
}
