package cpemulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromeos-certprov/adapter/shared/notification"
	"github.com/google/go-cmp/cmp"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
)

func TestErrorBodyFormat(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	name := f.add(ClientSpec{Key: ECP256, ClaimedBy: "other"})
	res, body := f.raw(http.MethodPost, "/v1/"+name+":claim?alt=json&prettyPrint=false", `{"callerInstanceId":"me"}`)
	if res.StatusCode != 400 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var got map[string]map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	msg, _ := got["error"]["message"].(string)
	want := map[string]map[string]any{"error": {"code": 400.0, "message": msg, "status": "FAILED_PRECONDITION"}}
	if diff := cmp.Diff(want, got); diff != "" || msg == "" {
		t.Errorf("error body (-want +got):\n%s", diff)
	}
	if bytes.Contains(body, []byte("\n  ")) {
		t.Errorf("prettyPrint=false answer is indented: %s", body)
	}
	// Without prettyPrint=false Google indents.
	_, body = f.raw(http.MethodGet, "/v1/"+name, "")
	if !bytes.Contains(body, []byte("\n  \"name\"")) {
		t.Errorf("default answer not pretty printed: %s", body)
	}
}

func TestAPIErrorParsesStatus(t *testing.T) {
	t.Parallel()
	// gax's apierror (what Google's clients use) accepts the body: the
	// details parse only if the body matches google.rpc.Status exactly.
	f := newFixture(t, Options{})
	name := f.add(ClientSpec{Key: ECP256})
	res, body := f.raw(http.MethodPost, "/v1/"+name+":claim", `{"callerInstanceId":"a","extra":1,"other":"x"}`)
	res.Body = http.NoBody
	err := googleapi.CheckResponseWithBody(res, body)
	ae, ok := apierror.ParseError(err, true)
	if !ok {
		t.Fatalf("apierror.ParseError(%v) failed", err)
	}
	if ae.GRPCStatus().Code() != codes.InvalidArgument || ae.HTTPCode() != 400 {
		t.Errorf("code %v http %d", ae.GRPCStatus().Code(), ae.HTTPCode())
	}
	br := ae.Details().BadRequest
	if br == nil || len(br.GetFieldViolations()) != 2 {
		t.Fatalf("BadRequest details %v from %s", br, body)
	}
	wantMsg := `Invalid JSON payload received. Unknown name "extra": Cannot find field.`
	if got := br.GetFieldViolations()[0].GetDescription(); got != wantMsg {
		t.Errorf("violation %q, want %q", got, wantMsg)
	}
	if !strings.Contains(ae.Message(), wantMsg) {
		t.Errorf("message %q", ae.Message())
	}
}

