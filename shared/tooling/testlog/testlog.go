// Package testlog gives tests a logger that writes the adapter's JSON log
// lines (as logging.New writes them for Cloud Logging) through t.Log, so a
// failing test shows what the code logged and a passing one stays quiet
// unless run with -v.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/logging"
)

// New returns a logger at DEBUG whose lines go to t.Log. Lines logged after
// the test ended (by a goroutine it left behind) are dropped instead of
// panicking.
func New(t testing.TB) *slog.Logger {
	t.Helper()
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return logging.New(w, slog.LevelDebug, "")
}

// writer splits what the JSON handler writes into lines for t.Log.
type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		w.t.Log(string(line))
	}
	return len(p), nil
}
