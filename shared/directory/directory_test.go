package directory_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// fixture is an emulator with one device and one user, and a client of its
// Directory endpoints that records the requests' URLs.
type fixture struct {
	emu    *cpemulator.Emulator
	client *directory.Client
	mu     sync.Mutex
	urls   []string
	device string
	user   string
}

func newFixture(t *testing.T, opts cpemulator.Options) *fixture {
	t.Helper()
	f := &fixture{emu: cpemulator.New(opts)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.urls = append(f.urls, r.URL.String())
		f.mu.Unlock()
		f.emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	var err error
	if f.client, err = directory.New(context.Background(), directory.Options{EmulatorHost: srv.URL}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.emu.AddClient(ctx, cpemulator.ClientSpec{Customer: "C0dir", Kind: cpemulator.User, Key: cpemulator.ECP256, UserID: "u1", Email: "ada@example.com", DeviceID: "d1", Serial: "SN1", Affiliated: true}); err != nil {
		t.Fatal(err)
	}
	f.device, f.user = "d1", "u1"
	return f
}

func TestDeviceAndUser(t *testing.T) {
	t.Parallel()
	f := newFixture(t, cpemulator.Options{})
	ctx := context.Background()
	d, err := f.client.Device(ctx, "C0dir", f.device)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&directory.Device{AssetID: "ASSET-SN1", Location: "HQ-1", AnnotatedUser: "ada@example.com", OrgUnitPath: "/Devices"}, d); diff != "" {
		t.Errorf("Device (-want +got):\n%s", diff)
	}
	f.emu.SetDirectoryUser(f.user, cpemulator.DirectoryUser{OrgUnitPath: "/Users/Lab", EmployeeID: "E7", CustomSchemas: map[string]map[string]any{
		"Employment": {"costCenter": "CC-1", "level": 3, "badges": []map[string]any{{"value": "B1"}, {"value": "B2"}}},
		"Secret":     {"x": "not asked for"},
	}})
	u, err := f.client.User(ctx, f.user, []string{"Employment.costCenter", "Employment.level", "Employment.badges", "Employment.missing"})
	if err != nil {
		t.Fatal(err)
	}
	want := &directory.User{OrgUnitPath: "/Users/Lab", EmployeeID: "E7", Custom: map[string]string{
		"Employment.costCenter": "CC-1", "Employment.level": "3", "Employment.badges": "B1", "Employment.missing": "",
	}}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("User (-want +got):\n%s", diff)
	}
	// The requests are the generated client's: the paths and parameters the
	// emulator checks, and only the schemas asked for.
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.urls) != 2 || !strings.HasPrefix(f.urls[0], "/admin/directory/v1/customer/C0dir/devices/chromeos/d1?") ||
		!strings.HasPrefix(f.urls[1], "/admin/directory/v1/users/u1?") || !strings.Contains(f.urls[1], "customFieldMask=Employment") || !strings.Contains(f.urls[1], "projection=custom") {
		t.Errorf("requests %q", f.urls)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     cpemulator.Fault
		user      bool
		code      int
		transient bool
		action    string
	}{
		{"device 403", cpemulator.FaultPermissionDenied, false, 403, false, "may not read ChromeOS devices"},
		{"user 403", cpemulator.FaultPermissionDenied, true, 403, false, "Users > Read"},
		{"device 404", cpemulator.FaultNotFound, false, 404, false, "does not know this ChromeOS device"},
		{"user 404", cpemulator.FaultNotFound, true, 404, false, "does not know this user"},
		{"429", cpemulator.FaultResourceExhausted, false, 429, true, ""},
		{"503", cpemulator.FaultUnavailable, true, 503, true, ""},
		{"500", cpemulator.FaultInternal, false, 500, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, cpemulator.Options{Fault: func(string, string) cpemulator.Fault { return tc.fault }})
			var err error
			if tc.user {
				_, err = f.client.User(context.Background(), f.user, nil)
			} else {
				_, err = f.client.Device(context.Background(), "C0dir", f.device)
			}
			var de *directory.Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v, want a *directory.Error", err)
			}
			if de.Code != tc.code || de.Transient != tc.transient || directory.Transient(err) != tc.transient {
				t.Errorf("code %d transient %v, want %d %v", de.Code, de.Transient, tc.code, tc.transient)
			}
			if tc.action != "" && !strings.Contains(de.Action(), tc.action) {
				t.Errorf("action %q, want it to contain %q", de.Action(), tc.action)
			}
		})
	}
}

// A device of another customer, and an unknown user, are 404 without any
// injected fault.
func TestUnknown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, cpemulator.Options{})
	ctx := context.Background()
	if _, err := f.client.Device(ctx, "C0other", f.device); directory.Transient(err) || err == nil {
		t.Errorf("device of another customer: %v, want a permanent error", err)
	}
	if _, err := f.client.User(ctx, "nobody@example.com", nil); directory.Transient(err) || err == nil {
		t.Errorf("unknown user: %v, want a permanent error", err)
	}
}