func TestRequestBinding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		verb     string
		body     string
		wantCode int
		wantMsg  string
	}{
		{"claim camelCase", "claim", `{"callerInstanceId":"a"}`, 200, ""},
		{"claim proto name", "claim", `{"caller_instance_id":"a"}`, 200, ""},
		{"claim unknown field", "claim", `{"callerInstanceId":"a","callerId":"b"}`, 400, `Unknown name "callerId": Cannot find field.`},
		{"claim wrong type", "claim", `{"callerInstanceId":5}`, 400, `Invalid value at 'caller_instance_id' (TYPE_STRING), 5`},
		{"claim null", "claim", `{"callerInstanceId":null}`, 400, "callerInstanceId is required"},
		{"claim empty body", "claim", ``, 400, "callerInstanceId is required"},
		{"claim not an object", "claim", `["a"]`, 400, "Invalid JSON payload received."},
		{"claim bad JSON", "claim", `{"callerInstanceId":`, 400, "Invalid JSON payload received."},
		{"signData URL-safe unpadded base64", "signData", `{"signData":"ZGF0YSB0byBzaWduCg","signatureAlgorithm":"SIGNATURE_ALGORITHM_ECDSA_SHA256"}`, 200, ""},
		{"signData enum number", "signData", `{"sign_data":"ZGF0YQ==","signature_algorithm":2}`, 200, ""},
		{"signData bad base64", "signData", `{"signData":"!!!","signatureAlgorithm":"SIGNATURE_ALGORITHM_ECDSA_SHA256"}`, 400, `Invalid value at 'sign_data' (TYPE_BYTES), Base64 decoding failed for "!!!"`},
		{"signData bad enum", "signData", `{"signData":"ZGF0YQ==","signatureAlgorithm":"ECDSA"}`, 400, `Invalid value at 'signature_algorithm'`},
		{"signData unknown field", "signData", `{"signData":"ZGF0YQ==","signatureAlgorithm":"SIGNATURE_ALGORITHM_ECDSA_SHA256","hash":"SHA256"}`, 400, `Unknown name "hash"`},
		{"setFailure unknown field", "setFailure", `{"errorMessage":"x","message":"y"}`, 400, `Unknown name "message"`},
		{"setFailure proto name", "setFailure", `{"error_message":"x"}`, 200, ""},
		{"uploadCertificate unknown field", "uploadCertificate", `{"certificatePem":"x","chain":"y"}`, 400, `Unknown name "chain"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Options{})
			name := f.add(ClientSpec{Key: ECP256})
			if tc.verb != "claim" {
				f.must(f.claim(name, "a"))
			}
			res, body := f.raw(http.MethodPost, "/v1/"+name+":"+tc.verb, tc.body)
			if res.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.wantCode, body)
			}
			if tc.wantCode == 200 {
				return
			}
			var eb errorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatal(err)
			}
			if eb.Error.Status != "INVALID_ARGUMENT" || !strings.Contains(eb.Error.Message, tc.wantMsg) {
				t.Errorf("error %s %q, want INVALID_ARGUMENT containing %q", eb.Error.Status, eb.Error.Message, tc.wantMsg)
			}
			if s := f.snap(name); s.SignDataCalls != 0 || s.FailureMessage != "" || (tc.verb == "claim" && s.ClaimedBy != "") {
				t.Errorf("a refused request acted: %+v", s)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	name := f.add(ClientSpec{Key: ECP256})
	tests := []struct {
		method, path string
		wantCode     int
	}{
		{http.MethodGet, "/v1/" + name, 200},
		{http.MethodGet, "/v1/" + name + "?alt=json&prettyPrint=false&quotaUser=x&$.xgafv=2", 200},
		{http.MethodGet, "/v1/" + name + "?view=FULL", 400},
		{http.MethodGet, "/v1/" + name + "?alt=proto", 400},
		{http.MethodPost, "/v1/" + name, 404},
		{http.MethodGet, "/v1/" + name + ":claim", 404},
		{http.MethodPost, "/v1/" + name + ":cancel", 404},
		{http.MethodGet, "/v2/" + name, 404},
		{http.MethodGet, "/v1/customers/C0123abc/certificateProvisioningProcesses", 404},
		{http.MethodGet, "/v1/" + name + "/operations", 404},
		{http.MethodDelete, "/v1/" + name, 404},
		{http.MethodGet, "/", 404},
	}
	for _, tc := range tests {
		res, body := f.raw(tc.method, tc.path, "")
		if res.StatusCode != tc.wantCode {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.wantCode)
		}
		var eb errorBody
		if tc.wantCode != 200 && (json.Unmarshal(body, &eb) != nil || eb.Error.Code != tc.wantCode) {
			t.Errorf("%s %s: body %s is not a Google error", tc.method, tc.path, body)
		}
	}
	// Unrouted requests are not counted as any method.
	want := map[string]int{"get": 4, "claim": 0, "signData": 0, "operations.get": 0, "uploadCertificate": 0, "setFailure": 0}
	if diff := cmp.Diff(want, f.emu.Calls()); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
}

func TestPartialResponse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	name := f.add(ClientSpec{Key: ECP256})
	op := f.claimAndSign(name, sampleData)

	p, err := f.procs.Get(name).Fields("name", "signature", "chromeOsDevice/serialNumber").Do()
	f.must(err)
	if p.Name != name || p.Signature == "" || p.SubjectPublicKeyInfo != "" || p.SignData != "" ||
		p.ChromeOsDevice == nil || p.ChromeOsDevice.SerialNumber == "" || p.ChromeOsDevice.DeviceDirectoryApiId != "" {
		t.Errorf("fields projection: %+v %+v", p, p.ChromeOsDevice)
	}
	o, err := f.procs.Operations.Get(op.Name).Fields("done", "response(certificateProvisioningProcess(signature))").Do()
	f.must(err)
	got := signResponse(t, o)
	if o.Name != "" || o.Metadata != nil || got.Signature == "" || got.Name != "" {
		t.Errorf("operation projection: %+v %+v", o, got)
	}
	res, _ := f.raw(http.MethodGet, "/v1/"+name+"?fields=name(", "")
	if res.StatusCode != 400 {
		t.Errorf("bad field selection: %d", res.StatusCode)
	}
}

func TestFieldMaskParser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want fieldMask
		bad  bool
	}{
		{in: "a", want: fieldMask{"a": nil}},
		{in: "a,b/c,d(e,f/g)", want: fieldMask{"a": nil, "b": {"c": nil}, "d": {"e": nil, "f": {"g": nil}}}},
		{in: "a,a/b", want: fieldMask{"a": nil}},
		{in: "a/b,a/c", want: fieldMask{"a": {"b": nil, "c": nil}}},
		{in: "a(", bad: true},
		{in: "a,,b", bad: true},
		{in: "a)", bad: true},
		{in: "/a", bad: true},
	}
	for _, tc := range tests {
		got, err := parseFieldMask(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("parseFieldMask(%q) error %v, want bad=%v", tc.in, err, tc.bad)
			continue
		}
		if diff := cmp.Diff(tc.want, got); !tc.bad && diff != "" {
			t.Errorf("parseFieldMask(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestTimestamp(t *testing.T) {
	t.Parallel()
	base := t0.Truncate(1e9)
	for _, tc := range []struct {
		ns   int
		want string
	}{
		{0, "2025-03-07T13:38:54Z"},
		{120000000, "2025-03-07T13:38:54.120Z"},
		{930621000, "2025-03-07T13:38:54.930621Z"},
		{5, "2025-03-07T13:38:54.000000005Z"},
	} {
		if got := timestamp(base.Add(time.Duration(tc.ns))); got != tc.want {
			t.Errorf("timestamp(+%dns) = %s, want %s", tc.ns, got, tc.want)
		}
	}
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	type published struct {
		data  []byte
		attrs map[string]string
	}
	tests := []struct {
		enc     NotificationEncoding
		formats []notification.Format
	}{
		{NotifyBinary, []notification.Format{notification.FormatBinary, notification.FormatBinary, notification.FormatBinary}},
		{NotifyJSON, []notification.Format{notification.FormatJSON, notification.FormatJSON, notification.FormatJSON}},
		{NotifyAlternate, []notification.Format{notification.FormatBinary, notification.FormatJSON, notification.FormatBinary}},
	}
	for _, tc := range tests {
		var mu sync.Mutex
		var got []published
		emu := New(Options{Encoding: tc.enc, Publish: func(_ context.Context, data []byte, attrs map[string]string) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, published{data, attrs})
			return nil
		}})
		var names []string
		for range 3 {
			name, err := emu.AddClient(t.Context(), ClientSpec{Customer: "C0123abc", Key: ECP256})
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		if len(got) != 3 {
			t.Fatalf("encoding %d: %d notifications, want 3", tc.enc, len(got))
		}
		for i, p := range got {
			ev, format, err := notification.Decode(p.data)
			if err != nil {
				t.Fatalf("encoding %d: notification %d does not decode: %v", tc.enc, i, err)
			}
			if ev.Name() != names[i] || format != tc.formats[i] {
				t.Errorf("encoding %d: notification %d = %s (%s), want %s (%s)", tc.enc, i, ev.Name(), format, names[i], tc.formats[i])
			}
		}
	}
}

func TestNotificationEncoders(t *testing.T) {
	t.Parallel()
	// CertificateProvisioningPubsubNotification{1: CreatedEventData{1: "p1", 2: "c9"}}
	wantBin := []byte{0x0a, 0x08, 0x0a, 0x02, 'p', '1', 0x12, 0x02, 'c', '9'}
	if got := EncodeNotificationBinary("c9", "p1"); !bytes.Equal(got, wantBin) {
		t.Errorf("binary % x, want % x", got, wantBin)
	}
	wantJSON := `{"certificateProvisioningProcessCreatedEventData":{"certificateProvisioningProcessId":"p1","customerId":"c9"}}`
	if got := string(EncodeNotificationJSON("c9", "p1")); got != wantJSON {
		t.Errorf("JSON %s, want %s", got, wantJSON)
	}
}

func TestPublishFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("pubsub down")
	fail := true
	emu := New(Options{Publish: func(context.Context, []byte, map[string]string) error {
		if fail {
			return boom
		}
		return nil
	}})
	name, err := emu.AddClient(t.Context(), ClientSpec{Customer: "c", Key: ECP256})
	if !errors.Is(err, boom) || name == "" {
		t.Fatalf("AddClient = %q, %v; want the name and the publish error", name, err)
	}
	if _, ok := emu.Process(name); !ok {
		t.Error("the process does not exist after a failed publish")
	}
	fail = false
	if err := emu.Notify(t.Context(), name); err != nil {
		t.Errorf("Notify: %v", err)
	}
	if err := emu.Notify(t.Context(), "customers/c/certificateProvisioningProcesses/none"); err == nil {
		t.Error("Notify of an unknown process succeeded")
	}
	if _, err := emu.AddClient(t.Context(), ClientSpec{Customer: "c", ProcessID: name[strings.LastIndex(name, "/")+1:], Key: ECP256}); err == nil {
		t.Error("AddClient reused a process id")
	}
	if _, err := emu.AddClient(t.Context(), ClientSpec{Key: ECP256}); err == nil {
		t.Error("AddClient without a customer succeeded")
	}
}
