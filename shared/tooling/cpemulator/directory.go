package cpemulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// The Directory endpoints: the two reads of the Admin SDK Directory API that
// the adapter's directory variables use, as the generated client
// google.golang.org/api/admin/directory/v1 (v0.309.0) calls them:
//
//	GET /admin/directory/v1/customer/{customerId}/devices/chromeos/{deviceId}?projection=BASIC|FULL
//	GET /admin/directory/v1/users/{userKey}?projection=basic|custom|full&customFieldMask=S1,S2&viewType=admin_view|domain_public
//
// Every simulated client's device and user exist in the directory, with the
// attributes of DefaultDirectoryDevice and DefaultDirectoryUser;
// SetDirectoryDevice and SetDirectoryUser replace them. Errors take the
// Directory API's form (a legacy "errors" list next to code and message).

// Method names of the Directory endpoints, as counted by DirectoryCalls and
// passed to Options.Fault (with the device id or the user key as its name).
const (
	MethodDirectoryDevice = "directory.chromeosdevices.get"
	MethodDirectoryUser   = "directory.users.get"
)

// Faults that only the Directory endpoints answer (the Certificate
// Provisioning endpoints serve the request normally).
const (
	// FaultPermissionDenied answers 403 "Not Authorized to access this
	// resource/api": the caller lacks the admin privilege or the scope.
	FaultPermissionDenied Fault = iota + 100
	// FaultNotFound answers 404 "Resource Not Found".
	FaultNotFound
)

// DirectoryDevice is what the directory holds of a ChromeOS device.
type DirectoryDevice struct {
	AnnotatedAssetID, AnnotatedLocation, AnnotatedUser, OrgUnitPath string
	// Status is the device's status ("": ACTIVE; DEPROVISIONED, DISABLED, ...).
	Status string
}

// DirectoryUser is what the directory holds of a user.
type DirectoryUser struct {
	OrgUnitPath string
	// EmployeeID is the externalIds entry of type organization ("": none).
	EmployeeID string
	// CustomSchemas are the custom schema fields: schema -> field -> value
	// (a string, a number, a bool, or a list of {"value": ...}).
	CustomSchemas map[string]map[string]any
	// Suspended and Deleted: a suspended user is still read (suspended:
	// true); a deleted one is 404.
	Suspended, Deleted bool
}

// DefaultDirectoryDevice is a simulated device's directory entry, until
// SetDirectoryDevice replaces it: asset id "ASSET-" + serial, location
// "HQ-1", org unit "/Devices", and the affiliated user's email, if any, as
// annotated user.
func DefaultDirectoryDevice(serial, userEmail string) DirectoryDevice {
	return DirectoryDevice{AnnotatedAssetID: "ASSET-" + serial, AnnotatedLocation: "HQ-1", AnnotatedUser: userEmail, OrgUnitPath: "/Devices"}
}

// DefaultDirectoryUser is a simulated user's directory entry, until
// SetDirectoryUser replaces it: org unit "/Users", employee id "E" + the last
// six characters of the user's directory id, no custom schema.
func DefaultDirectoryUser(userID string) DirectoryUser {
	return DirectoryUser{OrgUnitPath: "/Users", EmployeeID: "E" + userID[max(0, len(userID)-6):]}
}

// directoryState holds the replaced entries and the call counts.
type directoryState struct {
	mu      sync.Mutex
	devices map[string]*DirectoryDevice // by device id; nil value: deleted
	users   map[string]*DirectoryUser   // by user id or email
	calls   map[[2]string]int           // by method and key
	// deviceStatus and userStatus override the status of an entry,
	// replaced or not (SetDeviceStatus, SetUserStatus).
	deviceStatus map[string]string
	userStatus   map[string]string
}

// SetDeviceStatus sets the directory status of device deviceID (ACTIVE,
// DEPROVISIONED, DISABLED; "DELETED": the device answers 404), keeping its
// other attributes: a device deprovisioned or disabled by an administrator.
func (e *Emulator) SetDeviceStatus(deviceID, status string) {
	e.dir.mu.Lock()
	defer e.dir.mu.Unlock()
	if e.dir.deviceStatus == nil {
		e.dir.deviceStatus = map[string]string{}
	}
	e.dir.deviceStatus[deviceID] = status
}

// SetUserStatus sets the status of the user whose directory id or primary
// email is userKey: ACTIVE, SUSPENDED (read with suspended: true) or DELETED
// (404), keeping the user's other attributes.
func (e *Emulator) SetUserStatus(userKey, status string) {
	e.dir.mu.Lock()
	defer e.dir.mu.Unlock()
	if e.dir.userStatus == nil {
		e.dir.userStatus = map[string]string{}
	}
	e.dir.userStatus[strings.ToLower(userKey)] = status
}

