package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

// TestReconciliationEndToEnd runs the local run with the reconciliation:
// every uploaded certificate inventoried; the simulated devices deprovisioned
// and users suspended in the emulator's directory; their certificates listed
// by the dry run, then revoked, and in the development CA's CRL.
func TestReconciliationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("a local run")
	}
	report := filepath.Join(t.TempDir(), "r.json")
	var out bytes.Buffer
	code, err := realMain(context.Background(), []string{"-clients", "24", "-quiet", "-reconcile", "-deprovision", "2", "-suspend", "1", "-report", report}, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("exit %d: %v\n%s", code, err, out.String())
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r simulation.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	rc := r.Reconcile
	if rc == nil {
		t.Fatal("no reconciliation in the report")
	}
	if r.Inventoried != r.Outcomes.Uploaded || r.Inventoried == 0 {
		t.Errorf("inventoried %d, uploaded %d", r.Inventoried, r.Outcomes.Uploaded)
	}
	got := []int{len(rc.Deprovisioned), len(rc.Suspended), rc.DryRun.WouldRevoke, rc.DryRun.Revoked, rc.Real.Revoked, rc.InCRL}
	want := []int{2, 1, rc.Affected, 0, rc.Affected, rc.Affected}
	if diff := cmp.Diff(want, got); diff != "" || rc.Affected < 3 {
		t.Errorf("[deprovisioned suspended wouldRevoke dryRevoked revoked inCRL] with %d affected (-want +got):\n%s", rc.Affected, diff)
	}
	if !strings.Contains(out.String(), "inventoried: 24 certificates") {
		t.Errorf("summary lacks the inventory:\n%s", out.String())
	}
}
