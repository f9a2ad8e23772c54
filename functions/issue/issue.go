// Package issue registers IssueCertificate, the HTTP function that Cloud Tasks
// invokes to get the certificate from the CA and upload it (or report failure).
package issue

import (
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/chromeos-certprov/adapter/shared/adapter"
)

// EntryPoint is the function's name (its Cloud Functions entry point).
const EntryPoint = "IssueCertificate"

func init() {
	functions.HTTP(EntryPoint, adapter.Issue(adapter.Lazy(EntryPoint)))
}
