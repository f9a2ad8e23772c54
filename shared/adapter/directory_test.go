package adapter

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// The functions' Directory client goes to the API emulator with
// CERTPROV_API_EMULATOR_HOST, else to the real API, as DIRECTORY_SUBJECT when
// set; it is built at its first use only.
func TestDirectoryClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  config.Config
		want directory.Options
	}{
		{"emulator", config.Config{Emulated: true, APIEmulatorHost: "127.0.0.1:9", DirectorySubject: "admin@example.com"}, directory.Options{EmulatorHost: "127.0.0.1:9"}},
		{"own admin role", config.Config{}, directory.Options{}},
		{"domain-wide delegation", config.Config{DirectorySubject: "admin@example.com"}, directory.Options{Subject: "admin@example.com"}},
	}
	for _, tc := range tests {
		l := directoryClient(&tc.cfg)
		if diff := cmp.Diff(tc.want, l.opts); diff != "" {
			t.Errorf("%s: options (-want +got):\n%s", tc.name, diff)
		}
		if l.client != nil {
			t.Errorf("%s: client built before its first use", tc.name)
		}
	}

	emu := cpemulator.New(cpemulator.Options{})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	name, err := emu.AddClient(context.Background(), cpemulator.ClientSpec{Customer: "C1", DeviceID: "d1", Serial: "SN1", Key: cpemulator.ECP256})
	if err != nil || name == "" {
		t.Fatal(err)
	}
	l := directoryClient(&config.Config{Emulated: true, APIEmulatorHost: srv.Listener.Addr().String()})
	d, err := l.Device(context.Background(), "C1", "d1")
	if err != nil || d.AssetID != "ASSET-SN1" {
		t.Errorf("Device through the emulator: %+v, %v", d, err)
	}
}
