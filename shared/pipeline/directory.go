package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/chromeos-certprov/adapter/shared/cpapi"
	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/profile"
	"github.com/chromeos-certprov/adapter/shared/progress"
)

// Directory reads directory attributes for the directory variables of the
// templates (directory.Client).
type Directory interface {
	Device(ctx context.Context, customer, deviceID string) (*directory.Device, error)
	User(ctx context.Context, userKey string, custom []string) (*directory.User, error)
}

// lookupDirectory adds to vars the directory variables that needs asks for:
// at most one device and one user read per plan, and none when the
// templates use no directory variable. A permanent Directory API error is a
// *planError with what an administrator must do; a transient one is
// returned as is, so the claim step is retried.
func (p *Pipeline) lookupDirectory(ctx context.Context, rec *progress.Record, proc *cpapi.Process, needs profile.Needs, vars profile.Vars) error {
	if !needs.Any() {
		return nil
	}
	if p.Directory == nil {
		return &planError{"the profile uses directory variables but the adapter has no Directory API client",
			"The certificate needs directory attributes that the adapter cannot read. Contact your administrator."}
	}
	deviceID, userKey := directoryKeys(proc)
	if needs.Device && deviceID != "" {
		d, err := p.Directory.Device(ctx, rec.Customer, deviceID)
		if err != nil {
			return p.directoryError(ctx, rec, err)
		}
		vars[profile.VarDeviceAssetID] = d.AssetID
		vars[profile.VarDeviceAnnotatedLocation] = d.Location
		vars[profile.VarDeviceAnnotatedUser] = d.AnnotatedUser
		vars[profile.VarDeviceOrgUnitPath] = d.OrgUnitPath
	}
	if needs.User && userKey != "" {
		u, err := p.Directory.User(ctx, userKey, needs.Custom)
		if err != nil {
			return p.directoryError(ctx, rec, err)
		}
		vars[profile.VarUserOrgUnitPath] = u.OrgUnitPath
		vars[profile.VarUserEmployeeID] = u.EmployeeID
		for _, sf := range needs.Custom {
			vars[profile.UserCustomVar(sf)] = u.Custom[sf]
		}
	}
	return nil
}

// directoryKeys are the Directory API keys of the process's device (its
// directory id) and user (directory id, else primary email); "" when the
// process has none (a device process has no user; an unaffiliated user's
// session no device), so that its variables stay empty.
func directoryKeys(proc *cpapi.Process) (deviceID, userKey string) {
	if u := proc.ChromeOsUserSession; u != nil {
		userKey = u.UserDirectoryApiId
		if userKey == "" {
			userKey = u.UserPrimaryEmail
		}
		if d := u.ChromeOsDevice; d != nil {
			deviceID = d.DeviceDirectoryApiId
		}
	}
	if d := proc.ChromeOsDevice; d != nil {
		deviceID = d.DeviceDirectoryApiId
	}
	return deviceID, userKey
}

func (p *Pipeline) directoryError(ctx context.Context, rec *progress.Record, err error) error {
	if directory.Transient(err) {
		return fmt.Errorf("directory look-up for %s: %w", rec.Key, err)
	}
	action := "The Directory API refused the adapter's request. Contact your administrator."
	var de *directory.Error
	if errors.As(err, &de) {
		action = de.Action()
	}
	p.logger(ctx).Error(MsgDirectoryRefused, slog.String("reason", err.Error()), slog.String("action", action))
	return &planError{"directory: " + err.Error() + ": " + action, action}
}

// isDirectoryQuota reports whether err is the Directory API's 429.
func isDirectoryQuota(err error) bool {
	var e *directory.Error
	return errors.As(err, &e) && e.Code == http.StatusTooManyRequests
}

// MsgDirectoryRefused is the ERROR logged when the Directory API refuses a
// look-up for good (403, 404): the adapter's access must be fixed.
const MsgDirectoryRefused = "directory look-up refused"
