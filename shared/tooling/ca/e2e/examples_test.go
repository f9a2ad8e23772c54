package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

// TestExamplesParse: every example adapter config in testdata parses as the
// adapter parses CERTPROV_CONFIG, and its CA connection is the type its
// name says. (Each is also run against its server by the other tests.)
func TestExamplesParse(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		a, err := config.ParseAdapter(b, adapter.ConnectorTypes())
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		got[filepath.Base(f)] = a.CAConnections[cpemulator.DefaultCARef].Type
	}
	want := map[string]string{
		"cas.json": "cas", "dev.json": "dev", "est.json": "est",
		"scep-ndes.json": "scep", "scep-scepserver.json": "scep", "scep-step-ca.json": "scep",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("examples and their connector types (-want +got):\n%s", diff)
	}
}

// devExample is the dev example with a development CA written to the
// files it names.
func devExample(t *testing.T) (*config.Adapter, *x509.Certificate) {
	t.Helper()
	cert, key, err := devca.Generate("certprov development CA")
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "dev-ca.pem"), filepath.Join(dir, "dev-ca.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadExample(t, "dev.json", "/etc/certprov/dev-ca.pem", certFile, "/etc/certprov/dev-ca.key", keyFile), cert
}

func TestDevExample(t *testing.T) {
	t.Parallel()
	a, cert := devExample(t)
	rep, procs := run(t, context.Background(), options(6, a, nil))
	checkUploaded(t, rep, procs, chain{roots: []*x509.Certificate{cert}})
}

// TestEmptyFieldFailsNamingIt: a profile whose template renders empty for a
// process (a user variable for a device, a device variable for a user
// session without one) fails the process before signData, naming the field.
func TestEmptyFieldFailsNamingIt(t *testing.T) {
	t.Parallel()
	const generic = "The certificate could not be filled in: the certificate field subject.commonName (%s) is empty for this device or user. Contact your administrator."
	const scepSAN = "The certificate could not be filled in: the certificate field scepProfile.subjectAltNames[0] (${USER_EMAIL}) is empty for this device or user. Contact your administrator."
	for _, tc := range []struct {
		name string
		scep bool
		// want is the device message by client kind; "" means uploaded.
		want map[cpemulator.ClientKind]string
	}{
		{"generic profiles", false, map[cpemulator.ClientKind]string{
			cpemulator.Device: strings.Replace(generic, "%s", "${USER_EMAIL}", 1),
			cpemulator.User:   strings.Replace(generic, "%s", "${DEVICE_SERIAL_NUMBER}", 1),
		}},
		{"SCEP profile", true, map[cpemulator.ClientKind]string{cpemulator.Device: scepSAN, cpemulator.User: ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, _ := devExample(t)
			dp, up := a.Profiles[cpemulator.DefaultDeviceProfileRef], a.Profiles[cpemulator.DefaultUserProfileRef]
			dp.Subject.CommonName, up.Subject.CommonName = "${USER_EMAIL}", "${DEVICE_SERIAL_NUMBER}"
			a.Profiles[cpemulator.DefaultDeviceProfileRef], a.Profiles[cpemulator.DefaultUserProfileRef] = dp, up
			ctx := context.Background()
			if tc.scep {
				ctx = simulation.WithSCEPClients(ctx, simulation.SCEPClients{Profile: cpemulator.ScepSpec{
					SubjectCommonName: "${USER_EMAIL:DEVICE_SERIAL_NUMBER}",
					SubjectAltNames:   []cpemulator.SubjectAltName{{Type: "RFC822_NAME", Value: "${USER_EMAIL}"}},
				}})
			}
			rep, procs := run(t, ctx, options(6, a, nil))
			if len(rep.Violations) > 0 {
				t.Errorf("violations: %v", rep.Violations)
			}
			for _, p := range procs {
				want := tc.want[p.Kind]
				if want == "" {
					if p.State != cpemulator.StateUploaded {
						t.Errorf("%s (%s): %s, want uploaded", p.Name, p.Kind, p.State)
					}
					continue
				}
				if p.State != cpemulator.StateFailed || p.FailureMessage != want || p.SignDataCalls != 0 {
					t.Errorf("%s (%s): %s with %q after %d signData; want failed with %q before signData", p.Name, p.Kind, p.State, p.FailureMessage, p.SignDataCalls, want)
				}
			}
		})
	}
}

// TestLocalRunWithSCEPExample runs the local command (go run
// ./functions/cmd/local -config FILE) with the scepserver example, its
// challenge in the environment as the example names it.
func TestLocalRunWithSCEPExample(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testenv.Unavailable(t, "the go command", err)
	}
	s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "scep-scepserver.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "scep.json")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(string(b), "http://127.0.0.1:8080/scep", s.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "local")
	build := exec.Command(goBin, "build", "-o", bin, "github.com/chromeos-certprov/adapter/functions/cmd/local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	report := filepath.Join(dir, "report.json")
	cmd := exec.Command(bin, "-config", cfg, "-clients", "6", "-fast-delay", "50ms-200ms", "-quiet", "-report", report)
	cmd.Env = append(os.Environ(), "SCEP_CHALLENGE="+s.Challenge, "POLL_INITIAL_DELAY=50ms", "POLL_MAX_DELAY=200ms", "POLL_DEADLINE=30s")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("local run: %v\n%s", err, out)
	}
	rb, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r simulation.Report
	if err := json.Unmarshal(rb, &r); err != nil {
		t.Fatal(err)
	}
	got := struct {
		Uploaded, SignData, Issued int
		Violations                 int
	}{r.Outcomes.Uploaded, r.APICalls["signData"], int(r.CertificatesIssued), len(r.Violations)}
	if diff := cmp.Diff(struct {
		Uploaded, SignData, Issued int
		Violations                 int
	}{6, 6, 6, 0}, got); diff != "" {
		t.Errorf("local run report (-want +got):\n%s\noutput:\n%s", diff, out)
	}
	if n := depotIssued(t, s); n != 6 {
		t.Errorf("scepserver signed %d certificates, want 6", n)
	}
}
