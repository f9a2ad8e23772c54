package simulation

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"

	"github.com/chromeos-certprov/adapter/shared/adapter"
	"github.com/chromeos-certprov/adapter/shared/ca/devca"
	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/revocation"
)

// ReconcileSpec asks a run to end with the reconciliation: once every
// process has ended, Deprovision simulated devices are deprovisioned and
// Suspend users suspended in the API emulator's directory, and the
// reconciliation's request (POST /reconcile on IssueCertificate) runs twice:
// a dry run, then for real.
type ReconcileSpec struct {
	Deprovision, Suspend int
}

// ReconcileStats is what the reconciliation did.
type ReconcileStats struct {
	// Deprovisioned and Suspended are the devices and users changed in the
	// directory; Affected counts their inventoried certificates.
	Deprovisioned []string `json:"deprovisioned"`
	Suspended     []string `json:"suspended"`
	Affected      int      `json:"affected"`
	// DryRun and Real are the two runs' counts (their results left out).
	DryRun revocation.Report `json:"dry_run"`
	Real   revocation.Report `json:"real"`
	// InCRL counts the entries of the development CAs' CRLs, fetched over
	// HTTP and parsed after the real run.
	InCRL int `json:"in_crl"`
}

// reconcile runs o.Reconcile's step against the world's pipeline; what does
// not come out as expected goes to problems.
func (w *World) reconcile(ctx context.Context, o *Options, p *pipeline.Pipeline, devCAs []*devca.Connector) (*ReconcileStats, []string, error) {
	spec := o.Reconcile
	st := &ReconcileStats{}
	var problems []string
	entries, err := w.inv.List(ctx, inventory.Filter{}, 0)
	if err != nil {
		return nil, nil, err
	}
	// The first devices and users (of device and user processes) in
	// inventory order.
	for _, e := range entries {
		switch {
		case e.UserEmail == "" && e.DeviceID != "" && len(st.Deprovisioned) < spec.Deprovision && !slices.Contains(st.Deprovisioned, e.DeviceID):
			st.Deprovisioned = append(st.Deprovisioned, e.DeviceID)
		case e.UserEmail != "" && len(st.Suspended) < spec.Suspend && !slices.Contains(st.Suspended, e.UserEmail):
			st.Suspended = append(st.Suspended, e.UserEmail)
		}
	}
	for _, e := range entries {
		if slices.Contains(st.Deprovisioned, e.DeviceID) || slices.Contains(st.Suspended, e.UserEmail) {
			st.Affected++
		}
	}
	for _, d := range st.Deprovisioned {
		w.emu.SetDeviceStatus(d, directory.StatusDeprovisioned)
	}
	for _, u := range st.Suspended {
		w.emu.SetUserStatus(u, directory.StatusSuspended)
	}
	h := adapter.Issue(func(context.Context) (*pipeline.Pipeline, *slog.Logger, error) { return p, o.Log, nil })
	run := func(body string) (revocation.Report, error) {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodPost, adapter.ReconcilePath, bytes.NewReader([]byte(body))).WithContext(ctx))
		var rep revocation.Report
		if rec.Code != http.StatusOK {
			return rep, fmt.Errorf("reconcile: %d %s", rec.Code, rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			return rep, fmt.Errorf("reconcile: %w", err)
		}
		rep.Results = nil
		return rep, nil
	}
	if st.DryRun, err = run(`{"dryRun":true}`); err != nil {
		return nil, nil, err
	}
	if n := st.DryRun.WouldRevoke + st.DryRun.WouldReport; n != st.Affected || st.DryRun.Revoked != 0 {
		problems = append(problems, fmt.Sprintf("reconciliation dry run: would revoke %d and report %d, revoked %d; want %d affected certificates listed and none revoked",
			st.DryRun.WouldRevoke, st.DryRun.WouldReport, st.DryRun.Revoked, st.Affected))
	}
	if st.Real, err = run(`{"dryRun":false}`); err != nil {
		return nil, nil, err
	}
	if n := st.Real.Revoked + st.Real.Reported; n != st.Affected || st.Real.Failed != 0 {
		problems = append(problems, fmt.Sprintf("reconciliation: revoked %d, reported %d, failed %d; want %d affected certificates revoked or reported",
			st.Real.Revoked, st.Real.Reported, st.Real.Failed, st.Affected))
	}
	for _, d := range devCAs {
		srv := httptest.NewServer(d.CRLHandler())
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			srv.Close()
			return nil, nil, fmt.Errorf("fetch the dev CA's CRL: %w", err)
		}
		der, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if err != nil {
			return nil, nil, err
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, nil, fmt.Errorf("parse the dev CA's CRL: %w", err)
		}
		st.InCRL += len(crl.RevokedCertificateEntries)
	}
	if st.InCRL != st.Real.Revoked {
		problems = append(problems, fmt.Sprintf("the development CAs' CRLs list %d certificates; the reconciliation revoked %d", st.InCRL, st.Real.Revoked))
	}
	return st, problems, nil
}

// inventoried counts the inventory's entries and checks them against the
// uploaded processes: one entry per uploaded certificate.
func (w *World) inventoried(ctx context.Context) (int, []string) {
	entries, err := w.inv.List(ctx, inventory.Filter{}, 0)
	if err != nil {
		return 0, []string{"inventory: " + err.Error()}
	}
	byProcess := map[string]int{}
	for _, e := range entries {
		byProcess[progress.Key(e.Customer, e.ProcessID)]++
	}
	var problems []string
	for _, c := range w.clients {
		r, err := w.store.Peek(ctx, c.Key)
		if err != nil || r.State != progress.StateUploaded {
			continue
		}
		if n := byProcess[c.Key]; n != 1 {
			problems = append(problems, fmt.Sprintf("%s: uploaded, %d inventory entries (want 1)", c.Key, n))
		}
	}
	return len(entries), problems
}
