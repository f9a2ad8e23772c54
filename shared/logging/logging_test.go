package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewWritesCloudLoggingFields(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := New(&buf, slog.LevelInfo, "ClaimProcess")
	l.Debug("hidden")
	l.With(TraceAttrs("proj", "105445aa7843bc8bf206b12000100000/1;o=1", "")...).Warn("state transition", "process_id", "p1")
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	delete(got, "time")
	src, ok := got[FieldSource].(map[string]any)
	if !ok || src["line"] == nil {
		t.Errorf("sourceLocation = %v, want file/line/function", got[FieldSource])
	}
	delete(got, FieldSource)
	want := map[string]any{
		"severity":   "WARNING",
		"message":    "state transition",
		"process_id": "p1",
		FieldTrace:   "projects/proj/traces/105445aa7843bc8bf206b12000100000",
		FieldSpan:    "1",
		FieldLabels:  map[string]any{"function": "ClaimProcess"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log line (-want +got):\n%s", diff)
	}
}

func TestTraceAttrs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, project, cloud, parent string
		want                         int
	}{
		{"none", "p", "", "", 0},
		{"cloud trace", "p", "abc/12;o=1", "", 2},
		{"traceparent", "p", "", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 2},
		{"no project", "", "abc/1", "", 0},
		{"bad traceparent", "p", "", "garbage", 0},
	}
	for _, tc := range tests {
		if got := len(TraceAttrs(tc.project, tc.cloud, tc.parent)); got != tc.want {
			t.Errorf("%s: %d attrs, want %d", tc.name, got, tc.want)
		}
	}
}

func TestSeverity(t *testing.T) {
	t.Parallel()
	for lvl, want := range map[slog.Level]string{slog.LevelDebug: "DEBUG", slog.LevelInfo: "INFO", slog.LevelWarn: "WARNING", slog.LevelError: "ERROR"} {
		if got := severity(lvl); got != want {
			t.Errorf("severity(%v) = %q, want %q", lvl, got, want)
		}
	}
}
