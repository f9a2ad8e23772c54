package claim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
)

// Push request bodies from Pub/Sub's documentation, byte for byte where the
// documentation's bytes are known.
const (
	// cloud.google.com/pubsub/docs/push, "How push endpoints receive
	// messages" (wrapped payload): the body of a POST request to a push
	// endpoint. Whitespace as the page renders it.
	documentedPush = `{
    "message": {
        "attributes": {
            "key": "value"
        },
        "data": "SGVsbG8gQ2xvdWQgUHViL1N1YiEgSGVyZSBpcyBteSBtZXNzYWdlIQ==",
        "messageId": "2070443601311540",
        "message_id": "2070443601311540",
        "publishTime": "2021-02-26T19:13:55.749Z",
        "publish_time": "2021-02-26T19:13:55.749Z"
    },
   "subscription": "projects/myproject/subscriptions/mysubscription"
}`
	// The same page's earlier protocol example (snake case only).
	documentedPushV1 = `{
  "message": {
    "attributes": {
      "key": "value"
    },
    "data": "SGVsbG8gQ2xvdWQgUHViL1N1YiEgSGVyZSBpcyBteSBtZXNzYWdlIQ==",
    "message_id": "136969346945"
  },
  "subscription": "projects/myproject/subscriptions/mysubscription"
}`
)

// withAttempt is a documented body with the top-level deliveryAttempt that
// Pub/Sub adds for a subscription with a dead-letter policy.
func withAttempt(body string, n int) string {
	i := strings.LastIndex(body, "}")
	return body[:i] + `,
   "deliveryAttempt": ` + strconv.Itoa(n) + "\n}"
}

// TestDeployedClaimProcessWritesOnlyJSON serves ClaimProcess as deployed
// (registered by this package, FUNCTION_TARGET and K_SERVICE set, configured
// from the environment, served by functions-framework-go) and pushes it the
// documented bodies at the function's URL, as terraform's push subscription
// does. Each is acknowledged (its data is not a notification), the delivery
// attempt reaches the claim, and every line on stdout is a JSON log entry:
// nothing like the framework's "WARNING: failed to extract Pub/Sub topic name".
func TestDeployedClaimProcessWritesOnlyJSON(t *testing.T) {
	for k, v := range map[string]string{
		"FUNCTION_TARGET":            EntryPoint,
		"K_SERVICE":                  "certprov-claim",
		"GOOGLE_CLOUD_PROJECT":       "claim-test",
		"CERTPROV_CONFIG":            `{"allowedCustomers":["C0claim"],"caConnections":{"dev":{"type":"dev"}}}`,
		"CALLER_INSTANCE_ID":         "certprov-claim-test",
		"LOG_LEVEL":                  "debug",
		"TASKS_MAX_ATTEMPTS":         "10",
		"TASKS_POLL_QUEUE":           "projects/claim-test/locations/us-central1/queues/certprov-poll",
		"TASKS_ISSUE_QUEUE":          "projects/claim-test/locations/us-central1/queues/certprov-issue",
		"POLL_SIGNATURE_URL":         "https://certprov-poll-123456789012.us-central1.run.app",
		"ISSUE_CERTIFICATE_URL":      "https://certprov-issue-123456789012.us-central1.run.app",
		"TASKS_SERVICE_ACCOUNT":      "certprov-tasks@claim-test.iam.gserviceaccount.com",
		"CERTPROV_API_EMULATOR_HOST": "127.0.0.1:9",
		"FIRESTORE_EMULATOR_HOST":    "127.0.0.1:9",
		"CLOUD_TASKS_EMULATOR_HOST":  "127.0.0.1:9",
		"NO_PROXY":                   "*",
	} {
		t.Setenv(k, v)
	}
	// Everything written to stdout from here on: the framework's and the
	// adapter's (its logger takes os.Stdout when the first request builds it).
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()
	captured := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); captured <- b }()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	go func() { _ = funcframework.StartHostPort("127.0.0.1", port) }()
	waitListening(t, addr)

	tests := []struct {
		name, path, body string
		wantAttempt      int
	}{
		{"documented body at the function's URL", "/", documentedPush, 0},
		{"documented body with the delivery attempt", "/", withAttempt(documentedPush, 7), 7},
		{"earlier documented body", "/", documentedPushV1, 0},
		{"a path that names no topic", "/anything", withAttempt(documentedPushV1, 2), 2},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln") // what an authenticated push carries
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Errorf("%s: HTTP %d %q, want 2xx (acknowledged)", tc.name, resp.StatusCode, b)
		}
	}
	os.Stdout = stdout
	w.Close()
	out := <-captured

	var attempts []int
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue // the framework's flush after each request when K_SERVICE is set
		}
		var entry map[string]any
		if err := json.Unmarshal(line, &entry); err != nil {
			t.Errorf("stdout line is not JSON: %q", line)
			continue
		}
		if strings.Contains(string(line), "Bearer") {
			t.Errorf("a log entry carries the push's token: %s", line)
		}
		if entry["message"] == "malformed notification acknowledged" {
			if entry["severity"] != "ERROR" {
				t.Errorf("a malformed message is logged at %v, want ERROR", entry["severity"])
			}
			n, _ := entry["delivery_attempt"].(float64)
			attempts = append(attempts, int(n))
		}
	}
	want := fmt.Sprint([]int{0, 7, 0, 2})
	if fmt.Sprint(attempts) != want {
		t.Errorf("delivery attempts seen by the claim step: %v, want %s; stdout:\n%s", attempts, want, out)
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for range 500 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("functions-framework-go did not listen on %s", addr)
}
