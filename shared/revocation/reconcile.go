package revocation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/chromeos-certprov/adapter/shared/ca"
	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/inventory"
	"github.com/chromeos-certprov/adapter/shared/logging"
)

// Directory reads what the reconciliation acts on (directory.Client).
type Directory interface {
	DeviceStatus(ctx context.Context, customer, deviceID string) (string, error)
	UserStatus(ctx context.Context, userKey string) (string, error)
}

// By is who the reconciliation's revocations are recorded as.
const By = "reconciler"

// MsgReconciled is the INFO line that ends a reconciliation, with its counts.
const MsgReconciled = "reconciliation done"

// Report is what one reconciliation did (or, in a dry run, would do).
type Report struct {
	DryRun bool `json:"dryRun"`
	// Checked counts the certificates looked at: inventoried, not revoked,
	// not expired.
	Checked     int      `json:"checked"`
	Revoked     int      `json:"revoked"`
	Reported    int      `json:"reported"`
	WouldRevoke int      `json:"wouldRevoke"`
	WouldReport int      `json:"wouldReport"`
	Failed      int      `json:"failed"`
	Results     []Result `json:"results,omitempty"`
}

// Reconcile asks the directory about the device (by customer and device id)
// and the user (by email) of every certificate in the inventory that is
// neither revoked nor expired, and revokes those of devices deprovisioned,
// disabled or deleted (cessationOfOperation) and of users suspended
// (privilegeWithdrawn) or deleted (affiliationChanged), or, when dryRun,
// only reports them. Each device and user is read once. A directory read
// that fails leaves that certificate alone (counted as Failed); the error
// returned is only the inventory's.
func Reconcile(ctx context.Context, inv Inventory, dir Directory, r *Revoker, dryRun bool) (Report, error) {
	rep := Report{DryRun: dryRun}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	log := logging.FromOr(ctx, r.Log)
	if log == nil {
		log = logging.Discard
	}
	entries, err := inv.List(ctx, inventory.Filter{Active: true}, 0)
	if err != nil {
		return rep, fmt.Errorf("reconcile: list the inventory: %w", err)
	}
	type status struct {
		s   string
		err error
	}
	devices, users := map[[2]string]status{}, map[string]status{}
	for _, e := range entries {
		if !e.NotAfter.After(now()) {
			continue
		}
		rep.Checked++
		reason, why, err := func() (ca.Reason, string, error) {
			if e.DeviceID != "" {
				k := [2]string{e.Customer, e.DeviceID}
				st, ok := devices[k]
				if !ok {
					st.s, st.err = dir.DeviceStatus(ctx, e.Customer, e.DeviceID)
					devices[k] = st
				}
				if st.err != nil {
					return 0, "", st.err
				}
				switch st.s {
				case directory.StatusDeprovisioned, directory.StatusDisabled, directory.StatusDeleted:
					return ca.ReasonCessationOfOperation, "device " + e.DeviceID + " is " + st.s, nil
				}
			}
			if e.UserEmail != "" {
				st, ok := users[e.UserEmail]
				if !ok {
					st.s, st.err = dir.UserStatus(ctx, e.UserEmail)
					users[e.UserEmail] = st
				}
				if st.err != nil {
					return 0, "", st.err
				}
				switch st.s {
				case directory.StatusSuspended:
					return ca.ReasonPrivilegeWithdrawn, "user " + e.UserEmail + " is " + st.s, nil
				case directory.StatusDeleted:
					return ca.ReasonAffiliationChanged, "user " + e.UserEmail + " is " + st.s, nil
				}
			}
			return -1, "", nil
		}()
		if err != nil {
			rep.Failed++
			rep.Results = append(rep.Results, Result{Entry: e, Outcome: Failed, Error: "the directory: " + err.Error()})
			log.Warn("reconciliation could not read the directory", slog.String("certificate_serial", e.Serial), slog.String("reason", err.Error()))
			continue
		}
		if reason < 0 {
			continue
		}
		res := r.Revoke(ctx, e, reason, By, dryRun)
		res.Reason = reason.String() + ": " + why
		switch res.Outcome {
		case Revoked:
			rep.Revoked++
		case ReportOnly:
			rep.Reported++
		case WouldRevoke:
			rep.WouldRevoke++
		case WouldReport:
			rep.WouldReport++
		case Failed:
			rep.Failed++
		}
		if dryRun {
			log.Info("reconciliation would revoke", slog.String("certificate_serial", e.Serial), slog.String("outcome", string(res.Outcome)),
				slog.String("reason", res.Reason))
		}
		rep.Results = append(rep.Results, res)
	}
	log.Info(MsgReconciled, slog.Bool("dry_run", dryRun), slog.Int("checked", rep.Checked), slog.Int("revoked", rep.Revoked),
		slog.Int("reported", rep.Reported), slog.Int("would_revoke", rep.WouldRevoke), slog.Int("would_report", rep.WouldReport),
		slog.Int("failed", rep.Failed))
	return rep, nil
}