// SetDirectoryDevice replaces the directory entry of device deviceID (or
// adds one that no simulated client has).
func (e *Emulator) SetDirectoryDevice(deviceID string, d DirectoryDevice) {
	e.dir.mu.Lock()
	defer e.dir.mu.Unlock()
	if e.dir.devices == nil {
		e.dir.devices = map[string]*DirectoryDevice{}
	}
	e.dir.devices[deviceID] = &d
}

// SetDirectoryUser replaces the directory entry of the user whose directory
// id or primary email is userKey.
func (e *Emulator) SetDirectoryUser(userKey string, u DirectoryUser) {
	e.dir.mu.Lock()
	defer e.dir.mu.Unlock()
	if e.dir.users == nil {
		e.dir.users = map[string]*DirectoryUser{}
	}
	e.dir.users[userKey] = &u
}

// DirectoryCalls returns how many requests the Directory endpoint method
// received for key (a device id or a user key; "" counts every key),
// including those that failed.
func (e *Emulator) DirectoryCalls(method, key string) int {
	e.dir.mu.Lock()
	defer e.dir.mu.Unlock()
	n := 0
	for k, c := range e.dir.calls {
		if k[0] == method && (key == "" || k[1] == key) {
			n += c
		}
	}
	return n
}

func (e *Emulator) countDirectory(method, key string) {
	e.dir.mu.Lock()
	defer e.dir.mu.Unlock()
	if e.dir.calls == nil {
		e.dir.calls = map[[2]string]int{}
	}
	e.dir.calls[[2]string{method, key}]++
}

const directoryPrefix = "/admin/directory/v1/"

// serveDirectory serves a request under directoryPrefix.
func (e *Emulator) serveDirectory(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, directoryPrefix), "/")
	var method, key, customer string
	switch {
	case r.Method == http.MethodGet && len(segs) == 5 && segs[0] == "customer" && segs[2] == "devices" && segs[3] == "chromeos" && segs[1] != "" && segs[4] != "":
		method, customer, key = MethodDirectoryDevice, segs[1], segs[4]
	case r.Method == http.MethodGet && len(segs) == 2 && segs[0] == "users" && segs[1] != "":
		method, key = MethodDirectoryUser, segs[1]
	default:
		writeDirectoryError(w, r, http.StatusNotFound, "notFound", "Method not found.")
		return
	}
	e.countDirectory(method, key)
	switch e.fault(method, key) {
	case FaultPermissionDenied:
		writeDirectoryError(w, r, http.StatusForbidden, "forbidden", "Not Authorized to access this resource/api")
		return
	case FaultNotFound:
		writeDirectoryError(w, r, http.StatusNotFound, "notFound", "Resource Not Found: "+key)
		return
	case FaultResourceExhausted:
		writeDirectoryError(w, r, http.StatusTooManyRequests, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries' of service 'admin.googleapis.com' (emulated).")
		return
	case FaultUnavailable, FaultLostResponse:
		writeDirectoryError(w, r, http.StatusServiceUnavailable, "backendError", "The service is currently unavailable.")
		return
	case FaultInternal:
		writeDirectoryError(w, r, http.StatusInternalServerError, "internalError", "Internal error encountered.")
		return
	case FaultTimeout, FaultTimeoutAfterActing:
		e.hold(r)
		writeDirectoryError(w, r, http.StatusGatewayTimeout, "deadlineExceeded", "The request timed out (emulated).")
		return
	}
	var resp any
	var status int
	var reason, msg string
	if method == MethodDirectoryDevice {
		resp, status, reason, msg = e.directoryDevice(r, customer, key)
	} else {
		resp, status, reason, msg = e.directoryUser(r, key)
	}
	if status != http.StatusOK {
		writeDirectoryError(w, r, status, reason, msg)
		return
	}
	writeJSON(w, r, resp)
}

// checkDirectoryQuery admits the system parameters and the method's own.
func checkDirectoryQuery(r *http.Request, own map[string][]string) string {
	q := r.URL.Query()
	for k := range q {
		if systemParams[k] {
			continue
		}
		allowed, ok := own[k]
		if !ok {
			return fmt.Sprintf("Invalid parameter %q.", k)
		}
		if v := q.Get(k); allowed != nil && !containsFold(allowed, v) {
			return fmt.Sprintf("Invalid value for %s: %q.", k, v)
		}
	}
	if f := q.Get("fields"); f != "" {
		if _, err := parseFieldMask(f); err != nil {
			return "Invalid field selection " + f
		}
	}
	return ""
}

