package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca/scep"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/sceptest"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// scepServerConfig is the scepserver example config pointed at s.
func scepServerConfig(t *testing.T, s *sceptest.Server) *simulation.Options {
	t.Helper()
	a := loadExample(t, "scep-scepserver.json", "http://127.0.0.1:8080/scep", s.URL)
	o := options(8, a, secrets(map[string]string{"SCEP_CHALLENGE": s.Challenge}))
	return &o
}

// depotIssued counts the certificates in scepserver's own database
// (depot/index.txt, one line per certificate it signed).
func depotIssued(t *testing.T, s *sceptest.Server) int {
	t.Helper()
	f, err := os.Open(filepath.Join(s.Dir, "depot", "index.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if strings.TrimSpace(sc.Text()) != "" {
			n++
		}
	}
	return n
}

func TestSCEPServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("enrolls once under faults", func(t *testing.T) {
		s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
		// scepserver keeps no SCEP transactions: a crash between its answer
		// and the record would enroll again (TestCrashAfterCAAnswered).
		o := withFaults(*scepServerConfig(t, s), crashAfterCA)
		rep, procs := run(t, ctx, o)
		checkUploaded(t, rep, procs, chain{roots: []*x509.Certificate{s.Root}})
		if got := depotIssued(t, s); got != o.Clients {
			t.Errorf("scepserver signed %d certificates, want %d", got, o.Clients)
		}
	})

	t.Run("wrong challenge", func(t *testing.T) {
		s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
		o := scepServerConfig(t, s)
		o.Clients = 4
		o.Secrets = secrets(map[string]string{"SCEP_CHALLENGE": "not-" + s.Challenge})
		l := newLogs(nil)
		o.Log = l.Logger()
		rep, procs := run(t, ctx, *o)
		checkFailed(t, rep, procs, scep.MsgChallengeRejected, 1)
		checkReasons(t, l, "process failing", o.Clients, "SCEP pkiStatus FAILURE, failInfo badRequest")
		if got := depotIssued(t, s); got != 0 {
			t.Errorf("scepserver signed %d certificates, want none", got)
		}
	})

	t.Run("outage ends", func(t *testing.T) {
		s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
		o := scepServerConfig(t, s)
		o.Clients = 6
		bin, err := sceptest.SCEPServerBin()
		if err != nil {
			t.Fatal(err)
		}
		addr := hostPort(t, s.URL)
		out := newOutage(o.Clients, startAgain(t, "scepserver", addr, bin,
			"-depot", filepath.Join(s.Dir, "depot"), "-http-addr", addr, "-challenge", s.Challenge, "-allowrenew", "0"))
		o.Log = newLogs(out.observe).Logger()
		s.Stop()
		rep, procs := run(t, ctx, *o)
		out.check(t)
		checkUploaded(t, rep, procs, chain{roots: []*x509.Certificate{s.Root}})
		if rep.CACalls <= o.Clients {
			t.Errorf("%d CA calls for %d processes: the outage did not reach the issue step", rep.CACalls, o.Clients)
		}
	})

	t.Run("outage outlasts the retries", func(t *testing.T) {
		s := sceptest.StartSCEPServer(t, sceptest.SCEPServerOptions{})
		o := scepServerConfig(t, s)
		o.Clients = 4
		o.TaskMaxBackoff = 200 * time.Millisecond
		l := newLogs(nil)
		o.Log = l.Logger()
		s.Stop()
		rep, procs := run(t, ctx, *o)
		checkFailed(t, rep, procs, msgCAUnreachable, 1)
		checkReasons(t, l, "process failing", o.Clients, "CA unavailable on the last attempt: ca transient: scep GetCACaps: the CA is unreachable")
	})
}

// stepCAConfig is the step-ca example config pointed at s.
func stepCAConfig(t *testing.T, s *sceptest.Server) *simulation.Options {
	t.Helper()
	a := loadExample(t, "scep-step-ca.json",
		"http://ca.corp.example:8080/scep/certprov", s.URL,
		// GetCACert of step-ca answers the intermediate: the pin names it.
		"5d:41:40:2a:bc:4b:2a:76:b9:71:9d:91:10:17:c5:92:5d:41:40:2a:bc:4b:2a:76:b9:71:9d:91:10:17:c5:92", scep.Fingerprint(s.CA))
	o := options(8, a, secrets(map[string]string{"SCEP_CHALLENGE": s.Challenge}))
	return &o
}

