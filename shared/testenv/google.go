package testenv

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

const (
	firestoreBin = "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator"
	pubsubBin    = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)

var firestoreOnce, pubsubOnce once

// Firestore returns the host:port of a Firestore emulator (FIRESTORE_EMULATOR_HOST,
// or one started for this test binary). Use a project id of your own per test to
// keep data apart.
func Firestore(t testing.TB) string {
	t.Helper()
	addr, err := firestoreOnce.get("FIRESTORE_EMULATOR_HOST", func() (string, error) {
		bin, err := lookBin(firestoreBin)
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
		bin, err := lookBin(pubsubBin)
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
