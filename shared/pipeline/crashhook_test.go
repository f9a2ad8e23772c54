package pipeline_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
)

// TestCrashHookNamesTheProcess checks that the crash hook is told which
// process each crash point belongs to, so that a fault campaign needs no
// goroutine bookkeeping to find it: on an enrollment from notification to
// upload, every point passed carries the record's key and a context.
func TestCrashHookNamesTheProcess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cpemulator.Options{})
	type call struct{ Key, Point string }
	var mu sync.Mutex
	var calls []call
	h.p.Crash = func(ctx context.Context, key, point string) error {
		mu.Lock()
		defer mu.Unlock()
		if ctx == nil {
			t.Errorf("crash point %s: nil context", point)
		}
		calls = append(calls, call{key, point})
		return nil
	}
	name, note := h.add(cpemulator.ClientSpec{Kind: cpemulator.Device, Key: cpemulator.ECP256, SignDelay: time.Second})
	if err := h.claim(note, 1); err != nil {
		t.Fatalf("claim: %v", err)
	}
	h.drain()
	h.wantUploaded(name)

	key := h.key(name)
	var points []string
	for _, c := range calls {
		if c.Key != key {
			t.Errorf("crash point %s named %q, want %q", c.Point, c.Key, key)
		}
		if !slices.Contains(points, c.Point) {
			points = append(points, c.Point)
		}
	}
	want := []string{
		"claim:after-create", "claim:before-claim", "claim:after-claim",
		"sign:before-signData", "sign:after-signData", "poll:after-signed",
		"issue:before-ca", "issue:after-ca", "upload:before-upload", "upload:after-upload",
	}
	if diff := cmp.Diff(want, points); diff != "" {
		t.Errorf("crash points passed (-want +got):\n%s", diff)
	}
}
