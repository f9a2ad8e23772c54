// Package directory reads the directory attributes of a ChromeOS device and
// of a user that certificate templates may use (${DEVICE_ASSET_ID},
// ${USER_EMPLOYEE_ID}, ...) through the generated Admin SDK Directory API
// client google.golang.org/api/admin/directory/v1, with the read-only scopes
// only, and classifies its errors as transient (retry) or permanent (a
// message an administrator can act on), as package cpapi does for the
// Certificate Provisioning API.
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/compute/metadata"
	admin "google.golang.org/api/admin/directory/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/impersonate"
	"google.golang.org/api/option"
)

// Scopes are the read-only scopes the adapter asks for: ChromeOS devices and
// users. They are also the scopes to grant under domain-wide delegation.
var Scopes = []string{admin.AdminDirectoryDeviceChromeosReadonlyScope, admin.AdminDirectoryUserReadonlyScope}

// Device is what the adapter reads of a ChromeOS device.
type Device struct {
	AssetID, Location, AnnotatedUser, OrgUnitPath string
}

// User is what the adapter reads of a user.
type User struct {
	OrgUnitPath string
	// EmployeeID is the value of the externalIds entry of type organization.
	EmployeeID string
	// Custom holds the custom schema fields asked for, by "Schema.field";
	// a multi-valued field gives its first value.
	Custom map[string]string
}

// Client calls the Directory API.
type Client struct {
	svc     *admin.Service
	timeout time.Duration
}

// Options configure New.
type Options struct {
	// EmulatorHost is the host:port (or base URL) of an API emulator
	// serving the Directory endpoints: calls go there without credentials.
	EmulatorHost string
	// HTTPClient is used with EmulatorHost (tests).
	HTTPClient *http.Client
	// Subject, when set, is the user the service account acts as through
	// domain-wide delegation: the function's service account signs a JWT
	// with this subject through the IAM Credentials API (it needs
	// roles/iam.serviceAccountTokenCreator on itself). Empty: the service
	// account's own identity, which needs an admin role of its own.
	Subject string
	// ServiceAccount is the email of the service account that delegates;
	// default: the instance's own, from the metadata server.
	ServiceAccount string
	// ClientOptions are added last.
	ClientOptions []option.ClientOption
	// Timeout bounds each call; default 30s.
	Timeout time.Duration
}

// New returns a client.
func New(ctx context.Context, o Options) (*Client, error) {
	var opts []option.ClientOption
	switch {
	case o.EmulatorHost != "":
		host := o.EmulatorHost
		if !strings.Contains(host, "://") {
			host = "http://" + host
		}
		opts = append(opts, option.WithEndpoint(strings.TrimSuffix(host, "/")+"/"), option.WithoutAuthentication())
		if o.HTTPClient != nil {
			opts = append(opts, option.WithHTTPClient(o.HTTPClient))
		}
	case o.Subject != "":
		sa := o.ServiceAccount
		if sa == "" {
			var err error
			if sa, err = metadata.EmailWithContext(ctx, "default"); err != nil {
				return nil, fmt.Errorf("directory: the service account's email for domain-wide delegation: %w", err)
			}
		}
		ts, err := impersonate.CredentialsTokenSource(ctx, impersonate.CredentialsConfig{TargetPrincipal: sa, Scopes: Scopes, Subject: o.Subject})
		if err != nil {
			return nil, fmt.Errorf("directory: domain-wide delegation as %s: %w", o.Subject, err)
		}
		opts = append(opts, option.WithTokenSource(ts))
	default:
		opts = append(opts, option.WithScopes(Scopes...))
	}
	opts = append(opts, o.ClientOptions...)
	svc, err := admin.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("directory: new admin service: %w", err)
	}
	t := o.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	return &Client{svc: svc, timeout: t}, nil
}

// Device reads the ChromeOS device deviceID (its Directory API id) of customer.
func (c *Client) Device(ctx context.Context, customer, deviceID string) (*Device, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	d, err := c.svc.Chromeosdevices.Get(customer, deviceID).Projection("FULL").
		Fields("annotatedAssetId", "annotatedLocation", "annotatedUser", "orgUnitPath").Context(ctx).Do()
	if err != nil {
		return nil, wrap(KindDevice, deviceID, err)
	}
	return &Device{AssetID: d.AnnotatedAssetId, Location: d.AnnotatedLocation, AnnotatedUser: d.AnnotatedUser, OrgUnitPath: d.OrgUnitPath}, nil
}

