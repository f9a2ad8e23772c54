package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The emulators, relative to the Cloud SDK's root directory.
const (
	firestoreBin = "platform/cloud-firestore-emulator/cloud_firestore_emulator"
	pubsubBin    = "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)

// SDKRootEnv names the environment variable that, when set, is the Cloud
// SDK's root directory (the one holding platform/). Without it the root is
// what `gcloud info` reports, then the usual install locations.
const SDKRootEnv = "CERTPROV_CLOUD_SDK_ROOT"

// defaultSDKRoots are where the Cloud SDK is installed by Debian's
// google-cloud-cli package and by the google-cloud-cli container images
// (gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators has /google-cloud-sdk).
var defaultSDKRoots = []string{"/usr/lib/google-cloud-sdk", "/google-cloud-sdk"}

// sdkRoots lists the candidate Cloud SDK roots, best first: $CERTPROV_CLOUD_SDK_ROOT
// (alone, when set: an explicit choice is never second-guessed), else the root
// `gcloud info` reports, then defaultSDKRoots.
func sdkRoots(getenv func(string) string, gcloudRoot func() (string, error)) []string {
	if r := getenv(SDKRootEnv); r != "" {
		return []string{r}
	}
	var roots []string
	if r, err := gcloudRoot(); err == nil && r != "" {
		roots = append(roots, r)
	}
	return append(roots, defaultSDKRoots...)
}

// gcloudSDKRoot asks gcloud where its SDK is installed.
func gcloudSDKRoot() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "gcloud", "info", "--format=value(installation.sdk_root)").Output()
	if err != nil {
		return "", fmt.Errorf("gcloud info: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// findInSDK returns the first of roots/rel that exists.
func findInSDK(roots []string, rel string) (string, error) {
	for _, r := range roots {
		p := filepath.Join(r, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s under none of %s (set %s to the Cloud SDK root): %w",
		rel, strings.Join(roots, ", "), SDKRootEnv, errNotInstalled)
}

// emulatorBin finds an emulator of the Cloud SDK.
func emulatorBin(rel string) (string, error) {
	return findInSDK(sdkRoots(os.Getenv, gcloudSDKRoot), rel)
}

var firestoreOnce, pubsubOnce once

// Firestore returns the host:port of a Firestore emulator (FIRESTORE_EMULATOR_HOST,
// or one started for this test binary). Use a project id of your own per test to
// keep data apart.
func Firestore(t testing.TB) string {
	t.Helper()
	addr, err := firestoreOnce.get("FIRESTORE_EMULATOR_HOST", func() (string, error) {
		bin, err := emulatorBin(firestoreBin)
		if err != nil {
			return "", err
		}
		port, err := FreePort()
		if err != nil {
			return "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		_, err = Start(context.Background(), "firestore", addr, 60*time.Second, bin, "start", "--host=127.0.0.1", fmt.Sprintf("--port=%d", port))
		return addr, err
	})
	if err != nil {
		Unavailable(t, "Firestore emulator", err)
	}
	return addr
}

// WipeFirestore deletes every document of project in the emulator at addr.
func WipeFirestore(t testing.TB, addr, project string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("http://%s/emulator/v1/projects/%s/databases/(default)/documents", addr, project), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("wipe firestore: %v", err)
	}
	resp.Body.Close()
}

// PubSub returns the host:port of a Pub/Sub emulator (PUBSUB_EMULATOR_HOST, or
// one started for this test binary). Its push subscriptions really deliver.
func PubSub(t testing.TB) string {
	t.Helper()
	addr, err := pubsubOnce.get("PUBSUB_EMULATOR_HOST", func() (string, error) {
		bin, err := emulatorBin(pubsubBin)
		if err != nil {
			return "", err
		}
		port, err := FreePort()
		if err != nil {
			return "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		_, err = Start(context.Background(), "pubsub", addr, 60*time.Second, bin, "--host=127.0.0.1", fmt.Sprintf("--port=%d", port))
		return addr, err
	})
	if err != nil {
		Unavailable(t, "Pub/Sub emulator", err)
	}
	return addr
}
