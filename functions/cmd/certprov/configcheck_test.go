package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/config"
)

// devConfig is a working config: a development CA generated at start.
const devConfig = `{
  "allowedCustomers": ["C0local"],
  "caConnections": {"dev_ca": {"type": "dev", "settings": {"validity": "720h"}}},
  "profiles": {
    "device_profile": {
      "subject": {"commonName": "${DEVICE_SERIAL_NUMBER}", "organization": ["Example Corp"]},
      "subjectAltNames": [{"type": "UNIFORM_RESOURCE_IDENTIFIER", "value": "urn:chromeos:device:${DEVICE_DIRECTORY_ID}"}],
      "keyUsages": ["KEY_USAGE_SIGNING", "KEY_USAGE_KEY_ENCIPHERMENT"],
      "extendedKeyUsages": ["CLIENT_AUTH"],
      "validity": "720h"
    }
  }
}`

func TestConfigCheck(t *testing.T) {
	good := writeFile(t, "good.json", devConfig)
	bad := writeFile(t, "bad.json", `{"allowedCustomers": [], "caConnections": {"x": {"type": "nope"}, "d": {"type": "dev", "settings": {"validity": "soon"}}},
		"profiles": {"p": {"subject": {}}}}`)
	tfvars := writeFile(t, "x.tfvars", "project_id = \"p\"\nadapter_config = <<-EOT\n"+strings.ReplaceAll(devConfig, "${", "$${")+"\nEOT\n")
	unescaped := writeFile(t, "y.tfvars", "adapter_config = <<-EOT\n"+devConfig+"\nEOT\n")
	scepJSON := `{"allowedCustomers": ["C1"], "caConnections": {"corp-scep": {"type": "scep", "settings": {"url": "https://ndes.example.com/scep", "challenge": {"type": "static", "secretEnv": "SCEP_CHALLENGE"}}}}, "profiles": {}}`
	badSecrets := writeFile(t, "s.tfvars", "adapter_config = <<-EOT\n"+scepJSON+"\nEOT\nsecret_env = {\n  SCEP_CHALLENGE = { secret_id = \"c\" }\n  RECORD_SEALING_KEY = { secret_id = \"k\", functions = [\"claim\", \"issue\"] }\n}\n")
	noSealing := writeFile(t, "n.tfvars", "adapter_config = <<-EOT\n"+scepJSON+"\nEOT\nsecret_env = {\n  SCEP_CHALLENGE = { secret_id = \"c\", functions = [\"claim\", \"issue\"] }\n}\n")
	tests := []struct {
		name string
		args []string
		vars map[string]string
		code int
		want configReport
		text string
	}{
		{
			name: "valid", args: []string{"--config", good}, code: exitOK,
			want: configReport{Source: good, OK: true, Problems: []string{}, AllowedCustomers: []string{"C0local"},
				CAConnections: []connectionReport{{Ref: "dev_ca", Type: "dev", Built: true}}, Profiles: []string{"device_profile"}},
			text: "config: " + good + "\nallowed customers: C0local\nCA connection dev_ca (dev): ok\nprofiles: device_profile\nOK: the functions would start with this config\n",
		},
		{
			name: "every problem at once", args: []string{"--config", bad}, code: exitProblem,
			want: configReport{Source: bad, Problems: []string{
				"allowedCustomers is empty: no notification would be accepted",
				`caConnections["x"].type: unknown connector type "nope" (known: cas, dev, est, scep)`,
				`profiles["p"]: subject.commonName and subjectAltNames are both empty: the certificate would name no one`,
				`caConnections["d"] (dev): dev CA settings: validity "soon" is not a positive duration`,
				`caConnections["x"]: unknown CA connector type "nope" (registered: cas, dev, est, scep)`,
			}, AllowedCustomers: []string{}, CAConnections: []connectionReport{{Ref: "d", Type: "dev"}, {Ref: "x", Type: "nope"}}, Profiles: []string{"p"}},
		},
		{
			name: "example whose CA files are missing", args: []string{"--config", testdata + "dev.json"}, code: exitProblem,
			want: configReport{Source: testdata + "dev.json", Problems: []string{
				`caConnections["default_ca_config"] (dev): dev CA settings: certFile: open /etc/certprov/dev-ca.pem: no such file or directory`,
			}, AllowedCustomers: []string{"C0local"}, CAConnections: []connectionReport{{Ref: "default_ca_config", Type: "dev"}}, Profiles: []string{"device_profile", "user_profile"}},
		},
		{
			name: "SCEP example, secrets not set here", args: []string{"--config", testdata + "scep-scepserver.json"}, code: exitOK,
			want: configReport{Source: testdata + "scep-scepserver.json", OK: true, Problems: []string{}, Notes: []string{
				"secret SCEP_CHALLENGE is not set in this environment: checked with a placeholder (the functions read it from Secret Manager)",
				`RECORD_SEALING_KEY is required because caConnections["default_ca_config"] puts a challenge password into the CSR (not set in this environment: make sure the deployment sets it)`,
			}, AllowedCustomers: []string{"C0local"}, CAConnections: []connectionReport{{Ref: "default_ca_config", Type: "scep", Built: true}}, Profiles: []string{"device_profile", "user_profile"}},
		},
		{
			name: "SCEP example, a bad sealing key", args: []string{"--config", testdata + "scep-scepserver.json"},
			vars: map[string]string{"SCEP_CHALLENGE": "s3cret", "RECORD_SEALING_KEY": "short"}, code: exitProblem,
			want: configReport{Source: testdata + "scep-scepserver.json", Problems: []string{
				"configuration: RECORD_SEALING_KEY: seal: the key must be 32 random bytes, base64-encoded (e.g. openssl rand -base64 32)",
			}, AllowedCustomers: []string{"C0local"}, CAConnections: []connectionReport{{Ref: "default_ca_config", Type: "scep", Built: true}}, Profiles: []string{"device_profile", "user_profile"}},
		},
		{
			name: "tfvars", args: []string{"--tfvars", tfvars}, code: exitOK,
			want: configReport{Source: tfvars + " (adapter_config)", OK: true, Problems: []string{}, AllowedCustomers: []string{"C0local"},
				CAConnections: []connectionReport{{Ref: "dev_ca", Type: "dev", Built: true}}, Profiles: []string{"device_profile"}},
		},
		{
			name: "tfvars with an unescaped profile variable", args: []string{"--tfvars", unescaped}, code: exitProblem,
			want: configReport{Source: unescaped + " (adapter_config)", Problems: []string{
				unescaped + ": adapter_config: " + unescaped + ":7,36-56: Variables not allowed; Variables may not be used here., and 1 other diagnostic(s) (a profile variable is written $${NAME} in a tfvars file, or terraform reads it as its own)",
			}},
		},
		{
			name: "tfvars whose secret_env misses a function", args: []string{"--tfvars", badSecrets}, vars: map[string]string{"SCEP_CHALLENGE": "x", "RECORD_SEALING_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, code: exitProblem,
			want: configReport{Source: badSecrets + " (adapter_config)", Problems: []string{
				`secret_env.SCEP_CHALLENGE.functions lacks "claim": caConnections["corp-scep"] reads it there`,
				`secret_env.RECORD_SEALING_KEY.functions lacks "poll": every function (a SCEP challenge is sealed) reads it there`,
			}, AllowedCustomers: []string{"C1"}, CAConnections: []connectionReport{{Ref: "corp-scep", Type: "scep", Built: true}}},
		},
		{
			name: "tfvars whose secret_env lacks the sealing key", args: []string{"--tfvars", noSealing}, vars: map[string]string{"SCEP_CHALLENGE": "x", "RECORD_SEALING_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, code: exitProblem,
			want: configReport{Source: noSealing + " (adapter_config)", Problems: []string{
				"secret_env does not declare RECORD_SEALING_KEY, which every function (a SCEP challenge is sealed) reads",
			}, AllowedCustomers: []string{"C1"}, CAConnections: []connectionReport{{Ref: "corp-scep", Type: "scep", Built: true}}},
		},
		{
			name: "the terraform example", args: []string{"--tfvars", "../../../terraform/terraform.tfvars.example"}, vars: map[string]string{"SCEP_CHALLENGE": "x", "RECORD_SEALING_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, code: exitOK,
			want: configReport{Source: "../../../terraform/terraform.tfvars.example (adapter_config)", OK: true, Problems: []string{}, AllowedCustomers: []string{"C0abc1234"},
				CAConnections: []connectionReport{{Ref: "corp-scep", Type: "scep", Built: true}}, Profiles: []string{"device-wifi"}},
		},
		{
			name: "missing file", args: []string{"--config", "/nonexistent.json"}, code: exitProblem,
			want: configReport{Problems: []string{"read the adapter config: open /nonexistent.json: no such file or directory"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"config", "check"}, tc.args...)
			r := runCLI(t, tc.vars, args...)
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.text != "" {
				if diff := cmp.Diff(tc.text, r.stdout); diff != "" {
					t.Errorf("text output (-want +got):\n%s", diff)
				}
			}
			j := runCLI(t, tc.vars, append(args, "--json")...)
			if j.code != tc.code {
				t.Errorf("--json: exit code %d, want %d", j.code, tc.code)
			}
			var got configReport
			decodeJSON(t, j, &got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("--json output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigCheckConnect(t *testing.T) {
	good := writeFile(t, "good.json", devConfig)
	r := runCLI(t, nil, "config", "check", "--config", good, "--connect", "--json")
	if r.code != exitOK {
		t.Fatalf("exit code %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	var got configReport
	decodeJSON(t, r, &got)
	if len(got.CAConnections) != 1 || got.CAConnections[0].Reachable == nil || !*got.CAConnections[0].Reachable {
		t.Fatalf("the development CA is not reported reachable: %+v", got.CAConnections)
	}
	if diff := cmp.Diff("1 CA certificate(s): CN=certprov development CA", got.CAConnections[0].Answer); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	unreachable := writeFile(t, "scep.json", `{"allowedCustomers": ["C1"], "caConnections": {"s": {"type": "scep", "settings": {"url": "http://127.0.0.1:1/scep", "challenge": {"type": "none"}}}}, "profiles": {}}`)
	r = runCLI(t, nil, "config", "check", "--config", unreachable, "--connect")
	if r.code != exitUnreachable {
		t.Errorf("unreachable SCEP server: exit code %d, want %d\n%s%s", r.code, exitUnreachable, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "CA connection s (scep): ok; UNREACHABLE: ") {
		t.Errorf("no UNREACHABLE line:\n%s", r.stdout)
	}
}

// The claim reads a SCEP connection's secrets only where it builds it: with a
// challenge. A challenge-free one's secrets (its signer key) go to issue alone.
func TestSecretEnvFollowsWhatTheClaimBuilds(t *testing.T) {
	t.Parallel()
	scepWith := func(challenge string) config.CAConnection {
		return config.CAConnection{Type: "scep", Settings: json.RawMessage(`{"url":"http://ca.example/scep","challenge":` + challenge + `,"signerKeyEnv":"SIGNER"}`)}
	}
	tests := []struct {
		name string
		conn config.CAConnection
		want []string
	}{
		{"no challenge", scepWith(`{"type":"none"}`), nil},
		{"static challenge", scepWith(`{"type":"static","secretEnv":"SCEP_CHALLENGE"}`), []string{
			`secret_env.SIGNER.functions lacks "claim": caConnections["s"] reads it there`,
		}},
	}
	for _, tc := range tests {
		a := config.Adapter{CAConnections: map[string]config.CAConnection{"s": tc.conn}}
		got := checkSecretEnv(a, map[string][]string{"s": {"SIGNER"}}, false, map[string][]string{"SIGNER": {"issue"}})
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: checkSecretEnv (-want +got):\n%s", tc.name, diff)
		}
	}
}
