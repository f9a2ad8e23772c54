package adapter

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/config"
)

// Each function builds only the CA connections it uses, so no function needs
// a secret it does not use (terraform gives CA secrets per function).
func TestFunctionsBuildOnlyTheirConnectors(t *testing.T) {
	t.Parallel()
	a := config.Adapter{CAConnections: map[string]config.CAConnection{
		"dev":  {Type: devca.Type, Settings: json.RawMessage(`{"certFile":"/x/ca.pem","keyEnv":"DEV_CA_KEY"}`)},
		"scep": {Type: "scep", Settings: json.RawMessage(`{"url":"http://127.0.0.1:1/scep","challenge":{"type":"static","secretEnv":"SCEP_CHALLENGE"}}`)},
	}}
	secrets := EnvSecrets(config.MapLookup(map[string]string{"SCEP_CHALLENGE": "s3cret"}))
	tests := []struct {
		fn           string
		wantErr      string
		built, stubs []string
	}{
		{"PollSignature", "", nil, []string{"dev", "scep"}},
		{"ClaimProcess", "", []string{"scep"}, []string{"dev"}},
		{"IssueCertificate", "ca.pem", nil, nil},
	}
	for _, tc := range tests {
		cas, err := buildCAs(context.Background(), a, secrets, func(typ string) bool { return buildsType(tc.fn, typ) })
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want %q", tc.fn, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.fn, err)
		}
		for _, ref := range tc.stubs {
			if _, err := cas[ref].Issue(context.Background(), ca.Request{}); ca.KindOf(err) != ca.Permanent {
				t.Errorf("%s: %s is not a placeholder", tc.fn, ref)
			}
		}
		for _, ref := range tc.built {
			if _, ok := cas[ref].(elsewhere); ok {
				t.Errorf("%s: %s was not built", tc.fn, ref)
			}
		}
	}
}

func TestSealerRequiredWithChallenge(t *testing.T) {
	t.Parallel()
	withChallenge := config.Adapter{CAConnections: map[string]config.CAConnection{"s": {Type: "scep", Settings: json.RawMessage(`{"challenge":{"type":"static"}}`)}}}
	noChallenge := config.Adapter{CAConnections: map[string]config.CAConnection{"s": {Type: "scep", Settings: json.RawMessage(`{"challenge":{"type":"none"}}`)}, "d": {Type: "dev"}}}
	empty := config.MapLookup(nil)
	if _, err := Sealer(empty, withChallenge); err == nil || !strings.Contains(err.Error(), `caConnections["s"]`) {
		t.Errorf("no key with a challenge: %v", err)
	}
	if s, err := Sealer(empty, noChallenge); err != nil || s != nil {
		t.Errorf("no key, no challenge: %v %v", s, err)
	}
	if _, err := Sealer(config.MapLookup(map[string]string{"RECORD_SEALING_KEY": "short"}), noChallenge); err == nil {
		t.Error("a bad key was accepted")
	}
}
