package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/security/privateca/apiv1/privatecapb"
	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/ca/cas"
	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/revocation"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/tooling/ca/castest"
	"github.com/chromeos-certprov/adapter/shared/tooling/testenv"
)

const casPool = "projects/p1/locations/us-central1/caPools/cli-pool"

// certsWorld is an inventory on the Firestore emulator with two device
// certificates issued by a CAS pool (the castest fake, through the real
// client) and one user certificate of a SCEP connection.
type certsWorld struct {
	vars    map[string]string
	fake    *castest.Fake
	entries map[string]inventory.Entry // by process id
}

func newCertsWorld(t *testing.T) *certsWorld {
	t.Helper()
	ctx := context.Background()
	addr := testenv.Firestore(t)
	envOnce.Do(func() { os.Setenv("FIRESTORE_EMULATOR_HOST", addr) })
	casAddr, fake := castest.Start(t)
	fake.AddPool(casPool)
	conn, err := cas.New(ctx, []byte(fmt.Sprintf(`{"caPool": %q, "endpoint": %q}`, casPool, casAddr)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := firestore.Open(ctx, project, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	coll := fmt.Sprintf("inventory-%d", seq.Add(1))
	inv := inventory.NewFirestore(c, coll)
	w := &certsWorld{fake: fake, entries: map[string]inventory.Entry{}}
	issue := func(pid string, life time.Duration, s inventory.Subject) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: pid}, DNSNames: []string{pid + ".example.com"}}, key)
		issued, err := conn.Issue(ctx, ca.Request{CSR: csr, RequestID: "req-" + pid, Validity: life})
		if err != nil {
			t.Fatal(err)
		}
		s.Customer, s.ProcessID, s.RequestID = "C0local", pid, "req-"+pid
		e := inventory.NewEntry(issued.Leaf, s, time.Now(), 0)
		if _, err := inv.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
		w.entries[pid] = e
	}
	issue("p-dev1", 10*24*time.Hour, inventory.Subject{DeviceID: "dev-1", DeviceSerial: "SN1", CARef: "corp_cas", ProfileRef: "device_profile"})
	issue("p-dev1b", 90*24*time.Hour, inventory.Subject{DeviceID: "dev-1", DeviceSerial: "SN1", CARef: "corp_cas", ProfileRef: "device_profile"})
	issue("p-user", 60*24*time.Hour, inventory.Subject{UserEmail: "ada@example.com", CARef: "corp_scep", ProfileRef: "user_profile"})
	cfg := fmt.Sprintf(`{"allowedCustomers": ["C0local"], "caConnections": {
  "corp_cas": {"type": "cas", "settings": {"caPool": %q, "endpoint": %q}},
  "corp_scep": {"type": "scep", "settings": {"url": "https://ndes.example.com/certsrv/mscep/mscep.dll"}}}, "profiles": {}}`, casPool, casAddr)
	w.vars = map[string]string{"GOOGLE_CLOUD_PROJECT": project, "INVENTORY_COLLECTION": coll, "CERTPROV_CONFIG": cfg, "USER": "ops"}
	return w
}

func processes(v certsView) []string {
	var out []string
	for _, e := range v.Certificates {
		out = append(out, e.ProcessID)
	}
	return out
}

func TestCertsListAndShow(t *testing.T) {
	w := newCertsWorld(t)
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"certs", "list"}, exitOK, []string{"p-dev1", "p-user", "p-dev1b"}},
		{[]string{"certs", "list", "--device", "dev-1"}, exitOK, []string{"p-dev1", "p-dev1b"}},
		{[]string{"certs", "list", "--user", "ada@example.com"}, exitOK, []string{"p-user"}},
		{[]string{"certs", "list", "--expiring", "30d"}, exitOK, []string{"p-dev1"}},
		{[]string{"certs", "list", "--ca", "corp_scep"}, exitOK, []string{"p-user"}},
		{[]string{"certs", "list", "--device", "nobody"}, exitOK, nil},
		{[]string{"certs", "show", w.entries["p-user"].Serial}, exitOK, []string{"p-user"}},
	} {
		r := runCLI(t, w.vars, append(tc.args, "--json")...)
		if r.code != tc.code {
			t.Errorf("%q: exit %d, want %d; %s", tc.args, r.code, tc.code, r.stderr)
			continue
		}
		var v certsView
		decodeJSON(t, r, &v)
		if diff := cmp.Diff(tc.want, processes(v)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.args, diff)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"certs", "show", "ABCDEF"}, exitProblem},
		{[]string{"certs", "show"}, exitUsage},
		{[]string{"certs", "show", "not-hex"}, exitUsage},
		{[]string{"certs", "list", "--expiring", "soon"}, exitUsage},
	} {
		if r := runCLI(t, w.vars, tc.args...); r.code != tc.code {
			t.Errorf("%q: exit %d, want %d; %s", tc.args, r.code, tc.code, r.stderr)
		}
	}
	text := runCLI(t, w.vars, "certs", "show", w.entries["p-dev1"].Serial).stdout
	for _, want := range []string{"serial:         " + w.entries["p-dev1"].Serial, "device:         dev-1 (serial SN1)", "SANs:           DNS:p-dev1.example.com", "revocation:     none"} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("certs show lacks %q:\n%s", want, text)
		}
	}
}

