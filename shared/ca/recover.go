package ca

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/chromeos-certprov/adapter/shared/logging"
)

// MsgInternal is what the person at the device is told when a connector
// failed on an answer it could not handle (a recovered panic); it is shown
// only once the retries have run out.
const MsgInternal = "The certificate authority sent an answer the adapter could not read. The adapter retries; if this lasts, contact your administrator."

// Recover keeps a panic from crossing a connector's boundary. Every exported
// connector method that calls a library defers it first, with named results:
//
//	func (c *Connector) Issue(ctx context.Context, req ca.Request) (_ *ca.Issued, err error) {
//		defer ca.Recover(ctx, "est: Issue", &err)
//
// A panic (a parser's index out of range on a malformed PKCS#7 answer, say)
// becomes a Transient *Error, so that the pipeline retries and its last
// attempt still reports to the device, and is logged at ERROR with the stack
// (through logging.From(ctx)). The panic value goes into Err and the log; a
// connector never panics with a secret.
func Recover(ctx context.Context, op string, errp *error) {
	r := recover()
	if r == nil {
		return
	}
	logging.From(ctx).ErrorContext(ctx, "CA connector panicked; answered as a transient CA error",
		"op", op, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	*errp = &Error{Kind: Transient, UserMessage: MsgInternal, Reason: op + ": recovered panic", Err: fmt.Errorf("panic: %v", r)}
}
