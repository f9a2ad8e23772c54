package directory

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// A failed domain-wide delegation token (which google.golang.org/api/impersonate
// reports only as text) is classified by its status: a refusal is permanent,
// with what to check; a 5xx is transient.
func TestWrapDelegationErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		code      int
		transient bool
	}{
		{"JWT signing refused", &url.Error{Op: "Get", URL: "https://admin.googleapis.com/x", Err: errors.New(`impersonate: status code 403: {"error":{"code":403,"message":"Permission 'iam.serviceAccounts.signJwt' denied"}}`)}, 403, false},
		{"client not authorized", fmt.Errorf("oauth2: %w", errors.New(`impersonate: status code 401: {"error":"unauthorized_client"}`)), 401, false},
		{"token endpoint down", errors.New("impersonate: status code 503: unavailable"), 503, true},
		{"no status", errors.New("impersonate: unable to exchange token: connection reset"), 0, true},
	}
	for _, tc := range tests {
		err := wrap(KindDevice, "d1", tc.err)
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || e.Transient != tc.transient {
			t.Errorf("%s: %+v, want code %d transient %v", tc.name, e, tc.code, tc.transient)
			continue
		}
		if tc.code != 0 && !tc.transient && !strings.Contains(e.Action(), "roles/iam.serviceAccountTokenCreator") {
			t.Errorf("%s: action %q does not say what to check", tc.name, e.Action())
		}
	}
}

// Every action fits the device message (the pipeline cuts it at 500 bytes).
func TestActionsFitTheDeviceMessage(t *testing.T) {
	t.Parallel()
	for _, e := range []*Error{
		{Kind: KindDevice, Code: 403}, {Kind: KindUser, Code: 403}, {Kind: KindDevice, Code: 404}, {Kind: KindUser, Code: 404},
		{Kind: KindDevice, Code: 401, Delegation: true}, {Kind: KindUser, Code: 400},
	} {
		if n := len(e.Action()); n > 450 {
			t.Errorf("%s %d: action of %d bytes, more than 450: %s", e.Kind, e.Code, n, e.Action())
		}
	}
}
