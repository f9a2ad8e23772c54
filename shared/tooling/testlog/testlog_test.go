package testlog

import (
	"encoding/json"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what is logged.
type recorder struct {
	testing.TB
	lines   []string
	cleanup []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Log(args ...any)  { r.lines = append(r.lines, args[0].(string)) }
func (r *recorder) Cleanup(f func()) { r.cleanup = append(r.cleanup, f) }

func TestLinesReachTheTestLog(t *testing.T) {
	r := &recorder{TB: t}
	log := New(r)
	log.Info("stale process re-driven", "process_id", "p1")
	log.Debug("second")
	if len(r.lines) != 2 {
		t.Fatalf("got %d lines, want 2: %q", len(r.lines), r.lines)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(r.lines[0]), &first); err != nil {
		t.Fatalf("line is not JSON: %v: %s", err, r.lines[0])
	}
	if first["message"] != "stale process re-driven" || first["severity"] != "INFO" || first["process_id"] != "p1" {
		t.Errorf("line = %v, want Cloud Logging's message and severity fields with the attribute", first)
	}
	for _, f := range r.cleanup {
		f()
	}
	log.Info("after the test")
	if len(r.lines) != 2 || strings.Contains(strings.Join(r.lines, ""), "after the test") {
		t.Errorf("a line logged after the test ended reached t.Log: %q", r.lines)
	}
}
