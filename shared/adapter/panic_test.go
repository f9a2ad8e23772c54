package adapter

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// panickingStore panics on every read, as a bug in any library under a
// step would.
type panickingStore struct{ *memory.Store }

func (panickingStore) Get(context.Context, string) (*progress.Record, error) {
	panic("runtime error: index out of range [3] with length 3")
}

// Update reads too (a step's first read may be its transaction's).
func (panickingStore) Update(context.Context, string, func(*progress.Record) error) (*progress.Record, error) {
	panic("runtime error: index out of range [3] with length 3")
}

// No panic crosses a function: a panic in a step is logged at ERROR (JSON,
// with the stack) and answered 503, so the platform retries with backoff.
func TestPanicInAStepIsATransientError(t *testing.T) {
	t.Parallel()
	get, logs := newPipeline(panickingStore{memory.New()})
	p, _, _ := get(context.Background())
	p.Allowed = func(string) bool { return true }
	note := cpemulator.EncodeNotificationBinary("C0panic", "p1")
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		body string
	}{
		{"poll", Poll(get), `{"key":"C0panic:p1"}`},
		{"issue", Issue(get), `{"key":"C0panic:p1"}`},
		{"claim", Claim(get), documentedPush(note, 1)},
	} {
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if v := recover(); v != nil {
					t.Fatalf("%s: the panic crossed the function: %v", tc.name, v)
				}
			}()
			tc.h(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body)))
		}()
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503", tc.name, rec.Code)
		}
	}
	var errors int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if e["severity"] == "ERROR" && e["message"] == msgPanic && strings.Contains(toText(e["stack"]), "goroutine") && toText(e["panic"]) != "" {
			errors++
		}
	}
	if errors != 3 {
		t.Errorf("%d ERROR logs with the panic and its stack, want 3:\n%s", errors, logs)
	}
}

func toText(v any) string { s, _ := v.(string); return s }
