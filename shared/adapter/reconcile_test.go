package adapter

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/revocation"
	"github.com/chromeos-certprov/adapter/shared/tooling/cpemulator"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
	"github.com/chromeos-certprov/adapter/shared/tooling/testlog"
)

// POST /reconcile on IssueCertificate runs the reconciliation against the
// Directory API (here the API emulator's endpoints, through the production
// client): a dry run without a body, then for real; other paths stay issue
// tasks.
func TestReconcileRoute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emu := cpemulator.New(cpemulator.Options{})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	if _, err := emu.AddClient(ctx, cpemulator.ClientSpec{Customer: "C0", Key: cpemulator.ECP256, DeviceID: "d1", Serial: "SN1"}); err != nil {
		t.Fatal(err)
	}
	dir := &lazyDirectory{opts: directory.Options{EmulatorHost: srv.URL}}
	dev, err := devca.New(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "SN1"}}, key)
	issued, err := dev.Issue(ctx, ca.Request{CSR: csr, RequestID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	inv := memory.NewInventory()
	if _, err := inv.Record(ctx, inventory.NewEntry(issued.Leaf, inventory.Subject{Customer: "C0", ProcessID: "p1", DeviceID: "d1", CARef: "dev", RequestID: "r1"}, time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	p := &pipeline.Pipeline{Store: memory.New(), Inventory: inv, Directory: dir, CAs: map[string]pipeline.Issuer{"dev": dev}, Log: testlog.New(t)}
	h := Issue(func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, p.Log, nil })
	post := func(body string) revocation.Report {
		t.Helper()
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodPost, ReconcilePath, strings.NewReader(body)))
		if rec.Code != http.StatusOK {
			t.Fatalf("POST %s %s: %d %s", ReconcilePath, body, rec.Code, rec.Body)
		}
		var rep revocation.Report
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	counts := func(r revocation.Report) []int { return []int{r.Checked, r.Revoked, r.WouldRevoke} }
	if diff := cmp.Diff([]int{1, 0, 0}, counts(post(""))); diff != "" {
		t.Errorf("active device (-want +got):\n%s", diff)
	}
	emu.SetDeviceStatus("d1", directory.StatusDeprovisioned)
	dry := post("")
	if diff := cmp.Diff([]int{1, 0, 1}, counts(dry)); diff != "" || !dry.DryRun {
		t.Errorf("deprovisioned, no body: dry run %v (-want +got):\n%s", dry.DryRun, diff)
	}
	if diff := cmp.Diff([]int{1, 1, 0}, counts(post(`{"dryRun":false}`))); diff != "" {
		t.Errorf("deprovisioned, for real (-want +got):\n%s", diff)
	}
	e, _ := inv.List(ctx, inventory.Filter{}, 0)
	if len(e) != 1 || e[0].Revocation == nil || e[0].Revocation.By != revocation.By {
		t.Errorf("inventory after: %+v", e)
	}
	// Another path is still an issue task (an empty body: acknowledged).
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")))
	if rec.Code != http.StatusOK {
		t.Errorf("issue task: %d", rec.Code)
	}
}