func TestStepCA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("enrolls once under faults", func(t *testing.T) {
		s := sceptest.StartStepCA(t, sceptest.StepCAOptions{})
		o := withFaults(*stepCAConfig(t, s), crashAfterCA)
		rep, procs := run(t, ctx, o)
		// The adapter checked each certificate against the pinned
		// intermediate alone; here against the root.
		checkUploaded(t, rep, procs, chain{roots: []*x509.Certificate{s.Root}, intermediates: []*x509.Certificate{s.CA}})
	})

	t.Run("wrong challenge", func(t *testing.T) {
		s := sceptest.StartStepCA(t, sceptest.StepCAOptions{})
		o := stepCAConfig(t, s)
		o.Clients = 4
		o.Secrets = secrets(map[string]string{"SCEP_CHALLENGE": "not-" + s.Challenge})
		l := newLogs(nil)
		o.Log = l.Logger()
		rep, procs := run(t, ctx, *o)
		checkFailed(t, rep, procs, scep.MsgChallengeRejected, 1)
		checkReasons(t, l, "process failing", o.Clients, "SCEP pkiStatus FAILURE, failInfo badRequest")
	})

	t.Run("outage ends", func(t *testing.T) {
		s := sceptest.StartStepCA(t, sceptest.StepCAOptions{})
		o := stepCAConfig(t, s)
		o.Clients = 6
		bin, err := sceptest.StepCABin()
		if err != nil {
			t.Fatal(err)
		}
		out := newOutage(o.Clients, startAgain(t, "step-ca", hostPort(t, s.URL), bin, filepath.Join(s.Dir, "ca.json")))
		o.Log = newLogs(out.observe).Logger()
		s.Stop()
		rep, procs := run(t, ctx, *o)
		out.check(t)
		checkUploaded(t, rep, procs, chain{roots: []*x509.Certificate{s.Root}, intermediates: []*x509.Certificate{s.CA}})
	})
}

// ndesConfig is the NDES example config pointed at the NDES stand-in n,
// asking again about a PENDING request after pollInterval.
func ndesConfig(t *testing.T, n *sceptest.NDES, clients int, pollInterval string) *simulation.Options {
	t.Helper()
	a := loadExample(t, "scep-ndes.json",
		"https://ndes.corp.example/certsrv/mscep/mscep.dll", n.URL,
		"https://ndes.corp.example/certsrv/mscep_admin/", n.Admin.URL,
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", scep.Fingerprint(n.CA),
		`"pollInterval": "5m"`, `"pollInterval": "`+pollInterval+`"`)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	o := options(clients, a, secrets(map[string]string{
		"NDES_USERNAME": n.Admin.Username, "NDES_PASSWORD": n.Admin.Password, "SCEP_SIGNER_KEY": signer,
	}))
	return &o
}

// scepProfile is the scepProfile of the SCEP processes: a subject and a UPN
// from the user's email name, or the device's serial number for a device,
// and a Microsoft certificate template.
var scepProfile = cpemulator.ScepSpec{
	SubjectCommonName:   "${USER_EMAIL_NAME:DEVICE_SERIAL_NUMBER}",
	Organization:        "Example Corp",
	OrganizationalUnits: []string{"ChromeOS"},
	Country:             "US",
	SubjectAltNames: []cpemulator.SubjectAltName{
		{Type: "OTHER_NAME_USER_PRINCIPAL_NAME", Value: "${USER_EMAIL_NAME:DEVICE_SERIAL_NUMBER}@corp.example"},
	},
	KeyUsages:               []string{"KEY_USAGE_SIGNING", "KEY_USAGE_KEY_ENCIPHERMENT"},
	CertificateTemplateName: "ChromeOSClient",
}

var (
	userName = regexp.MustCompile(`^user-[0-9]+$`)  // the emulator's user-N@example.com
	serial   = regexp.MustCompile(`^[0-9A-Z]{10}$`) // the emulator's serial numbers
)

