package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The emulators are found wherever the Cloud SDK is installed: the
// google-cloud-cli:emulators image (Cloud Build's test step) has it under
// /google-cloud-sdk, Debian's package under /usr/lib/google-cloud-sdk.
func TestSDKRoots(t *testing.T) {
	noGcloud := func() (string, error) { return "", errors.New("gcloud: not found") }
	gcloudAt := func(root string) func() (string, error) {
		return func() (string, error) { return root, nil }
	}
	tests := []struct {
		name   string
		env    map[string]string
		gcloud func() (string, error)
		want   []string
	}{
		{name: "explicit root only", env: map[string]string{SDKRootEnv: "/opt/sdk"}, gcloud: gcloudAt("/elsewhere"), want: []string{"/opt/sdk"}},
		{name: "gcloud's root first", gcloud: gcloudAt("/google-cloud-sdk"), want: []string{"/google-cloud-sdk", "/usr/lib/google-cloud-sdk", "/google-cloud-sdk"}},
		{name: "no gcloud: the install locations", gcloud: noGcloud, want: []string{"/usr/lib/google-cloud-sdk", "/google-cloud-sdk"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sdkRoots(func(k string) string { return tt.env[k] }, tt.gcloud)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("sdkRoots (-want +got):\n%s", diff)
			}
		})
	}
}

// An SDK laid out as in the emulators image (platform/ under another root)
// is found; a missing emulator is errNotInstalled, naming where it looked.
func TestFindInSDK(t *testing.T) {
	other := t.TempDir()
	image := t.TempDir()
	bin := filepath.Join(image, firestoreBin)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := findInSDK([]string{other, image}, firestoreBin)
	if err != nil || got != bin {
		t.Errorf("findInSDK = %q, %v; want %q", got, err, bin)
	}
	_, err = findInSDK([]string{other, image}, pubsubBin)
	if !errors.Is(err, errNotInstalled) {
		t.Errorf("missing emulator: err %v, want errNotInstalled", err)
	}
}

// This machine's emulators are found the same way the tests start them.
func TestEmulatorBinOnThisMachine(t *testing.T) {
	for _, rel := range []string{firestoreBin, pubsubBin} {
		if _, err := emulatorBin(rel); err != nil {
			Unavailable(t, rel, err)
		}
	}
}
