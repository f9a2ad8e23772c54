// Package poll registers PollSignature, the HTTP function that Cloud Tasks
// invokes to ask whether the client has signed, until it has or a deadline
// passes; the scheduler's hourly sweep posts to its /sweep path.
package poll

import (
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/chromeos-certprov/adapter/shared/adapter"
)

// EntryPoint is the function's name (its Cloud Functions entry point).
const EntryPoint = "PollSignature"

func init() {
	functions.HTTP(EntryPoint, adapter.Poll(adapter.Lazy(EntryPoint)))
}
