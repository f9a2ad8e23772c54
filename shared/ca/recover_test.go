package ca_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/logging"
)

func TestRecover(t *testing.T) {
	var buf bytes.Buffer
	ctx := logging.WithLogger(context.Background(), slog.New(slog.NewJSONHandler(&buf, nil)))
	call := func() (_ int, err error) {
		defer ca.Recover(ctx, "test: Call", &err)
		var s []byte
		return int(s[2]), nil // index out of range, as ber2der did
	}
	_, err := call()
	var ce *ca.Error
	if !errors.As(err, &ce) || ce.Kind != ca.Transient || ce.UserMessage != ca.MsgInternal || !strings.Contains(ce.Reason, "test: Call") {
		t.Fatalf("error %#v: want a transient *ca.Error naming the call", err)
	}
	var rec struct {
		Level, Msg, Op, Panic, Stack string
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if rec.Level != "ERROR" || rec.Op != "test: Call" || !strings.Contains(rec.Panic, "index out of range") || !strings.Contains(rec.Stack, "recover_test.go") {
		t.Errorf("log = %+v, want ERROR with the op, the panic and a stack through the panicking function", rec)
	}

	// No panic: the result is left alone.
	ok := func() (err error) {
		defer ca.Recover(ctx, "test: OK", &err)
		return errors.New("plain")
	}
	if err := ok(); err == nil || err.Error() != "plain" {
		t.Errorf("without a panic: %v, want the function's own error", err)
	}
}