func containsFold(list []string, v string) bool {
	for _, s := range list {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

func (e *Emulator) directoryDevice(r *http.Request, customer, deviceID string) (any, int, string, string) {
	if msg := checkDirectoryQuery(r, map[string][]string{"projection": {"BASIC", "FULL"}}); msg != "" {
		return nil, http.StatusBadRequest, "invalid", msg
	}
	serial, email, procCustomer, found := "", "", "", false
	e.mu.RLock()
	for _, p := range e.order {
		d := p.device
		if d == nil && p.user != nil {
			d = p.user.ChromeOsDevice
		}
		if d != nil && d.DeviceDirectoryAPIID == deviceID {
			serial, procCustomer, found = d.SerialNumber, p.customer, true
			if p.user != nil {
				email = p.user.UserPrimaryEmail
			}
			break
		}
	}
	e.mu.RUnlock()
	e.dir.mu.Lock()
	set, replaced := e.dir.devices[deviceID]
	statusOverride := e.dir.deviceStatus[deviceID]
	e.dir.mu.Unlock()
	if statusOverride == "DELETED" {
		return nil, http.StatusNotFound, "notFound", "Resource Not Found: deviceId"
	}
	if customer == "my_customer" && e.opts.MyCustomer != "" {
		customer = e.opts.MyCustomer
	}
	if (!found && !replaced) || (found && customer != "my_customer" && customer != procCustomer) {
		return nil, http.StatusNotFound, "notFound", "Resource Not Found: deviceId"
	}
	dev := DefaultDirectoryDevice(serial, email)
	if replaced {
		dev = *set
	}
	status := dev.Status
	if statusOverride != "" {
		status = statusOverride
	}
	if status == "" {
		status = "ACTIVE"
	}
	return map[string]any{
		"kind": "admin#directory#chromeosdevice", "deviceId": deviceID, "serialNumber": serial, "status": status,
		"annotatedAssetId": dev.AnnotatedAssetID, "annotatedLocation": dev.AnnotatedLocation,
		"annotatedUser": dev.AnnotatedUser, "orgUnitPath": dev.OrgUnitPath,
	}, http.StatusOK, "", ""
}

func (e *Emulator) directoryUser(r *http.Request, userKey string) (any, int, string, string) {
	if msg := checkDirectoryQuery(r, map[string][]string{
		"projection": {"basic", "custom", "full"}, "customFieldMask": nil, "viewType": {"admin_view", "domain_public"},
	}); msg != "" {
		return nil, http.StatusBadRequest, "invalid", msg
	}
	q := r.URL.Query()
	projection := strings.ToLower(q.Get("projection"))
	if q.Get("customFieldMask") != "" && projection != "custom" {
		return nil, http.StatusBadRequest, "invalid", "customFieldMask is only allowed with projection=custom."
	}
	if projection == "custom" && q.Get("customFieldMask") == "" {
		return nil, http.StatusBadRequest, "invalid", "Custom field mask is required when projection=custom."
	}
	var id, email string
	e.mu.RLock()
	for _, p := range e.order {
		if u := p.user; u != nil && (u.UserDirectoryAPIID == userKey || strings.EqualFold(u.UserPrimaryEmail, userKey)) {
			id, email = u.UserDirectoryAPIID, u.UserPrimaryEmail
			break
		}
	}
	e.mu.RUnlock()
	e.dir.mu.Lock()
	set, replaced := e.dir.users[userKey]
	if !replaced && id != "" {
		if set, replaced = e.dir.users[id]; !replaced {
			set, replaced = e.dir.users[email]
		}
	}
	userStatus := e.dir.userStatus[strings.ToLower(userKey)]
	if userStatus == "" && id != "" {
		if userStatus = e.dir.userStatus[strings.ToLower(id)]; userStatus == "" {
			userStatus = e.dir.userStatus[strings.ToLower(email)]
		}
	}
	e.dir.mu.Unlock()
	if id == "" && !replaced {
		return nil, http.StatusNotFound, "notFound", "Resource Not Found: userKey"
	}
	if id == "" {
		id = userKey
	}
	u := DefaultDirectoryUser(id)
	if replaced {
		u = *set
	}
	switch userStatus {
	case "SUSPENDED":
		u.Suspended = true
	case "DELETED":
		u.Deleted = true
	}
	if u.Deleted {
		return nil, http.StatusNotFound, "notFound", "Resource Not Found: userKey"
	}
	out := map[string]any{"kind": "admin#directory#user", "id": id, "primaryEmail": email, "orgUnitPath": u.OrgUnitPath,
		"suspended": u.Suspended, "archived": false}
	if u.EmployeeID != "" {
		out["externalIds"] = []map[string]string{{"type": "organization", "value": u.EmployeeID}}
	}
	custom := map[string]any{}
	for schema, fields := range u.CustomSchemas {
		switch projection {
		case "full":
			custom[schema] = fields
		case "custom":
			for _, s := range strings.Split(q.Get("customFieldMask"), ",") {
				if s == schema {
					custom[schema] = fields
				}
			}
		}
	}
	if len(custom) > 0 {
		out["customSchemas"] = custom
	}
	return out, http.StatusOK, "", ""
}

// writeDirectoryError answers as the Directory API does: code, message and
// status, and the legacy errors list with a reason.
func writeDirectoryError(w http.ResponseWriter, r *http.Request, code int, reason, msg string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": code, "message": msg, "status": directoryStatus(code),
		"errors": []map[string]string{{"message": msg, "domain": "global", "reason": reason}},
	}})
	writeBody(w, r, code, b)
}

func directoryStatus(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	return "INTERNAL"
}
