package ca_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/config"
)

// seeded marks every secret the test plants: no error may hold one.
var seeded = regexp.MustCompile(`SEEKRIT[0-9]+`)

// TestConfigErrorsHoldNoSecret seeds the adapter config and the environment
// with secrets where an administrator may put them (a URL's password or
// query, a password written where its variable's name belongs, secret
// values that do not parse) and checks that no error of config.Load or of
// any connector's settings holds one. The settings are built through the
// production path: adapter.BuildCAs with the environment's secrets.
func TestConfigErrorsHoldNoSecret(t *testing.T) {
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nSEEKRIT90\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"GOOGLE_CLOUD_PROJECT": "proj", "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1",
		"EST_USER": "SEEKRIT91", "EST_PASSWORD": "SEEKRIT92", "EMPTY": "",
		"BAD_KEY":  "-----BEGIN PRIVATE KEY-----\nSEEKRIT93\n-----END PRIVATE KEY-----\n",
		"BAD_KEY2": "SEEKRIT94 not pem",
	}
	conns := map[string]map[string]any{
		// EST
		"est-url-password":     {"type": "est", "settings": map[string]any{"url": "https://estuser:SEEKRIT1@est.example.com"}},
		"est-url-parse":        {"type": "est", "settings": map[string]any{"url": "https://estuser:SEEKRIT2@est example.com/%zz"}},
		"est-url-query":        {"type": "est", "settings": map[string]any{"url": "https://est.example.com/?token=SEEKRIT3"}},
		"est-url-path":         {"type": "est", "settings": map[string]any{"url": "https://est.example.com/SEEKRIT4"}},
		"est-url-scheme":       {"type": "est", "settings": map[string]any{"url": "http://est.example.com/#SEEKRIT5"}},
		"est-password-literal": {"type": "est", "settings": map[string]any{"url": "https://est.example.com", "usernameEnv": "EST_USER", "passwordEnv": "SEEKRIT6 literal!"}},
		"est-password-unset":   {"type": "est", "settings": map[string]any{"url": "https://est.example.com", "usernameEnv": "EST_USER", "passwordEnv": "SEEKRIT7pw"}},
		"est-username-literal": {"type": "est", "settings": map[string]any{"url": "https://est.example.com", "usernameEnv": "SEEKRIT8user", "passwordEnv": "EST_PASSWORD"}},
		"est-password-empty":   {"type": "est", "settings": map[string]any{"url": "https://est.example.com", "usernameEnv": "EST_USER", "passwordEnv": "EMPTY"}},
		"est-password-only":    {"type": "est", "settings": map[string]any{"url": "https://est.example.com", "passwordEnv": "SEEKRIT9"}},
		"est-client-key":       {"type": "est", "settings": map[string]any{"url": "https://est.example.com", "clientCertFile": certFile, "clientKeyEnv": "SEEKRIT10key"}},
		"est-client-key-bad":   {"type": "est", "settings": map[string]any{"url": "https://est.example.com", "clientCertFile": certFile, "clientKeyEnv": "BAD_KEY"}},
		"est-timeout":          {"type": "est", "settings": map[string]any{"url": "https://est.example.com", "timeout": "SEEKRIT11"}},
		// SCEP
		"scep-url-password":     {"type": "scep", "settings": map[string]any{"url": "http://u:SEEKRIT20@scep.example.com/scep", "challenge": map[string]any{"type": "none"}}},
		"scep-url-query":        {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep?password=SEEKRIT21", "challenge": map[string]any{"type": "none"}}},
		"scep-url-parse":        {"type": "scep", "settings": map[string]any{"url": "http://u:SEEKRIT22@[bad/scep", "challenge": map[string]any{"type": "none"}}},
		"scep-url-scheme":       {"type": "scep", "settings": map[string]any{"url": "ftp://scep.example.com/SEEKRIT23", "challenge": map[string]any{"type": "none"}}},
		"scep-url-nohost":       {"type": "scep", "settings": map[string]any{"url": "http:///SEEKRIT24", "challenge": map[string]any{"type": "none"}}},
		"scep-admin-password":   {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "ndes", "adminUrl": "https://u:SEEKRIT25@ndes.example.com/certsrv/mscep_admin/", "usernameEnv": "EST_USER", "passwordEnv": "EST_PASSWORD"}}},
		"scep-admin-parse":      {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "ndes", "adminUrl": "https://u:SEEKRIT26@ndes host/%zz", "usernameEnv": "EST_USER", "passwordEnv": "EST_PASSWORD"}}},
		"scep-secret-literal":   {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "static", "secretEnv": "SEEKRIT27 literal!"}}},
		"scep-secret-unset":     {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "static", "secretEnv": "SEEKRIT28"}}},
		"scep-password-literal": {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "ndes", "adminUrl": "https://ndes.example.com/certsrv/mscep_admin/", "usernameEnv": "EST_USER", "passwordEnv": "SEEKRIT29pw"}}},
		"scep-username-literal": {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "ndes", "adminUrl": "https://ndes.example.com/certsrv/mscep_admin/", "usernameEnv": "SEEKRIT30 user", "passwordEnv": "EST_PASSWORD"}}},
		"scep-signer-literal":   {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "none"}, "signerKeyEnv": "SEEKRIT31"}},
		"scep-signer-bad":       {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "none"}, "signerKeyEnv": "BAD_KEY"}},
		"scep-signer-bad2":      {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "none"}, "signerKeyEnv": "BAD_KEY2"}},
		"scep-unwanted":         {"type": "scep", "settings": map[string]any{"url": "http://scep.example.com/scep", "challenge": map[string]any{"type": "none", "secretEnv": "SEEKRIT32", "passwordEnv": "SEEKRIT33"}}},
		// dev CA
		"dev-key-literal": {"type": "dev", "settings": map[string]any{"certFile": certFile, "keyEnv": "SEEKRIT40 literal"}},
		"dev-key-unset":   {"type": "dev", "settings": map[string]any{"certFile": certFile, "keyEnv": "SEEKRIT41"}},
		"dev-key-bad":     {"type": "dev", "settings": map[string]any{"certFile": certFile, "keyEnv": "BAD_KEY"}},
		"dev-both":        {"type": "dev", "settings": map[string]any{"certFile": certFile, "keyFile": filepath.Join(dir, "k.pem"), "keyEnv": "SEEKRIT42"}},
		"dev-key-only":    {"type": "dev", "settings": map[string]any{"keyEnv": "SEEKRIT43"}},
		// CAS has no secrets; a wrong type of value is reported without it.
		"cas-bad": {"type": "cas", "settings": map[string]any{"caPool": 5, "lifetime": "SEEKRIT50"}},
	}
	raw, err := json.Marshal(map[string]any{
		"allowedCustomers": []string{"C01"},
		"caConnections":    conns,
		"profiles":         map[string]any{"p": map[string]any{"subject": map[string]any{"commonName": "x"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	env["CERTPROV_CONFIG"] = string(raw)
	lookup := config.MapLookup(env)
	cfg, err := config.Load(lookup, adapter.ConnectorTypes())
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	// Each connection alone, so that one connector's failure cannot hide another's.
	for ref, c := range cfg.Adapter.CAConnections {
		one := config.Adapter{AllowedCustomers: cfg.Adapter.AllowedCustomers, CAConnections: map[string]config.CAConnection{ref: c}}
		_, err := adapter.BuildCAs(context.Background(), one, adapter.EnvSecrets(lookup))
		if err == nil {
			t.Errorf("%s: no error", ref)
			continue
		}
		if s := seeded.FindString(err.Error()); s != "" {
			t.Errorf("%s: the error holds the secret %s: %v", ref, s, err)
		}
	}

	// The adapter config's own errors, with secrets where they do not belong.
	for i, bad := range []string{
		`{"allowedCustomers":["SEEKRIT60"],"caConnections":{"x":{"type":"dev","settings":{"password":"SEEKRIT61"}}}`,
		`{"allowedCustomers":["C01"],"caConnections":{"x":{"type":"SEEKRIT62"}},"profiles":{}} trailing SEEKRIT63`,
		`{"allowedCustomers":["C01"],"caConnections":{"x":{"type":"dev"}},"SEEKRIT64":"SEEKRIT65"}`,
		`{"allowedCustomers":"SEEKRIT66"}`,
		`{"allowedCustomers":[SEEKRIT67]}`,
		`{"caConnections":{"x":{"type":"dev","settings":"SEEKRIT68"}}, "allowedCustomers":["C01"], "profiles":{"p":{"subject":{"commonName":"SEEKRIT69"}, "validity":"SEEKRIT70"}}}`,
	} {
		env := map[string]string{"GOOGLE_CLOUD_PROJECT": "proj", "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1", "CERTPROV_CONFIG": bad}
		_, err := config.Load(config.MapLookup(env), adapter.ConnectorTypes())
		if err == nil {
			continue
		}
		// Customer ids, connector types and profile text are not secrets:
		// only a setting value that may be one is checked here.
		for _, s := range seeded.FindAllString(err.Error(), -1) {
			switch s {
			case "SEEKRIT60", "SEEKRIT62", "SEEKRIT64", "SEEKRIT69", "SEEKRIT70":
			default:
				t.Errorf("config %d: the error holds the secret %s: %v", i, s, err)
			}
		}
	}
}

func TestSecret(t *testing.T) {
	secrets := adapter.EnvSecrets(config.MapLookup(map[string]string{"SET": "value", "EMPTY": ""}))
	for _, tc := range []struct {
		name, want string
	}{
		{"SET", ""},
		{"", "passwordEnv is required"},
		{"hunter2 !", "passwordEnv is not an environment variable name"},
		{"UNSET", "passwordEnv: the environment variable it names: secret environment variable <passwordEnv> is not set"},
		{"EMPTY", "passwordEnv: the environment variable it names: secret environment variable <passwordEnv> is not set"},
	} {
		v, err := ca.Secret(secrets, "passwordEnv", tc.name)
		got := fmt.Sprint(err)
		if err == nil {
			got = ""
		}
		if tc.want == "" && (err != nil || v != "value") {
			t.Errorf("%q: %q, %v; want the value", tc.name, v, err)
		}
		if tc.want != "" && (err == nil || !regexp.MustCompile(regexp.QuoteMeta(tc.want)).MatchString(got)) {
			t.Errorf("%q: error %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := ca.Secret(nil, "keyEnv", "KEY"); err == nil {
		t.Error("no secrets function: no error")
	}
}
