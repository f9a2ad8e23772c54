package pipeline_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// newDirectoryHarness is a harness whose pipeline reads the directory
// through the real generated Directory API client, from the emulator's
// Directory endpoints.
func newDirectoryHarness(t *testing.T, opts cpemulator.Options) *harness {
	t.Helper()
	h := newHarness(t, opts)
	srv := httptest.NewServer(h.emu)
	t.Cleanup(srv.Close)
	dir, err := directory.New(context.Background(), directory.Options{EmulatorHost: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	h.p.Directory = dir
	return h
}

// uploadedSubject is the subject common name of the certificate uploaded to name.
func (h *harness) uploadedCN(name string) string {
	h.t.Helper()
	block, _ := pem.Decode([]byte(h.snap(name).UploadedPEM))
	if block == nil {
		h.t.Fatalf("%s: no certificate uploaded", name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		h.t.Fatal(err)
	}
	return cert.Subject.CommonName
}

// Each directory variable, and each kind of fallback, fills the certificate
// from the emulator's directory through the real client; the device and the
// user are each read once per process, and not at all when the profile uses
// no directory variable (issue 14).
func TestDirectoryVariables(t *testing.T) {
	t.Parallel()
	h := newDirectoryHarness(t, cpemulator.Options{})
	const serial = "SNDIR42"
	// user is a user session of user id, with an affiliated device or none.
	user := func(id string, affiliated bool) cpemulator.ClientSpec {
		return cpemulator.ClientSpec{Kind: cpemulator.User, Key: cpemulator.ECP256, UserID: id, Email: "ada@example.com", DeviceID: "device-of-" + id, Serial: serial, Affiliated: affiliated}
	}
	tests := []struct {
		name string
		tmpl string
		spec cpemulator.ClientSpec
		// set replaces directory entries before the claim.
		device *cpemulator.DirectoryDevice
		user   *cpemulator.DirectoryUser
		want   string
		// wantDevice and wantUser are the Directory reads of the process.
		wantDevice, wantUser int
	}{
		{name: "asset id", tmpl: "${DEVICE_ASSET_ID}", want: "ASSET-" + serial, wantDevice: 1},
		{name: "annotated location", tmpl: "${DEVICE_ANNOTATED_LOCATION}", want: "HQ-1", wantDevice: 1},
		{name: "annotated user", tmpl: "${DEVICE_ANNOTATED_USER}", device: &cpemulator.DirectoryDevice{AnnotatedUser: "grace"}, want: "grace", wantDevice: 1},
		{name: "device org unit", tmpl: "${DEVICE_ORG_UNIT_PATH}", want: "/Devices", wantDevice: 1},
		{name: "all device variables in one field", tmpl: "${DEVICE_ASSET_ID} ${DEVICE_ANNOTATED_LOCATION} ${DEVICE_ORG_UNIT_PATH}", want: "ASSET-" + serial + " HQ-1 /Devices", wantDevice: 1},
		{name: "user org unit", tmpl: "${USER_ORG_UNIT_PATH}", spec: user("u-ou", false), want: "/Users", wantUser: 1},
		{name: "employee id", tmpl: "${USER_EMPLOYEE_ID}", spec: user("112233445566", false), want: "E445566", wantUser: 1},
		{name: "custom schema field", tmpl: "${USER_CUSTOM:Employment.costCenter}", spec: user("u-cc", false),
			user: &cpemulator.DirectoryUser{CustomSchemas: map[string]map[string]any{"Employment": {"costCenter": "CC-42"}, "Other": {"x": "y"}}}, want: "CC-42", wantUser: 1},
		{name: "custom number field", tmpl: "${USER_CUSTOM:Employment.level}", spec: user("u-level", false),
			user: &cpemulator.DirectoryUser{CustomSchemas: map[string]map[string]any{"Employment": {"level": 7}}}, want: "7", wantUser: 1},
		{name: "affiliated user's device", tmpl: "${DEVICE_ASSET_ID}/${USER_EMPLOYEE_ID}", spec: user("u-aff-778899", true), want: "ASSET-" + serial + "/E778899", wantDevice: 1, wantUser: 1},
		{name: "fallback to the serial", tmpl: "${DEVICE_ASSET_ID:DEVICE_SERIAL_NUMBER}", device: &cpemulator.DirectoryDevice{}, want: serial, wantDevice: 1},
		{name: "fallback not needed", tmpl: "${DEVICE_ASSET_ID:DEVICE_SERIAL_NUMBER}", want: "ASSET-" + serial, wantDevice: 1},
		{name: "fallback from the employee id", tmpl: "${USER_EMPLOYEE_ID:USER_EMAIL_NAME}", spec: user("u-noemp", false), user: &cpemulator.DirectoryUser{}, want: "ada", wantUser: 1},
		{name: "fallback from a custom field", tmpl: "${USER_CUSTOM:Employment.badge:USER_DIRECTORY_ID}", spec: user("u-badge", false), want: "u-badge", wantUser: 1},
		{name: "fallback from one directory variable to another", tmpl: "${DEVICE_ANNOTATED_USER:DEVICE_ASSET_ID}", device: &cpemulator.DirectoryDevice{AnnotatedAssetID: "A7"}, want: "A7", wantDevice: 1},
		{name: "no directory variable", tmpl: "${DEVICE_SERIAL_NUMBER}", want: serial},
	}
	for i, tc := range tests {
		ref := fmt.Sprintf("dir%d", i)
		h.p.Profiles[ref] = profile.Profile{Subject: profile.Subject{CommonName: tc.tmpl}}
		spec := tc.spec
		if spec.Kind == cpemulator.Device {
			spec = cpemulator.ClientSpec{Kind: cpemulator.Device, Key: cpemulator.ECP256, Serial: serial}
		}
		spec.ProfileRef = ref
		if spec.Kind == cpemulator.Device {
			spec.DeviceID = fmt.Sprintf("device-%d", i)
		}
		if tc.device != nil {
			h.emu.SetDirectoryDevice(spec.DeviceID, *tc.device)
		}
		if tc.user != nil {
			h.emu.SetDirectoryUser(spec.UserID, *tc.user)
		}
		reads := func() [2]int {
			return [2]int{h.emu.DirectoryCalls(cpemulator.MethodDirectoryDevice, ""), h.emu.DirectoryCalls(cpemulator.MethodDirectoryUser, "")}
		}
		before := reads()
		name, note := h.add(spec)
		if err := h.claim(note, 1); err != nil {
			t.Fatalf("%s: Claim: %v", tc.name, err)
		}
		h.drain()
		h.wantUploaded(name)
		if got := h.uploadedCN(name); got != tc.want {
			t.Errorf("%s: common name %q, want %q", tc.name, got, tc.want)
		}
		after := reads()
		got := [2]int{after[0] - before[0], after[1] - before[1]}
		if want := [2]int{tc.wantDevice, tc.wantUser}; got != want {
			t.Errorf("%s: Directory reads (device, user) = %v, want %v", tc.name, got, want)
		}
	}
	h.noViolations()
}

// A directory variable that is empty, without a fallback, fails the process
// with a message that names the field and the attribute to fill in.
func TestDirectoryEmptyValueFails(t *testing.T) {
	t.Parallel()
	h := newDirectoryHarness(t, cpemulator.Options{})
	tests := []struct {
		name, tmpl string
		kind       cpemulator.ClientKind
		want       string
	}{
		{"asset id", "${DEVICE_ASSET_ID}", cpemulator.Device,
			"the certificate field subject.commonName (${DEVICE_ASSET_ID}) needs ${DEVICE_ASSET_ID}, which is empty for this device or user: fill in the ChromeOS device's Asset ID (annotatedAssetId) in the Admin console"},
		{"last of a fallback chain", "${DEVICE_ANNOTATED_USER:DEVICE_ANNOTATED_LOCATION}", cpemulator.Device,
			"needs ${DEVICE_ANNOTATED_LOCATION}, which is empty for this device or user: fill in the ChromeOS device's location (annotatedLocation)"},
		{"employee id", "emp-${USER_EMPLOYEE_ID}", cpemulator.User,
			"the certificate field subject.commonName (emp-${USER_EMPLOYEE_ID}) needs ${USER_EMPLOYEE_ID}, which is empty for this device or user: fill in the user's Employee ID (externalIds of type organization)"},
		{"custom field", "${USER_CUSTOM:Employment.badge}", cpemulator.User,
			"fill in the user's custom attribute Employment.badge (customSchemas)"},
		{"device variable of an unaffiliated user", "${DEVICE_ASSET_ID}", cpemulator.User, "fill in the ChromeOS device's Asset ID (annotatedAssetId)"},
	}
	for i, tc := range tests {
		ref := fmt.Sprintf("empty%d", i)
		h.p.Profiles[ref] = profile.Profile{Subject: profile.Subject{CommonName: tc.tmpl}}
		spec := cpemulator.ClientSpec{Kind: tc.kind, Key: cpemulator.ECP256, ProfileRef: ref, DeviceID: fmt.Sprintf("device-%d", i), UserID: fmt.Sprintf("user-%d", i)}
		h.emu.SetDirectoryDevice(spec.DeviceID, cpemulator.DirectoryDevice{})
		h.emu.SetDirectoryUser(spec.UserID, cpemulator.DirectoryUser{})
		name, note := h.add(spec)
		if err := h.claim(note, 1); err != nil {
			t.Fatalf("%s: Claim: %v", tc.name, err)
		}
		h.drain()
		h.wantFailed(name, tc.want)
		if s := h.snap(name); s.SignDataCalls != 0 {
			t.Errorf("%s: %d signData calls, want 0", tc.name, s.SignDataCalls)
		}
	}
	h.noViolations()
}

// A 403 or 404 from the Directory API fails the process with what the
// administrator must do; a 429 or 5xx is an error of the claim step, which
// Pub/Sub delivers again, and the retry succeeds.
func TestDirectoryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		kind  cpemulator.ClientKind
		fault cpemulator.Fault
		// times the fault is answered before the endpoint serves.
		times int
		// want: the device's failure message ("" : the process uploads).
		want string
	}{
		{"device 403", cpemulator.Device, cpemulator.FaultPermissionDenied, 1, "The adapter's service account may not read ChromeOS devices in the Directory API"},
		{"device 404", cpemulator.Device, cpemulator.FaultNotFound, 1, "The Directory API does not know this ChromeOS device"},
		{"user 403", cpemulator.User, cpemulator.FaultPermissionDenied, 1, "The adapter's service account may not read users in the Directory API"},
		{"user 404", cpemulator.User, cpemulator.FaultNotFound, 1, "The Directory API does not know this user"},
		{"device 429", cpemulator.Device, cpemulator.FaultResourceExhausted, 2, ""},
		{"device 503", cpemulator.Device, cpemulator.FaultUnavailable, 1, ""},
		{"user 500", cpemulator.User, cpemulator.FaultInternal, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method := cpemulator.MethodDirectoryDevice
			if tc.kind == cpemulator.User {
				method = cpemulator.MethodDirectoryUser
			}
			var mu sync.Mutex
			left := tc.times
			h := newDirectoryHarness(t, cpemulator.Options{Fault: func(m, _ string) cpemulator.Fault {
				mu.Lock()
				defer mu.Unlock()
				if m != method || left == 0 {
					return cpemulator.NoFault
				}
				left--
				return tc.fault
			}})
			h.p.Profiles["dir"] = profile.Profile{Subject: profile.Subject{CommonName: "${DEVICE_ASSET_ID:USER_EMPLOYEE_ID}"}}
			name, note := h.add(cpemulator.ClientSpec{Kind: tc.kind, Key: cpemulator.ECP256, ProfileRef: "dir", Affiliated: true})
			err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: 1})
			if tc.want != "" {
				if err != nil {
					t.Fatalf("Claim: %v, want the failure reported", err)
				}
				h.drain()
				h.wantFailed(name, tc.want)
				if s := h.snap(name); s.SignDataCalls != 0 {
					t.Errorf("%d signData calls, want 0", s.SignDataCalls)
				}
				if got := h.emu.DirectoryCalls(method, ""); got != 1 {
					t.Errorf("%d Directory reads, want 1 (a permanent error is not retried)", got)
				}
				return
			}
			var de *directory.Error
			if !errors.As(err, &de) || !de.Transient {
				t.Fatalf("Claim: %v, want a transient Directory error", err)
			}
			if err := h.claim(note, tc.times+1); err != nil {
				t.Fatalf("Claim again: %v", err)
			}
			h.drain()
			h.wantUploaded(name)
			if got, want := h.emu.DirectoryCalls(method, ""), tc.times+1; got != want {
				t.Errorf("%d Directory reads, want %d (each failed one retried once)", got, want)
			}
		})
	}
}

