package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
)

var types = []string{"dev", "scep"}

const goodAdapter = `{"allowedCustomers":["C01"],"caConnections":{"ca":{"type":"dev"}},"profiles":{"p":{"subject":{"commonName":"${USER_EMAIL}"}}}}`

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(MapLookup(map[string]string{
		"GOOGLE_CLOUD_PROJECT": "proj", "CERTPROV_CONFIG": goodAdapter, "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1",
	}), types)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pipeline.DefaultPoll, c.Poll); diff != "" {
		t.Errorf("poll schedule (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"caller id", c.CallerInstanceID, "certprov-adapter-proj"},
		{"endpoint", c.APIEndpoint, DefaultAPIEndpoint},
		{"collection", c.FirestoreCollection, "certprovProcesses"},
		{"database", c.FirestoreDatabase, "(default)"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if c.Emulated || c.TasksMaxAttempts != 10 || c.RecordTTL != 720*time.Hour {
		t.Errorf("emulated %v, max attempts %d, TTL %s", c.Emulated, c.TasksMaxAttempts, c.RecordTTL)
	}
	if !c.Adapter.Allowed("C01") || c.Adapter.Allowed("C02") {
		t.Error("allow-list not applied")
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Load(MapLookup(map[string]string{
		"POLL_INITIAL_DELAY": "soon", "POLL_JITTER": "2", "LOG_LEVEL": "loud", "TASKS_MAX_ATTEMPTS": "0",
		"CERTPROV_CONFIG": `{"allowedCustomers":[],"caConnections":{"x":{"type":"ndes"}},"profiles":{"p":{"subject":{"commonName":"${NAME}"},"keyUsages":["SIGN"]}}}`,
	}), types)
	if err == nil {
		t.Fatal("Load succeeded on a bad configuration")
	}
	for _, want := range []string{
		"POLL_INITIAL_DELAY", "POLL_JITTER", "LOG_LEVEL", "TASKS_MAX_ATTEMPTS", "CALLER_INSTANCE_ID",
		"TASKS_POLL_QUEUE: required", "allowedCustomers is empty", `unknown connector type "ndes"`,
		"unknown variable ${NAME}", `unknown key usage "SIGN"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestParseAdapter(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, json, wantErr string }{
		{"good", goodAdapter, ""},
		{"unknown field", `{"allowedCustomers":["C"],"caConnections":{"a":{"type":"dev"}},"profile":{}}`, `unknown field "profile"`},
		{"trailing", goodAdapter + `{}`, "trailing data"},
		{"not json", `allowedCustomers: [C]`, "adapter config"},
		{"bad customer", `{"allowedCustomers":["a:b"],"caConnections":{"a":{"type":"dev"}}}`, "is not a customer id"},
		{"no CA", `{"allowedCustomers":["C"]}`, "caConnections is empty"},
		{"directory variable", `{"allowedCustomers":["C"],"caConnections":{"a":{"type":"dev"}},"profiles":{"p":{"subject":{"commonName":"${DEVICE_ASSET_ID:DEVICE_SERIAL_NUMBER}","organizationalUnit":["${USER_CUSTOM:Employment.costCenter}"]}}}}`, ""},
		{"custom field without a field", `{"allowedCustomers":["C"],"caConnections":{"a":{"type":"dev"}},"profiles":{"p":{"subject":{"commonName":"${USER_CUSTOM:Employment}"}}}}`, "USER_CUSTOM:Schema.field"},
		{"no subject", `{"allowedCustomers":["C"],"caConnections":{"a":{"type":"dev"}},"profiles":{"p":{}}}`, "would name no one"},
		{"bad SAN type", `{"allowedCustomers":["C"],"caConnections":{"a":{"type":"dev"}},"profiles":{"p":{"subjectAltNames":[{"type":"IP","value":"x"}]}}}`, `unknown SAN type "IP"`},
		{"bad validity", `{"allowedCustomers":["C"],"caConnections":{"a":{"type":"dev"}},"profiles":{"p":{"subject":{"commonName":"x"},"validity":"1y"}}}`, "validity"},
		{"unterminated", `{"allowedCustomers":["C"],"caConnections":{"a":{"type":"dev"}},"profiles":{"p":{"subject":{"commonName":"${USER_EMAIL"}}}}`, "unterminated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseAdapter([]byte(tc.json), types)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseAdapter: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseAdapter error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestConfigFile(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "adapter.json")
	if err := os.WriteFile(f, []byte(goodAdapter), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"CALLER_INSTANCE_ID": "x", "CLOUD_TASKS_EMULATOR_HOST": "h"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	if _, err := Load(MapLookup(with(map[string]string{"CERTPROV_CONFIG_FILE": f})), types); err != nil {
		t.Errorf("from file: %v", err)
	}
	if _, err := Load(MapLookup(with(map[string]string{"CERTPROV_CONFIG_FILE": f, "CERTPROV_CONFIG": goodAdapter})), types); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("both set: %v", err)
	}
	if _, err := Load(MapLookup(with(map[string]string{"CERTPROV_CONFIG_FILE": f + ".missing"})), types); err == nil {
		t.Error("a missing file was accepted")
	}
	if _, err := Load(MapLookup(base), types); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("no config: %v", err)
	}
}

// TestCATimeout: the CA call deadline is derived from the lease (half of
// it by default) and may not exceed half of it.
func TestCATimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env               map[string]string
		wantLease, wantCA time.Duration
		wantErr           string
	}{
		{env: nil, wantLease: 2 * time.Minute, wantCA: time.Minute},
		{env: map[string]string{"LEASE": "5m"}, wantLease: 5 * time.Minute, wantCA: 150 * time.Second},
		{env: map[string]string{"CA_TIMEOUT": "20s"}, wantLease: 2 * time.Minute, wantCA: 20 * time.Second},
		{env: map[string]string{"LEASE": "1m", "CA_TIMEOUT": "30s"}, wantLease: time.Minute, wantCA: 30 * time.Second},
		{env: map[string]string{"LEASE": "1m", "CA_TIMEOUT": "31s"}, wantErr: "CA_TIMEOUT 31s: must be at most half of LEASE (1m0s)"},
		{env: map[string]string{"CA_TIMEOUT": "5m"}, wantErr: "CA_TIMEOUT 5m0s: must be at most half of LEASE (2m0s)"},
		{env: map[string]string{"CA_TIMEOUT": "0"}, wantErr: "CA_TIMEOUT"},
		{env: map[string]string{"LEASE": "soon"}, wantErr: "LEASE"},
	} {
		env := map[string]string{"GOOGLE_CLOUD_PROJECT": "proj", "CERTPROV_CONFIG": goodAdapter, "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1"}
		for k, v := range tc.env {
			env[k] = v
		}
		c, err := Load(MapLookup(env), types)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want one containing %q", tc.env, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if c.Lease != tc.wantLease || c.CATimeout != tc.wantCA {
			t.Errorf("%v: lease %s, CA timeout %s; want %s, %s", tc.env, c.Lease, c.CATimeout, tc.wantLease, tc.wantCA)
		}
	}
}
