package devca

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/ca"
)

// TestPanicIsTransient: a panic under Issue (here from the fault hook) is
// recovered into a Transient *ca.Error, and the CA stays usable (its lock
// is released).
func TestPanicIsTransient(t *testing.T) {
	c, err := New(context.Background(), json.RawMessage(`{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := newCSR(t, "device-1")
	c.SetFault(func(ca.Request) error {
		var b []byte
		_ = b[2] // index out of range
		return nil
	})
	_, err = c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "p1"})
	var ce *ca.Error
	if !errors.As(err, &ce) || ce.Kind != ca.Transient || ce.UserMessage != ca.MsgInternal {
		t.Fatalf("Issue: %v, want a transient *ca.Error from the recovered panic", err)
	}
	c.SetFault(nil)
	if _, err := c.Issue(context.Background(), ca.Request{CSR: csr, RequestID: "p1"}); err != nil {
		t.Errorf("Issue after the panic: %v", err)
	}
}