func TestCertsRevoke(t *testing.T) {
	w := newCertsWorld(t)
	dev1 := w.entries["p-dev1"]
	casName := func(pid string) string { return casPool + "/certificates/" + cas.CertificateID("req-"+pid) }

	// Usage errors.
	for _, args := range [][]string{
		{"certs", "revoke", dev1.Serial},                                                // no reason
		{"certs", "revoke", dev1.Serial, "--reason", "stolen"},                          // unknown reason
		{"certs", "revoke", "--reason", "superseded"},                                   // nothing named
		{"certs", "revoke", dev1.Serial, "--device", "dev-1", "--reason", "superseded"}, // two
	} {
		if r := runCLI(t, w.vars, args...); r.code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, r.code, exitUsage)
		}
	}
	noConfig := map[string]string{"GOOGLE_CLOUD_PROJECT": project, "INVENTORY_COLLECTION": w.vars["INVENTORY_COLLECTION"]}
	if r := runCLI(t, noConfig, "certs", "revoke", dev1.Serial, "--reason", "superseded"); r.code != exitUsage || !strings.Contains(r.stderr, "CERTPROV_CONFIG") {
		t.Errorf("without the adapter config: exit %d, %s", r.code, r.stderr)
	}

	// A dry run of the device's two: nothing changes in CAS.
	r := runCLI(t, w.vars, "certs", "revoke", "--device", "dev-1", "--reason", "cessation_of_operation", "--dry-run", "--json")
	var v revokeView
	decodeJSON(t, r, &v)
	if r.code != exitOK || len(v.Results) != 2 || v.Results[0].Outcome != revocation.WouldRevoke || w.fake.Certificate(casName("p-dev1")).GetRevocationDetails() != nil {
		t.Errorf("dry run: exit %d, %+v", r.code, v)
	}
	// CAS unreachable: exit 3, nothing recorded.
	w.fake.SetOutage(true)
	if r := runCLI(t, w.vars, "certs", "revoke", w.entries["p-dev1b"].Serial, "--reason", "superseded"); r.code != exitUnreachable {
		t.Errorf("CAS down: exit %d, want %d\n%s", r.code, exitUnreachable, r.stdout)
	}
	w.fake.SetOutage(false)
	// One by serial, for real, then the device's: the first is already revoked.
	if r := runCLI(t, w.vars, "certs", "revoke", dev1.Serial, "--reason", "keyCompromise"); r.code != exitOK || !strings.Contains(r.stdout, dev1.Serial+"  revoked") {
		t.Errorf("revoke by serial: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := w.fake.Certificate(casName("p-dev1")).GetRevocationDetails().GetRevocationState(); got != privatecapb.RevocationReason_KEY_COMPROMISE {
		t.Errorf("CAS revocation state %v, want KEY_COMPROMISE", got)
	}
	r = runCLI(t, w.vars, "certs", "revoke", "--device", "dev-1", "--reason", "cessationOfOperation", "--json")
	v = revokeView{}
	decodeJSON(t, r, &v)
	var outcomes []revocation.Outcome
	for _, res := range v.Results {
		outcomes = append(outcomes, res.Outcome)
	}
	if diff := cmp.Diff([]revocation.Outcome{revocation.Already, revocation.Revoked}, outcomes); diff != "" || r.code != exitOK {
		t.Errorf("revoke the device's: exit %d (-want +got):\n%s", r.code, diff)
	}
	// The user's certificate is SCEP's: reported, exit 1.
	user := w.entries["p-user"]
	r = runCLI(t, w.vars, "certs", "revoke", "--user", "ada@example.com", "--reason", "privilegeWithdrawn")
	wantLine := fmt.Sprintf("  REVOKE IN CA: serial %s, issuer %s\n", user.Serial, user.Issuer)
	if r.code != exitProblem || !strings.Contains(r.stdout, wantLine) {
		t.Errorf("revoke SCEP: exit %d, want %d and %q:\n%s", r.code, exitProblem, wantLine, r.stdout)
	}
	// The inventory records each: when, why, by whom.
	r = runCLI(t, w.vars, "certs", "list", "--json")
	var all certsView
	decodeJSON(t, r, &all)
	type rev struct {
		Process, Reason, By string
		ReportedOnly        bool
	}
	var got []rev
	for _, e := range all.Certificates {
		if e.Revocation == nil {
			t.Errorf("%s not recorded as revoked", e.ProcessID)
			continue
		}
		got = append(got, rev{e.ProcessID, e.Revocation.Reason, e.Revocation.By, e.Revocation.ReportedOnly})
	}
	want := []rev{{"p-dev1", "keyCompromise", "ops", false}, {"p-user", "privilegeWithdrawn", "ops", true}, {"p-dev1b", "cessationOfOperation", "ops", false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
}
