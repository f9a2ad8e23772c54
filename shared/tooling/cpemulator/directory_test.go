package cpemulator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The Directory endpoints refuse what the real API refuses: unknown
// parameters and values, a customFieldMask without projection=custom, other
// HTTP methods and paths; and they count every request.
func TestDirectoryEndpointsRefuse(t *testing.T) {
	t.Parallel()
	e := New(Options{})
	if _, err := e.AddClient(context.Background(), ClientSpec{Customer: "C1", Kind: User, Key: ECP256, UserID: "u1", DeviceID: "d1", Affiliated: true}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, url string
		want        int
		reason      string
	}{
		{http.MethodGet, "/admin/directory/v1/customer/C1/devices/chromeos/d1?projection=FULL&alt=json&prettyPrint=false", 200, ""},
		{http.MethodGet, "/admin/directory/v1/customer/my_customer/devices/chromeos/d1", 200, ""},
		{http.MethodGet, "/admin/directory/v1/customer/C1/devices/chromeos/d1?projection=ALL", 400, "invalid"},
		{http.MethodGet, "/admin/directory/v1/customer/C1/devices/chromeos/d1?orderBy=x", 400, "invalid"},
		{http.MethodGet, "/admin/directory/v1/customer/C2/devices/chromeos/d1", 404, "notFound"},
		{http.MethodGet, "/admin/directory/v1/customer/C1/devices/chromeos/nope", 404, "notFound"},
		{http.MethodPost, "/admin/directory/v1/customer/C1/devices/chromeos/d1", 404, "notFound"},
		{http.MethodGet, "/admin/directory/v1/users/u1?viewType=admin_view", 200, ""},
		{http.MethodGet, "/admin/directory/v1/users/u1?customFieldMask=S", 400, "invalid"},
		{http.MethodGet, "/admin/directory/v1/users/u1?projection=custom", 400, "invalid"},
		{http.MethodGet, "/admin/directory/v1/users/u1?viewType=everything", 400, "invalid"},
		{http.MethodGet, "/admin/directory/v1/users/nobody@example.com", 404, "notFound"},
		{http.MethodGet, "/admin/directory/v1/groups/g1", 404, "notFound"},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.url, nil))
		if rec.Code != tc.want {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.url, rec.Code, tc.want, rec.Body)
			continue
		}
		if tc.want == 200 {
			continue
		}
		var body struct {
			Error struct {
				Code   int `json:"code"`
				Errors []struct {
					Reason string `json:"reason"`
				} `json:"errors"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != tc.want || len(body.Error.Errors) != 1 || body.Error.Errors[0].Reason != tc.reason {
			t.Errorf("%s %s: body %s, want code %d reason %s", tc.method, tc.url, rec.Body, tc.want, tc.reason)
		}
	}
	if got := e.DirectoryCalls(MethodDirectoryDevice, "d1"); got != 5 {
		t.Errorf("%d device reads of d1 counted, want 5", got)
	}
	if got := e.DirectoryCalls(MethodDirectoryUser, ""); got != 5 {
		t.Errorf("%d user reads counted, want 5", got)
	}
}
