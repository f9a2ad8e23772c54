package adapter

import (
	"context"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
)

// BuildCAsFor builds the CA connections as function fn does at start
// ("ClaimProcess", "PollSignature", "IssueCertificate"; "" builds all):
// the others get a placeholder that knows the reference exists.
func BuildCAsFor(ctx context.Context, a config.Adapter, secrets func(string) (string, error), fn string) (map[string]pipeline.Issuer, error) {
	return buildCAs(ctx, a, secrets, fn)
}

// Builds reports whether function fn builds connection c at start, and so
// reads its secrets: IssueCertificate every connection, ClaimProcess those
// that need a challenge at claim time, PollSignature none.
func Builds(fn string, c config.CAConnection) bool {
	b, _ := builds(fn, c)
	return b
}
