package directory_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// The statuses the reconciliation reads, through the generated client
// against the API emulator's Directory endpoints.
func TestDeviceAndUserStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, cpemulator.Options{})
	ctx := context.Background()
	read := func() []string {
		t.Helper()
		d, err := f.client.DeviceStatus(ctx, "C0dir", f.device)
		if err != nil {
			t.Fatalf("DeviceStatus: %v", err)
		}
		u, err := f.client.UserStatus(ctx, "ada@example.com")
		if err != nil {
			t.Fatalf("UserStatus: %v", err)
		}
		return []string{d, u}
	}
	for _, tc := range []struct {
		name         string
		device, user string
		want         []string
	}{
		{"active", "", "", []string{directory.StatusActive, directory.StatusActive}},
		{"deprovisioned, suspended", "DEPROVISIONED", "SUSPENDED", []string{directory.StatusDeprovisioned, directory.StatusSuspended}},
		{"disabled", "DISABLED", "ACTIVE", []string{directory.StatusDisabled, directory.StatusActive}},
		{"deleted", "DELETED", "DELETED", []string{directory.StatusDeleted, directory.StatusDeleted}},
	} {
		if tc.device != "" {
			f.emu.SetDeviceStatus(f.device, tc.device)
		}
		if tc.user != "" {
			f.emu.SetUserStatus(f.user, tc.user)
		}
		if diff := cmp.Diff(tc.want, read()); diff != "" {
			t.Errorf("%s: [device, user] (-want +got):\n%s", tc.name, diff)
		}
	}
}
