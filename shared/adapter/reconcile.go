package adapter

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/revocation"
)

// ReconcilePath is the path, on IssueCertificate, of the daily
// reconciliation's request (terraform: reconcile.tf).
const ReconcilePath = "/reconcile"

// ReconcileRequest is the reconciliation request's body. Without a body, or
// with one that does not parse, the reconciliation is a dry run.
type ReconcileRequest struct {
	DryRun *bool `json:"dryRun"`
}

// maxResults bounds the results the reconciliation's answer lists (the
// counts are complete; every result is logged).
const maxResults = 100

// Reconcile returns the handler of the reconciliation's request: POST
// {"dryRun": bool}; it answers the revocation.Report as JSON (at most
// maxResults results), 503 when the inventory could not be read (the
// scheduler retries).
func Reconcile(get func(context.Context) (*pipeline.Pipeline, *slog.Logger, error)) http.HandlerFunc {
	return schedulerRoute(get, func(ctx context.Context, w http.ResponseWriter, r *http.Request, p *pipeline.Pipeline, log *slog.Logger) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
		var req ReconcileRequest
		dryRun := true
		if json.Unmarshal(body, &req) == nil && req.DryRun != nil {
			dryRun = *req.DryRun
		}
		inv, ok := p.Inventory.(revocation.Inventory)
		dir, dok := p.Directory.(revocation.Directory)
		if !ok || !dok {
			log.Error("reconciliation requested but the inventory or the directory cannot serve it")
			http.Error(w, "reconciliation not available", http.StatusInternalServerError)
			return
		}
		cas := map[string]ca.Issuer{}
		for ref, c := range p.CAs {
			cas[ref] = c
		}
		var rep revocation.Report
		err := guard(ctx, log, "reconcile", func() error {
			var err error
			rep, err = revocation.Reconcile(ctx, inv, dir, &revocation.Revoker{Inventory: inv, CAs: cas, Now: p.Now, Log: log}, dryRun)
			return err
		})
		if err != nil {
			retryLater(ctx, log, w, "reconciliation will be retried", err)
			return
		}
		if len(rep.Results) > maxResults {
			rep.Results = rep.Results[:maxResults]
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rep)
	})
}
