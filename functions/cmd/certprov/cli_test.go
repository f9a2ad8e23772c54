package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/config"
)

// result is what one run printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs certprov with args and the environment vars.
func runCLI(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, config.MapLookup(vars))
	return result{code, out.String(), errOut.String()}
}

// decodeJSON decodes a command's --json output into v.
func decodeJSON(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("--json output does not decode: %v\n%s\nstderr: %s", err, r.stdout, r.stderr)
	}
}

// writeFile writes content into a file of t's temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const testdata = "../../../shared/tooling/ca/e2e/testdata/"

func TestUsage(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		code      int
		stdoutHas string
		stderrHas string
	}{
		{"no command", nil, exitUsage, "", "Commands:"},
		{"help", []string{"--help"}, exitOK, "Exit codes: 0 ok", ""},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"command help", []string{"config", "check", "--help"}, exitOK, "Examples:\n  certprov config check --config", ""},
		{"bad flag", []string{"config", "check", "--nope"}, exitUsage, "", "flag provided but not defined: -nope"},
		{"missing config", []string{"config", "check"}, exitUsage, "", "--config FILE or --tfvars FILE is required"},
		{"both configs", []string{"config", "check", "--config", "a", "--tfvars", "b"}, exitUsage, "", "choose one"},
		{"stray argument", []string{"config", "check", "--config", "a", "extra"}, exitUsage, "", `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tc.stdoutHas) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdoutHas, r.stdout)
			}
			if !strings.Contains(r.stderr, tc.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderrHas, r.stderr)
			}
		})
	}
}