// checkSCEPProfile checks that each leaf carries what scepProfile asks for:
// the UPN otherName SAN and the Microsoft certificate-template extension,
// with the variables filled in for the process's user or device.
func checkSCEPProfile(t *testing.T, procs []cpemulator.Snapshot, leaves []*x509.Certificate) {
	t.Helper()
	for i, leaf := range leaves {
		if leaf == nil {
			continue
		}
		p := procs[i]
		cn := leaf.Subject.CommonName
		want := serial
		if p.Kind == cpemulator.User {
			want = userName
		}
		if !want.MatchString(cn) {
			t.Errorf("%s (%s): common name %q does not match %s", p.Name, p.Kind, cn, want)
		}
		got := struct {
			UPNs     []string
			Template string
			Org, OU  []string
		}{sceptest.UserPrincipalNames(leaf), sceptest.MSTemplateName(leaf), leaf.Subject.Organization, leaf.Subject.OrganizationalUnit}
		wantExt := struct {
			UPNs     []string
			Template string
			Org, OU  []string
		}{[]string{cn + "@corp.example"}, "ChromeOSClient", []string{"Example Corp"}, []string{"ChromeOS"}}
		if diff := cmp.Diff(wantExt, got); diff != "" {
			t.Errorf("%s (%s): certificate (-want +got):\n%s", p.Name, p.Kind, diff)
		}
	}
}

// TestNDESPending enrolls SCEP processes (scepProfile from the API) through
// the NDES stand-in: RA certificates, a one-time challenge fetched per
// process from mscep_admin, and two PENDING answers before SUCCESS, answered
// by asking again through the issue queue (CertPoll), never by re-signing.
// NDES keeps its transactions, so even a crash after its answer issues once.
func TestNDESPending(t *testing.T) {
	t.Parallel()
	n := sceptest.StartNDES(t, sceptest.ResponderOptions{PendingAnswers: 2})
	o := withFaults(*ndesConfig(t, n, 8, "200ms"))
	ctx := simulation.WithSCEPClients(context.Background(), simulation.SCEPClients{Profile: scepProfile})
	rep, procs := run(t, ctx, o)
	leaves := checkUploaded(t, rep, procs, chain{roots: []*x509.Certificate{n.CA}})
	checkSCEPProfile(t, procs, leaves)
	for _, p := range procs {
		if !p.IsSCEP {
			t.Errorf("%s is not a SCEP process", p.Name)
		}
	}
	pkcsReqs, certPolls, issued := n.Counts()
	// Per process: CertPoll (unknown), PKCSReq (PENDING), CertPoll
	// (PENDING), CertPoll (SUCCESS); retries add CertPolls only.
	if pkcsReqs != o.Clients || issued != o.Clients || certPolls < 3*o.Clients {
		t.Errorf("NDES got %d PKCSReqs and %d CertPolls and issued %d; want %d, at least %d, %d", pkcsReqs, certPolls, issued, o.Clients, 3*o.Clients, o.Clients)
	}
	if got := len(n.Admin.Passwords()); got < o.Clients {
		t.Errorf("NDES handed out %d challenges for %d processes", got, o.Clients)
	}
}

// TestSCEPPendingPastDeadline: a CA that keeps answering PENDING past the
// poll deadline ends the process with a clear message.
func TestSCEPPendingPastDeadline(t *testing.T) {
	t.Parallel()
	n := sceptest.StartNDES(t, sceptest.ResponderOptions{PendingAnswers: 1 << 20})
	o := ndesConfig(t, n, 3, "200ms")
	o.Schedule.Deadline = 1500 * time.Millisecond
	l := newLogs(nil)
	o.Log = l.Logger()
	rep, procs := run(t, context.Background(), *o)
	checkFailed(t, rep, procs, msgCANotInTime, 1)
	checkReasons(t, l, "process failing", o.Clients, "the CA had not issued by the deadline")
}

// TestStepCAProfileExtensions: SCEP processes through step-ca with a
// provisioner template that copies the request's extensions (as an AD CS
// template that takes them from the request): the UPN and the template name
// reach the issued certificate.
func TestStepCAProfileExtensions(t *testing.T) {
	t.Parallel()
	s := sceptest.StartStepCA(t, sceptest.StepCAOptions{CopyExtensions: true})
	o := stepCAConfig(t, s)
	o.Clients = 6
	ctx := simulation.WithSCEPClients(context.Background(), simulation.SCEPClients{Profile: scepProfile})
	rep, procs := run(t, ctx, *o)
	leaves := checkUploaded(t, rep, procs, chain{roots: []*x509.Certificate{s.Root}, intermediates: []*x509.Certificate{s.CA}})
	checkSCEPProfile(t, procs, leaves)
}
