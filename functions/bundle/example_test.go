package bundle

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

// terraformExample is what .ci/tofu.sh has tofu evaluate from
// terraform/terraform.tfvars.example: the adapter config (var.adapter_config,
// which becomes CERTPROV_CONFIG) and, per function, the secret environment
// variables terraform gives it (local.secret_env_by_function).
type terraformExample struct {
	AdapterConfig string                                `json:"adapter_config"`
	SecretEnv     map[string]map[string]json.RawMessage `json:"secret_env"`
}

// terraformFunctions maps terraform's function keys (local.names) to the entry
// points.
var terraformFunctions = map[string]string{
	"claim": "ClaimProcess",
	"poll":  "PollSignature",
	"issue": "IssueCertificate",
}

// placeholderSecret is a value of the right shape for a secret environment
// variable: RECORD_SEALING_KEY must be 32 bytes in base64, any other secret
// (a challenge, a password) is a string.
func placeholderSecret(name string) string {
	if name == "RECORD_SEALING_KEY" {
		return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	}
	return "placeholder-" + strings.ToLower(name)
}

// TestExampleDeploymentStarts starts each function, built as the buildpack
// builds it, with the adapter config and the secret environment variables that
// terraform.tfvars.example gives it, exactly as terraform evaluates them (the
// JSON file CERTPROV_TERRAFORM_EXAMPLE, written by .ci/tofu.sh with `tofu
// console`), and placeholder secret values. Every function must configure
// itself: an example whose adapter config the functions reject, or whose
// secret_env lacks a secret the config needs, answers 500 "adapter not
// configured" and fails here.
func TestExampleDeploymentStarts(t *testing.T) {
	file := os.Getenv("CERTPROV_TERRAFORM_EXAMPLE")
	if file == "" {
		testenv.Unavailable(t, "terraform's evaluation of the example (CERTPROV_TERRAFORM_EXAMPLE, written by .ci/tofu.sh)", errors.New("not set"))
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ex terraformExample
	if err := json.Unmarshal(data, &ex); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(ex.SecretEnv) != len(terraformFunctions) {
		t.Fatalf("terraform gives secrets to functions %v, want one entry per function %v", keys(ex.SecretEnv), keys(terraformFunctions))
	}

	bin := buildBundle(t)
	for _, ep := range entryPoints {
		t.Run(ep.name, func(t *testing.T) {
			fn := ""
			for k, v := range terraformFunctions {
				if v == ep.name {
					fn = k
				}
			}
			secrets, ok := ex.SecretEnv[fn]
			if !ok {
				t.Fatalf("terraform's secret_env_by_function has no %q", fn)
			}
			env := functionEnv(ep.name, freePort(t), deployment{config: ex.AdapterConfig}, false)
			for _, name := range keys(secrets) {
				env = append(env, name+"="+placeholderSecret(name))
			}
			status, body := serveOnce(t, bin, env, ep.cloudEvent)
			if status == http.StatusNotFound || status >= 500 {
				t.Errorf("%s with terraform.tfvars.example's adapter_config and secrets %v: got %d %q; "+
					"the example does not configure this function (its output follows)",
					ep.name, keys(secrets), status, strings.TrimSpace(body))
				return
			}
			t.Logf("%s (secrets %v) answered %d %q", ep.name, keys(secrets), status, strings.TrimSpace(body))
		})
	}
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
