// Package claim registers ClaimProcess, the HTTP function that the claim push
// subscription calls for each new certificate provisioning process: it claims
// the process and asks the client to sign, once.
//
// It is an HTTP function, not a CloudEvent one, because functions-framework-go
// turns a Pub/Sub push into a CloudEvent through a type that has only the
// message and the subscription: the delivery attempt that Pub/Sub puts at the
// top level of the push body would be lost, and the framework would print a
// non-JSON warning when the push URL does not name the topic.
package claim

import (
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/chromeos-certprov/adapter/shared/adapter"
)

// EntryPoint is the function's name (its Cloud Functions entry point).
const EntryPoint = "ClaimProcess"

func init() {
	functions.HTTP(EntryPoint, adapter.Claim(adapter.Lazy(EntryPoint)))
}
