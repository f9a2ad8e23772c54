// Package claim registers ClaimProcess, the CloudEvent function that Pub/Sub
// triggers for each new certificate provisioning process: it claims the process
// and asks the client to sign, once.
package claim

import (
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/chromeos-certprov/adapter/shared/adapter"
)

// EntryPoint is the function's name (its Cloud Functions entry point).
const EntryPoint = "ClaimProcess"

func init() {
	functions.CloudEvent(EntryPoint, adapter.Claim(adapter.Lazy(EntryPoint)))
}
