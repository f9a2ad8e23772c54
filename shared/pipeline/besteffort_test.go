package pipeline_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/logging"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// faults answers each method with the fault set for it (NoFault otherwise);
// a test changes them as the process goes.
type faults struct {
	mu sync.Mutex
	m  map[string]cpemulator.Fault
}

func (f *faults) set(m map[string]cpemulator.Fault) { f.mu.Lock(); defer f.mu.Unlock(); f.m = m }
func (f *faults) fault(method, _ string) cpemulator.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[method]
}

// A call whose failure the pipeline survives without returning it (a read
// that only decides how to carry on) is logged with a WARNING saying what
// failed, never dropped silently.
func TestIgnoredFailuresAreLogged(t *testing.T) {
	t.Parallel()
	unavailable := cpemulator.FaultUnavailable
	tests := []struct {
		name string
		// first, when set, is delivered (retry 0) before the last attempt,
		// with these faults.
		first     map[string]cpemulator.Fault
		last      map[string]cpemulator.Fault
		wantWarn  string
		uploaded  bool
		wantInMsg string
	}{
		{
			name:      "the upload refused on the last attempt, and the process unreadable",
			last:      map[string]cpemulator.Fault{cpemulator.MethodUploadCertificate: unavailable, cpemulator.MethodGet: unavailable},
			wantWarn:  "uploadCertificate was refused and the process could not be read",
			wantInMsg: "could not be delivered",
		},
		{
			name:     "an upload resumed on the last attempt, the process unreadable",
			first:    map[string]cpemulator.Fault{cpemulator.MethodUploadCertificate: unavailable},
			last:     map[string]cpemulator.Fault{cpemulator.MethodGet: unavailable},
			wantWarn: "could not read the process before uploading again; uploading the stored certificate",
			uploaded: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &faults{}
			h := newHarness(t, cpemulator.Options{Fault: f.fault})
			var logs syncBuffer
			h.p.Log = logging.New(&logs, slog.LevelInfo, "test")
			name, data := h.add(cpemulator.ClientSpec{Key: cpemulator.ECP256})
			if err := h.claim(data, 1); err != nil {
				t.Fatal(err)
			}
			issue := h.nextIssue()
			if tc.first != nil {
				f.set(tc.first)
				if err := h.p.Issue(context.Background(), issue.Body, 0); err == nil {
					t.Fatal("the first delivery returned nil; want an error for a retry")
				}
			}
			f.set(tc.last)
			if err := h.p.Issue(context.Background(), issue.Body, h.p.MaxAttempts-1); err != nil {
				t.Fatalf("the last attempt: %v", err)
			}
			f.set(nil)
			warned := false
			for _, e := range logs.entries(t) {
				if e["message"] == tc.wantWarn {
					warned = e["severity"] == "WARNING" && e["reason"] != "" && e["process_id"] != nil
				}
			}
			if !warned {
				t.Errorf("no WARNING %q with a reason and the process", tc.wantWarn)
			}
			if tc.uploaded {
				h.wantUploaded(name)
			} else {
				h.wantFailed(name, tc.wantInMsg)
			}
		})
	}
}