// A Directory 429 on the claim's last delivery is quota, never the process's
// failure (invariant 7): a fresh task carries the claim on, and it uploads.
func TestDirectoryQuotaOnTheLastDeliveryIsNotAFailure(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	quota := true
	h := newDirectoryHarness(t, cpemulator.Options{Fault: func(m, _ string) cpemulator.Fault {
		mu.Lock()
		defer mu.Unlock()
		if m == cpemulator.MethodDirectoryDevice && quota {
			return cpemulator.FaultResourceExhausted
		}
		return cpemulator.NoFault
	}})
	h.p.Profiles["dir"] = profile.Profile{Subject: profile.Subject{CommonName: "${DEVICE_ASSET_ID}"}}
	name, note := h.add(cpemulator.ClientSpec{Kind: cpemulator.Device, Key: cpemulator.ECP256, ProfileRef: "dir"})
	if err := h.p.Claim(context.Background(), pipeline.Delivery{Body: note, Attempt: h.p.MaxAttempts}); err != nil {
		t.Fatalf("Claim on the last attempt: %v, want nil (a fresh task carries on)", err)
	}
	if rec := h.record(name); rec.State.Terminal() {
		t.Fatalf("state %s after a Directory 429 (last error %q), want the claim carried on", rec.State, rec.LastError)
	}
	mu.Lock()
	quota = false
	mu.Unlock()
	h.drain()
	h.wantUploaded(name)
}
