package main

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/security/privateca/apiv1/privatecapb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/chromeos-certprov/adapter/shared/tooling/ca/castest"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
)

// TestConnectNDES: config check --connect on a SCEP connection with an NDES
// challenge asks the real scepserver for GetCACaps and GetCACert and the NDES
// admin page for a one-time password, and reports an account NDES refuses.
func TestConnectNDES(t *testing.T) {
	s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
	admin := sceptest.StartNDESAdmin(t)
	settings, err := json.Marshal(map[string]any{"url": s.URL, "challenge": map[string]any{
		"type": "ndes", "adminUrl": admin.URL, "usernameEnv": "NDES_USER", "passwordEnv": "NDES_PASSWORD"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, "ndes.json", `{"allowedCustomers": ["C1"], "caConnections": {"ndes": {"type": "scep", "settings": `+string(settings)+`}}, "profiles": {}}`)
	sealing := "RECORD_SEALING_KEY"
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))

	for _, tc := range []struct {
		name     string
		password string
		code     int
		checks   []string
		fetches  int
	}{
		{"the admin page hands out a password", admin.Password, exitOK, []string{"GetCACaps: ", "GetCACert: 1 certificate(s)", "NDES admin page: issued a one-time challenge password"}, 1},
		{"NDES refuses the account", "wrong", exitUnreachable, []string{"GetCACaps: ", "GetCACert: "}, 1},
	} {
		before := admin.Fetches()
		r := runCLI(t, map[string]string{"NDES_USER": admin.Username, "NDES_PASSWORD": tc.password, sealing: key}, "config", "check", "--config", cfg, "--connect", "--json")
		if r.code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, r.code, tc.code, r.stdout, r.stderr)
		}
		var got configReport
		decodeJSON(t, r, &got)
		if len(got.CAConnections) != 1 {
			t.Fatalf("%s: %+v", tc.name, got.CAConnections)
		}
		c := got.CAConnections[0]
		if len(c.Checks) != len(tc.checks) {
			t.Fatalf("%s: checks %q, want %d starting %q", tc.name, c.Checks, len(tc.checks), tc.checks)
		}
		for i, want := range tc.checks {
			if !strings.HasPrefix(c.Checks[i], want) {
				t.Errorf("%s: check %d = %q, want it to start %q", tc.name, i, c.Checks[i], want)
			}
		}
		if tc.code != exitOK && (c.Reachable == nil || *c.Reachable || !strings.Contains(c.Answer, "refused the account")) {
			t.Errorf("%s: reachable %v, answer %q", tc.name, c.Reachable, c.Answer)
		}
		if strings.Contains(r.stdout+r.stderr, admin.Password) {
			t.Errorf("%s: the output reveals the NDES password", tc.name)
		}
		if n := admin.Fetches() - before; tc.code == exitOK && n != tc.fetches {
			t.Errorf("%s: %d passwords fetched, want %d", tc.name, n, tc.fetches)
		}
	}
}

// TestConnectCAS: config check --connect on a CAS connection reads the
// pool's CA certificates and the certificate template through the real
// privateca client (the CAS fake), and reports a template that does not exist.
func TestConnectCAS(t *testing.T) {
	addr, fake := castest.Start(t)
	const pool = "projects/p/locations/us-central1/caPools/corp"
	const template = "projects/p/locations/us-central1/certificateTemplates/wifi"
	fake.AddPool(pool, castest.CA{ID: "issuing-1", Subordinate: true})
	fake.AddTemplate(&privatecapb.CertificateTemplate{Name: template, MaximumLifetime: durationpb.New(90 * 24 * time.Hour)})

	for _, tc := range []struct {
		name, template string
		code           int
		lastCheck      string
		answer         string
	}{
		{"no template", "", exitOK, "certificate template: none", ""},
		{"the template exists", template, exitOK, "certificate template " + template + ": found", ""},
		{"no such template", template + "-gone", exitUnreachable, "pool " + pool + ": 1 root(s)", "get the certificate template " + template + "-gone"},
	} {
		s := map[string]any{"caPool": pool, "endpoint": addr}
		if tc.template != "" {
			s["certificateTemplate"] = tc.template
		}
		settings, _ := json.Marshal(s)
		cfg := writeFile(t, "cas.json", `{"allowedCustomers": ["C1"], "caConnections": {"cas": {"type": "cas", "settings": `+string(settings)+`}}, "profiles": {}}`)
		r := runCLI(t, nil, "config", "check", "--config", cfg, "--connect", "--json")
		if r.code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, r.code, tc.code, r.stdout, r.stderr)
		}
		var got configReport
		decodeJSON(t, r, &got)
		c := got.CAConnections[0]
		if len(c.Checks) == 0 || !strings.HasPrefix(c.Checks[len(c.Checks)-1], tc.lastCheck) {
			t.Errorf("%s: checks %q, want the last to start %q", tc.name, c.Checks, tc.lastCheck)
		}
		if tc.answer != "" && !strings.Contains(c.Answer, tc.answer) {
			t.Errorf("%s: answer %q, want it to contain %q", tc.name, c.Answer, tc.answer)
		}
	}
}