// User reads the user userKey (Directory API id or primary email), with the
// custom schema fields named "Schema.field" in custom.
func (c *Client) User(ctx context.Context, userKey string, custom []string) (*User, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	call := c.svc.Users.Get(userKey).ViewType("admin_view")
	fields := []googleapi.Field{"orgUnitPath", "externalIds"}
	if schemas := schemaNames(custom); schemas != "" {
		call = call.Projection("custom").CustomFieldMask(schemas)
		fields = append(fields, "customSchemas")
	}
	u, err := call.Fields(fields...).Context(ctx).Do()
	if err != nil {
		return nil, wrap(KindUser, userKey, err)
	}
	out := &User{OrgUnitPath: u.OrgUnitPath, Custom: map[string]string{}}
	if u.ExternalIds != nil {
		b, err := json.Marshal(u.ExternalIds)
		if err != nil {
			return nil, &Error{Kind: KindUser, Key: userKey, Err: fmt.Errorf("externalIds: %w", err)}
		}
		var ids []admin.UserExternalId
		if err := json.Unmarshal(b, &ids); err != nil {
			return nil, &Error{Kind: KindUser, Key: userKey, Err: fmt.Errorf("externalIds: %w", err)}
		}
		for _, id := range ids {
			if id.Type == "organization" && id.Value != "" {
				out.EmployeeID = id.Value
				break
			}
		}
	}
	for _, sf := range custom {
		schema, field, _ := strings.Cut(sf, ".")
		raw, ok := u.CustomSchemas[schema]
		if !ok {
			continue
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, &Error{Kind: KindUser, Key: userKey, Err: fmt.Errorf("customSchemas.%s: %w", schema, err)}
		}
		out.Custom[sf] = scalar(fields[field])
	}
	return out, nil
}

// schemaNames is the customFieldMask of the "Schema.field" names.
func schemaNames(custom []string) string {
	var names []string
	seen := map[string]bool{}
	for _, sf := range custom {
		s, _, _ := strings.Cut(sf, ".")
		if !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	return strings.Join(names, ",")
}

// scalar renders a custom field's JSON value as text: a string, a number or
// a boolean as written; of a multi-valued field ([{"type","value"}]) the
// first value. Anything else is "".
func scalar(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case float64, bool:
		return strings.TrimSpace(string(raw))
	case []any:
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				if b, err := json.Marshal(m["value"]); err == nil && m["value"] != nil {
					return scalar(b)
				}
			}
		}
	}
	return ""
}

// Kinds of resource, for Error.
const (
	KindDevice = "ChromeOS device"
	KindUser   = "user"
)

// Error is a failed call.
type Error struct {
	Kind string // KindDevice or KindUser
	Key  string // the device id or the user key
	// Code is the HTTP status, 0 for a transport failure.
	Code      int
	Transient bool
	// Delegation: the token of domain-wide delegation could not be had.
	Delegation bool
	Err        error
}

func (e *Error) Error() string {
	return fmt.Sprintf("directory: get %s %s: %v", e.Kind, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Action is what an administrator must do about a permanent error, for the
// device's failure message and the log.
func (e *Error) Action() string {
	switch {
	case e.Delegation:
		return "The adapter could not act as DIRECTORY_SUBJECT through domain-wide delegation (" + http.StatusText(e.Code) + "): check that its service account holds roles/iam.serviceAccountTokenCreator on itself, that its client ID is authorized in the Admin console (Security > Access and data control > API controls > Domain wide delegation) with the two Directory read-only scopes, and that DIRECTORY_SUBJECT is an active administrator."
	case e.Code == http.StatusForbidden && e.Kind == KindDevice:
		return "The adapter's service account may not read ChromeOS devices in the Directory API: give its admin role the Chrome Management privilege Manage Devices for the devices' organizational units (or, with domain-wide delegation, authorize the scope " + admin.AdminDirectoryDeviceChromeosReadonlyScope + " and give DIRECTORY_SUBJECT that privilege), and check that the Admin SDK API is enabled in its project."
	case e.Code == http.StatusForbidden:
		return "The adapter's service account may not read users in the Directory API: give its admin role the Admin API privilege Users > Read (or, with domain-wide delegation, authorize the scope " + admin.AdminDirectoryUserReadonlyScope + " and give DIRECTORY_SUBJECT that privilege), and check that the Admin SDK API is enabled in its project."
	case e.Code == http.StatusNotFound && e.Kind == KindDevice:
		return "The Directory API does not know this ChromeOS device (or the adapter's admin role does not cover its organizational unit): check that the device is enrolled and that the role's scope covers its organizational unit."
	case e.Code == http.StatusNotFound:
		return "The Directory API does not know this user (or the adapter's admin role does not cover the user's organizational unit): check that the user exists and that the role's scope covers the user's organizational unit."
	}
	return "The Directory API refused the adapter's request (" + http.StatusText(e.Code) + "). Contact your administrator."
}

func wrap(kind, key string, err error) error {
	e := &Error{Kind: kind, Key: key, Err: err, Transient: true}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		e.Code = ge.Code
		e.Transient = ge.Code == http.StatusTooManyRequests || ge.Code == http.StatusRequestTimeout || ge.Code >= 500
		return e
	}
	// Domain-wide delegation's token exchange fails before any request is
	// sent, with an error that only its text classifies.
	if m := delegationStatus.FindStringSubmatch(err.Error()); m != nil {
		e.Code, _ = strconv.Atoi(m[1])
		e.Delegation = true
		e.Transient = e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout || e.Code >= 500
		return e
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		e.Transient = true
	}
	return e
}

// delegationStatus matches the HTTP status that google.golang.org/api/impersonate
// reports when signing the delegation JWT or exchanging it fails.
var delegationStatus = regexp.MustCompile(`impersonate: status code (\d{3})`)

// Transient reports whether err is worth retrying: 429, 408, 5xx, timeouts and
// transport failures. Unknown errors count as transient.
func Transient(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Transient
	}
	return true
}
