package adapter

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/cpapi"
)

// Each function builds only the CA connections it uses, so no function needs
// a secret it does not use (terraform gives CA secrets per function).
func TestFunctionsBuildOnlyTheirConnectors(t *testing.T) {
	t.Parallel()
	a := config.Adapter{CAConnections: map[string]config.CAConnection{
		"dev":  {Type: devca.Type, Settings: json.RawMessage(`{"certFile":"/x/ca.pem","keyEnv":"DEV_CA_KEY"}`)},
		"scep": {Type: "scep", Settings: json.RawMessage(`{"url":"http://127.0.0.1:1/scep","challenge":{"type":"static","secretEnv":"SCEP_CHALLENGE"}}`)},
		// No challenge: nothing to ask at claim time, so ClaimProcess does
		// not build it and needs not its signer key (it did before).
		"scep-none": {Type: "scep", Settings: json.RawMessage(`{"url":"http://127.0.0.1:1/scep","challenge":{"type":"none"},"signerKeyEnv":"SCEP_SIGNER_KEY"}`)},
	}}
	secrets := EnvSecrets(config.MapLookup(map[string]string{"SCEP_CHALLENGE": "s3cret"}))
	tests := []struct {
		fn           string
		wantErr      string
		built, stubs []string
	}{
		{"PollSignature", "", nil, []string{"dev", "scep", "scep-none"}},
		{"ClaimProcess", "", []string{"scep"}, []string{"dev", "scep-none"}},
		{"IssueCertificate", "ca.pem", nil, nil},
	}
	for _, tc := range tests {
		cas, err := buildCAs(context.Background(), a, secrets, tc.fn)
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

// The adapter builds exactly the connector types whose packages it imports
// (connectors.go), and an unknown type is refused with the known ones.
func TestConnectorsRegistered(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff([]string{"cas", "dev", "est", "scep"}, ConnectorTypes()); diff != "" {
		t.Errorf("ConnectorTypes (-want +got):\n%s", diff)
	}
	a := config.Adapter{CAConnections: map[string]config.CAConnection{"x": {Type: "acme"}}}
	for _, fn := range []string{"ClaimProcess", "PollSignature", "IssueCertificate"} {
		_, err := buildCAs(context.Background(), a, nil, fn)
		if err == nil || !strings.Contains(err.Error(), `caConnections["x"]: unknown CA connector type "acme" (registered: cas, dev, est, scep)`) {
			t.Errorf("%s: %v, want the unknown type refused", fn, err)
		}
	}
}

func TestSealerRequiredWithChallenge(t *testing.T) {
	t.Parallel()
	withChallenge := config.Adapter{CAConnections: map[string]config.CAConnection{"s": {Type: "scep", Settings: json.RawMessage(`{"challenge":{"type":"static"}}`)}}}
	noChallenge := config.Adapter{CAConnections: map[string]config.CAConnection{"s": {Type: "scep", Settings: json.RawMessage(`{"challenge":{"type":"none"}}`)}, "d": {Type: "dev"}}}
	if _, err := Sealer("", withChallenge); err == nil || !strings.Contains(err.Error(), `caConnections["s"]`) {
		t.Errorf("no key with a challenge: %v", err)
	}
	if s, err := Sealer("", noChallenge); err != nil || s != nil {
		t.Errorf("no key, no challenge: %v %v", s, err)
	}
	if _, err := Sealer("short", noChallenge); err == nil {
		t.Error("a bad key was accepted")
	}
}

// An endpoint override keeps the credentials; only the emulator setting
// drops them, and setting both is refused.
func TestAPIOptionsFromEnvironment(t *testing.T) {
	t.Parallel()
	base := map[string]string{"GOOGLE_CLOUD_PROJECT": "p", "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:9",
		"CERTPROV_CONFIG": `{"allowedCustomers":["c"],"caConnections":{"d":{"type":"dev"}}}`}
	tests := []struct {
		name    string
		env     map[string]string
		want    cpapi.Options
		wantErr string
	}{
		{"default endpoint, credentials", nil, cpapi.Options{}, ""},
		{"Private Service Connect endpoint keeps credentials", map[string]string{"CERTPROV_API_ENDPOINT": "https://chromemanagement-p.p.googleapis.com/"},
			cpapi.Options{Endpoint: "https://chromemanagement-p.p.googleapis.com/"}, ""},
		{"emulator, no credentials", map[string]string{"CERTPROV_API_EMULATOR_HOST": "127.0.0.1:8085"}, cpapi.Options{EmulatorHost: "127.0.0.1:8085"}, ""},
		{"both is ambiguous", map[string]string{"CERTPROV_API_ENDPOINT": "https://x.example/", "CERTPROV_API_EMULATOR_HOST": "127.0.0.1:8085"}, cpapi.Options{}, "both set"},
	}
	for _, tc := range tests {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range tc.env {
			env[k] = v
		}
		cfg, err := config.Load(config.MapLookup(env), ConnectorTypes())
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := apiOptions(cfg); got.Endpoint != tc.want.Endpoint || got.EmulatorHost != tc.want.EmulatorHost {
			t.Errorf("%s: options %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// Every connector the adapter ships reads its settings strictly: a misspelt
// field and anything after the settings object are errors, whatever else
// the settings lack.
func TestEveryConnectorDecodesStrictly(t *testing.T) {
	t.Parallel()
	for _, typ := range ConnectorTypes() {
		for _, tc := range []struct{ settings, want string }{
			{`{"timout":"5s"}`, `unknown field "timout"`},
			{`{} {}`, "trailing data"},
		} {
			_, err := ca.New(context.Background(), typ, json.RawMessage(tc.settings), ca.Deps{Secrets: EnvSecrets(config.MapLookup(nil))})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s settings %s: %v, want an error with %q", typ, tc.settings, err, tc.want)
			}
		}
	}
}
