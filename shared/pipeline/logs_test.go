package pipeline_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// syncBuffer is a log sink shared by concurrent deliveries.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) entries(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if err := noDuplicateKeys([]byte(line)); err != nil {
			t.Errorf("log line has %v: %s", err, line)
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// noDuplicateKeys reads one JSON value token by token and fails on a key
// repeated within an object (json.Unmarshal keeps the last one silently, and
// Cloud Logging shows only one).
func noDuplicateKeys(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	type frame struct {
		object  bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.wantKey = true // the object or array is the value
				}
				stack = append(stack, &frame{object: v == '{', keys: map[string]bool{}, wantKey: v == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
		default:
			if top == nil || !top.object {
				continue
			}
			if top.wantKey {
				k, _ := v.(string)
				if top.keys[k] {
					return fmt.Errorf("key %q twice", k)
				}
				top.keys[k] = true
			}
			top.wantKey = !top.wantKey
		}
	}
}

func TestNoDuplicateKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line    string
		wantErr bool
	}{
		{`{"a":1,"b":{"a":2,"c":[{"a":3},{"a":4}]},"d":"a"}`, false},
		{`{"a":"x","a":"y"}`, true},
		{`{"g":{"a":1,"b":[1,2],"a":2}}`, true},
		{`{"s":[{"a":1,"a":2}]}`, true},
		{`{"o":{},"p":[],"o2":{"k":null},"k":true}`, false},
		{`{"k":{"x":1},"k":2}`, true},
	}
	for _, tc := range tests {
		if err := noDuplicateKeys([]byte(tc.line)); (err != nil) != tc.wantErr {
			t.Errorf("%s: %v, want an error %v", tc.line, err, tc.wantErr)
		}
	}
}

// Every state transition is logged once, with the process, the customer, the
// state and the elapsed time; the device is named once, on the claim; a
// failure carries its reason and the device's message. Duplicate deliveries
// do not log a transition twice.
func TestEveryTransitionLoggedOnce(t *testing.T) {
	h := newHarness(t, cpemulator.Options{})
	var buf syncBuffer
	h.p.Log = logging.New(&buf, slog.LevelInfo, "test")
	h.dup = true
	ok, okNote := h.add(cpemulator.ClientSpec{Kind: cpemulator.Device, Key: cpemulator.ECP256, DeviceID: "dev-42", Serial: "SN42", SignDelay: 30 * time.Second})
	bad, badNote := h.add(cpemulator.ClientSpec{Kind: cpemulator.User, Key: cpemulator.RSA2048, Behaviour: cpemulator.Wrong})
	for _, n := range [][]byte{okNote, badNote, okNote} {
		if err := h.claim(n, 1); err != nil {
			t.Fatalf("Claim: %v", err)
		}
	}
	h.drain()
	h.wantUploaded(ok)
	h.wantFailed(bad, "signature")

	logged := map[string][]string{}
	claimed := map[string]map[string]any{}
	for _, e := range buf.entries(t) {
		pid, _ := e["process_id"].(string)
		switch e["message"] {
		case "state transition":
			st, _ := e["state"].(string)
			logged[pid] = append(logged[pid], st)
			if e["customer"] != customer {
				t.Errorf("transition %s of %s: customer %v", st, pid, e["customer"])
			}
			if _, ok := e["elapsed_ms"]; !ok && st != string(progress.StateReceived) {
				t.Errorf("transition %s of %s has no elapsed_ms", st, pid)
			}
			switch progress.State(st) {
			case progress.StateFailed:
				if e["reason"] == "" || e["failure_message"] == "" || e["severity"] != "WARNING" {
					t.Errorf("FAILED entry lacks reason, failure_message or WARNING: %v", e)
				}
			case progress.StateUploaded:
				if _, ok := e["time_to_certificate_ms"]; !ok {
					t.Errorf("UPLOADED entry lacks time_to_certificate_ms: %v", e)
				}
			}
		case "process claimed":
			claimed[pid] = e
		}
	}
	for _, name := range []string{ok, bad} {
		rec := h.record(name)
		var want []string
		for _, c := range rec.History {
			if s := string(c.To); len(want) == 0 || want[len(want)-1] != s {
				want = append(want, s)
			}
		}
		// Once each, in any order: a transition is logged after it commits,
		// so with duplicate deliveries (h.dup) one delivery's FAILED line can
		// be written before another's FAILING line (each names from_state).
		if diff := cmp.Diff(want, logged[rec.ProcessID], cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("%s: logged transitions (-history +logged):\n%s", name, diff)
		}
	}
	okID := h.record(ok).ProcessID
	if got := claimed[okID]; got["device_id"] != "dev-42" || got["device_serial"] != "SN42" {
		t.Errorf("the claim of %s does not name its device: %v", okID, got)
	}
	if got := claimed[h.record(bad).ProcessID]; got["user_id"] == nil {
		t.Errorf("the claim of a user process does not name the user: %v", got)
	}
}
