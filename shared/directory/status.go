package directory

import (
	"context"
	"errors"
	"net/http"
)

// Statuses the reconciliation acts on. A device's status is the Directory
// API's own (ACTIVE, DEPROVISIONED, DISABLED, ...); Deleted stands for a
// device or user the API no longer knows (404).
const (
	StatusActive        = "ACTIVE"
	StatusDeprovisioned = "DEPROVISIONED"
	StatusDisabled      = "DISABLED"
	StatusSuspended     = "SUSPENDED"
	StatusDeleted       = "DELETED"
)

// DeviceStatus reads the status of ChromeOS device deviceID of customer:
// the API's status field, or StatusDeleted when it answers 404.
func (c *Client) DeviceStatus(ctx context.Context, customer, deviceID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	d, err := c.svc.Chromeosdevices.Get(customer, deviceID).Projection("BASIC").Fields("status").Context(ctx).Do()
	if err != nil {
		return notFoundAs(wrap(KindDevice, deviceID, err))
	}
	return d.Status, nil
}

// UserStatus reads whether user userKey (id or primary email) is active:
// StatusSuspended when suspended (or archived), StatusDeleted when the API
// answers 404, else StatusActive.
func (c *Client) UserStatus(ctx context.Context, userKey string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u, err := c.svc.Users.Get(userKey).ViewType("admin_view").Fields("suspended", "archived").Context(ctx).Do()
	if err != nil {
		return notFoundAs(wrap(KindUser, userKey, err))
	}
	if u.Suspended || u.Archived {
		return StatusSuspended, nil
	}
	return StatusActive, nil
}

func notFoundAs(err error) (string, error) {
	var e *Error
	if errors.As(err, &e) && e.Code == http.StatusNotFound {
		return StatusDeleted, nil
	}
	return "", err
}
