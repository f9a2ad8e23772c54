// Package revocation revokes inventoried certificates, for the operator's
// certprov certs revoke and for the daily reconciliation: through the CA
// where its connector can revoke (ca.Revoker: Google CAS, the development
// CA), else by reporting what the administrator must revoke in the CA
// (SCEP and EST have no revocation in their protocols). Every revocation is
// recorded in the inventory (when, why, by whom), once: revoking again is a
// no-op.
//
// Reconcile is the reconciliation: it asks the Directory API about the
// devices and users of the inventoried certificates and revokes (or, in a
// dry run, only lists) the certificates of devices deprovisioned, disabled
// or deleted and of users suspended or deleted.
package revocation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/logging"
)

// Inventory is what revocation needs of the certificate inventory
// (inventory.Firestore, memory.Inventory).
type Inventory interface {
	List(ctx context.Context, f inventory.Filter, limit int) ([]*inventory.Entry, error)
	MarkRevoked(ctx context.Context, id string, r inventory.Revocation) (*inventory.Entry, bool, error)
}

// Outcome is what became of one certificate.
type Outcome string

// Outcomes.
const (
	// Revoked: the CA revoked it now.
	Revoked Outcome = "revoked"
	// Already: the inventory shows it revoked before; nothing was done.
	Already Outcome = "already-revoked"
	// ReportOnly: its CA cannot revoke through the adapter; the administrator
	// must revoke it in the CA (Instruction says what).
	ReportOnly Outcome = "revoke-in-ca"
	// WouldRevoke and WouldReport: a dry run's Revoked and ReportOnly.
	WouldRevoke Outcome = "would-revoke"
	WouldReport Outcome = "would-report"
	// Failed: the CA or the inventory failed (Error says why).
	Failed Outcome = "failed"
)

// MsgReportOnly is the WARNING logged for each certificate the adapter could
// only report (the log-based metric certprov/revocation_report_only counts it).
const MsgReportOnly = "certificate must be revoked in the CA: its connector cannot revoke"

// Result is one certificate's outcome.
type Result struct {
	Entry       *inventory.Entry `json:"certificate"`
	Outcome     Outcome          `json:"outcome"`
	Reason      string           `json:"reason"`
	Instruction string           `json:"instruction,omitempty"`
	Error       string           `json:"error,omitempty"`
	// Transient: the CA could not be reached (a retry may succeed).
	Transient bool `json:"transient,omitempty"`
}

// Instruction is what the administrator must do for a certificate whose CA
// cannot revoke through the adapter.
func Instruction(e *inventory.Entry) string {
	return fmt.Sprintf("REVOKE IN CA: serial %s, issuer %s", e.Serial, e.Issuer)
}

// Revoker revokes inventoried certificates.
type Revoker struct {
	Inventory Inventory
	// CAs are the CA connections by reference; those implementing
	// ca.Revoker revoke, the others (and unknown references) are reported.
	CAs map[string]ca.Issuer
	// Now is the clock of the recorded revocations (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Revoke revokes e (by is who asks: an operator's email, "reconciler"),
// unless the inventory shows it revoked already. A dry run only says what it
// would do. A report-only outcome is recorded as such in the inventory, and
// logged at WARNING.
func (r *Revoker) Revoke(ctx context.Context, e *inventory.Entry, reason ca.Reason, by string, dryRun bool) Result {
	res := Result{Entry: e, Reason: reason.String()}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	log := logging.FromOr(ctx, r.Log)
	if log == nil {
		log = logging.Discard
	}
	if e.Revocation != nil && !e.Revocation.ReportedOnly {
		res.Outcome = Already
		return res
	}
	rv, ok := r.CAs[e.CARef].(ca.Revoker)
	rec := inventory.Revocation{At: now().UTC(), Reason: reason.String(), By: by}
	if !ok {
		res.Instruction = Instruction(e)
		if dryRun {
			res.Outcome = WouldReport
			return res
		}
		res.Outcome = ReportOnly
		log.Warn(MsgReportOnly, slog.String("certificate_serial", e.Serial), slog.String("issuer", e.Issuer),
			slog.String("ca_connection_ref", e.CARef), slog.String("reason", reason.String()), slog.String("by", by),
			slog.String("device_id", e.DeviceID), slog.String("user_email", e.UserEmail))
		rec.ReportedOnly = true
		if _, _, err := r.Inventory.MarkRevoked(ctx, e.ID, rec); err != nil {
			res.Error = "record the report in the inventory: " + err.Error()
		}
		return res
	}
	if dryRun {
		res.Outcome = WouldRevoke
		return res
	}
	serial, err := inventory.ParseSerial(e.Serial)
	if err != nil {
		res.Outcome, res.Error = Failed, err.Error()
		return res
	}
	if err := rv.Revoke(ctx, ca.Revocation{Serial: serial, RequestID: e.RequestID, Reason: reason}); err != nil {
		res.Outcome, res.Error, res.Transient = Failed, "the CA: "+err.Error(), ca.KindOf(err) == ca.Transient
		return res
	}
	got, changed, err := r.Inventory.MarkRevoked(ctx, e.ID, rec)
	if err != nil {
		// Revoked in the CA: a retry finds it revoked there and records it.
		res.Outcome, res.Error = Failed, "revoked in the CA, not recorded in the inventory: "+err.Error()
		return res
	}
	res.Entry, res.Outcome = got, Revoked
	if !changed {
		res.Outcome = Already
	}
	log.Info("certificate revoked", slog.String("certificate_serial", e.Serial), slog.String("ca_connection_ref", e.CARef),
		slog.String("reason", reason.String()), slog.String("by", by))
	return res
}
