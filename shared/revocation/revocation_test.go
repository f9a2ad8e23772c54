package revocation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/revocation"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// reportOnly is a CA connection without revocation (as SCEP and EST).
type reportOnly struct{ ca.Issuer }

type world struct {
	dev *devca.Connector
	inv *memory.Inventory
	r   *revocation.Revoker
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dev, err := devca.New(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	inv := memory.NewInventory()
	return &world{dev: dev, inv: inv, r: &revocation.Revoker{Inventory: inv, CAs: map[string]ca.Issuer{"dev": dev, "scep": reportOnly{dev}}}}
}

// issue has the dev CA issue a certificate and inventories it under caRef.
func (w *world) issue(t *testing.T, id, caRef string, s inventory.Subject) *inventory.Entry {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := w.dev.Issue(context.Background(), ca.Request{CSR: csr, RequestID: id})
	if err != nil {
		t.Fatal(err)
	}
	s.ProcessID, s.CARef, s.RequestID = id, caRef, id
	e := inventory.NewEntry(issued.Leaf, s, time.Now(), 0)
	if _, err := w.inv.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func (w *world) crlSerials(t *testing.T) []string {
	t.Helper()
	der, err := w.dev.CRL()
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range crl.RevokedCertificateEntries {
		out = append(out, inventory.Serial(e.SerialNumber))
	}
	return out
}

func TestRevokeOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	devEntry := w.issue(t, "p1", "dev", inventory.Subject{DeviceID: "D1"})
	scepEntry := w.issue(t, "p2", "scep", inventory.Subject{UserEmail: "u@example.com"})

	type step struct {
		Outcome     revocation.Outcome
		Instruction string
	}
	var got []step
	do := func(e *inventory.Entry, dry bool) {
		cur, err := w.inv.Get(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		res := w.r.Revoke(ctx, cur, ca.ReasonKeyCompromise, "ops@example.com", dry)
		if res.Error != "" {
			t.Errorf("%s: %s", e.ProcessID, res.Error)
		}
		got = append(got, step{res.Outcome, res.Instruction})
	}
	do(devEntry, true)
	if s := w.crlSerials(t); len(s) != 0 {
		t.Errorf("a dry run revoked %v", s)
	}
	do(devEntry, false)
	do(devEntry, false)
	do(scepEntry, true)
	do(scepEntry, false)
	instr := "REVOKE IN CA: serial " + scepEntry.Serial + ", issuer " + scepEntry.Issuer
	want := []step{
		{revocation.WouldRevoke, ""}, {revocation.Revoked, ""}, {revocation.Already, ""},
		{revocation.WouldReport, instr}, {revocation.ReportOnly, instr},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{devEntry.Serial}, w.crlSerials(t)); diff != "" {
		t.Errorf("CRL (-want +got):\n%s", diff)
	}
	d, _ := w.inv.Get(ctx, devEntry.ID)
	s, _ := w.inv.Get(ctx, scepEntry.ID)
	if d.Revocation == nil || d.Revocation.By != "ops@example.com" || d.Revocation.Reason != "keyCompromise" || d.Revocation.ReportedOnly {
		t.Errorf("dev entry's revocation %+v", d.Revocation)
	}
	if s.Revocation == nil || !s.Revocation.ReportedOnly {
		t.Errorf("scep entry's revocation %+v, want reported only", s.Revocation)
	}
}

type fakeDirectory struct {
	devices, users map[string]string
	calls          int
}

func (f *fakeDirectory) DeviceStatus(_ context.Context, _, id string) (string, error) {
	f.calls++
	return f.devices[id], nil
}

func (f *fakeDirectory) UserStatus(_ context.Context, email string) (string, error) {
	f.calls++
	return f.users[email], nil
}

// The reconciliation revokes the certificates of a deprovisioned device and
// of a suspended user, reports one whose CA cannot revoke, leaves active
// ones alone, and in a dry run changes nothing.
func TestReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.issue(t, "gone-device", "dev", inventory.Subject{Customer: "C0", DeviceID: "D1"})
	w.issue(t, "gone-device-2", "dev", inventory.Subject{Customer: "C0", DeviceID: "D1"})
	w.issue(t, "active-device", "dev", inventory.Subject{Customer: "C0", DeviceID: "D2"})
	w.issue(t, "suspended-user", "dev", inventory.Subject{Customer: "C0", UserEmail: "s@example.com"})
	w.issue(t, "deleted-user-scep", "scep", inventory.Subject{Customer: "C0", UserEmail: "d@example.com"})
	dir := &fakeDirectory{
		devices: map[string]string{"D1": directory.StatusDeprovisioned, "D2": directory.StatusActive},
		users:   map[string]string{"s@example.com": directory.StatusSuspended, "d@example.com": directory.StatusDeleted},
	}
	counts := func(r revocation.Report) []int {
		return []int{r.Checked, r.Revoked, r.Reported, r.WouldRevoke, r.WouldReport, r.Failed}
	}
	dry, err := revocation.Reconcile(ctx, w.inv, dir, w.r, true)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{5, 0, 0, 3, 1, 0}, counts(dry)); diff != "" {
		t.Errorf("dry run [checked revoked reported wouldRevoke wouldReport failed] (-want +got):\n%s", diff)
	}
	if dir.calls != 4 {
		t.Errorf("%d directory reads, want 4 (each device and user once)", dir.calls)
	}
	if s := w.crlSerials(t); len(s) != 0 {
		t.Errorf("the dry run revoked %v", s)
	}
	real, err := revocation.Reconcile(ctx, w.inv, dir, w.r, false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{5, 3, 1, 0, 0, 0}, counts(real)); diff != "" {
		t.Errorf("real run (-want +got):\n%s", diff)
	}
	if n := len(w.crlSerials(t)); n != 3 {
		t.Errorf("%d certificates in the CRL, want 3", n)
	}
	again, err := revocation.Reconcile(ctx, w.inv, dir, w.r, false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 0, 0, 0, 0, 0}, counts(again)); diff != "" {
		t.Errorf("second run: only the active device is left to check (-want +got):\n%s", diff)
	}
	for _, res := range real.Results {
		if res.Entry.Revocation == nil && res.Outcome == revocation.Revoked {
			t.Errorf("%s revoked but not recorded", res.Entry.ProcessID)
		}
	}
}
