package main

import (
	"strings"
	"testing"
)

// render takes the directory variables' values from --directory: a value
// given fills the field, one missing is refused naming field and attribute.
func TestRenderDirectoryVariables(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "dir.json", `{"allowedCustomers": ["C1"], "caConnections": {"a": {"type": "dev"}},
		"profiles": {"p": {"subject": {"commonName": "${DEVICE_ASSET_ID:DEVICE_SERIAL_NUMBER}", "organizationalUnit": ["${USER_CUSTOM:Employment.costCenter}"]}}}}`)
	base := []string{"render", "--config", cfg, "--profile", "p", "--user", "ada@example.com", "--device-id", "D", "--serial", "S"}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"values given", []string{"--directory", "DEVICE_ASSET_ID=A123", "--directory", "USER_CUSTOM:Employment.costCenter=CC1"}, exitOK, "CN=A123,OU=CC1"},
		{"fallback", []string{"--directory", "USER_CUSTOM:Employment.costCenter=CC1"}, exitOK, "CN=S,OU=CC1"},
		{"missing without fallback", []string{"--directory", "DEVICE_ASSET_ID=A123"}, exitProblem, "fill in the user's custom attribute Employment.costCenter (customSchemas)"},
		{"not a directory variable", []string{"--directory", "DEVICE_SERIAL_NUMBER=x"}, exitUsage, "want NAME=VALUE with NAME a directory variable"},
	}
	for _, tc := range tests {
		r := runCLI(t, nil, append(append([]string{}, base...), tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s%s", tc.name, r.code, tc.code, tc.want, r.stdout, r.stderr)
		}
	}
}

// config check notes the profiles that read the directory, and the access
// they need; a config without directory variables gets no such note.
func TestConfigCheckNotesDirectoryVariables(t *testing.T) {
	t.Parallel()
	with := writeFile(t, "with.json", `{"allowedCustomers": ["C1"], "caConnections": {"a": {"type": "dev"}},
		"profiles": {"p": {"subject": {"commonName": "${DEVICE_ASSET_ID:DEVICE_SERIAL_NUMBER}"}}, "q": {"subject": {"commonName": "x"}}}}`)
	without := writeFile(t, "without.json", `{"allowedCustomers": ["C1"], "caConnections": {"a": {"type": "dev"}},
		"profiles": {"q": {"subject": {"commonName": "${DEVICE_SERIAL_NUMBER}"}}}}`)
	const note = "profiles p use directory variables: ClaimProcess and PollSignature need Directory API read access"
	if r := runCLI(t, nil, "config", "check", "--config", with); r.code != exitOK || !strings.Contains(r.stdout, note) {
		t.Errorf("with directory variables: exit %d, want %d and the note %q:\n%s%s", r.code, exitOK, note, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, "config", "check", "--config", without); r.code != exitOK || strings.Contains(r.stdout, "directory variables") {
		t.Errorf("without directory variables: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
