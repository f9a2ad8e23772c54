package notification

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
)

// FuzzDecode feeds Decode arbitrary message bodies, seeded with real
// encodings of both formats. Whatever the bytes, Decode does not panic; a
// refusal is an *Error (so the caller acknowledges it instead of retrying);
// an accepted event has ids that are safe in a resource name, a document id
// and a task name, was read in the format its first byte says, and survives
// a round trip through both encodings.
func FuzzDecode(f *testing.F) {
	ev := Event{CustomerID: "C01abcd", ProcessID: "0f8fad5b-d9cb-469f-a165-70867728950e"}
	var unknown []byte
	unknown = protowire.AppendTag(unknown, 9, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 7)
	unknown = protowire.AppendTag(unknown, 3, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "future field")
	for _, seed := range [][]byte{
		EncodeBinary(ev),
		append(unknown, EncodeBinary(ev)...),
		append(EncodeBinary(Event{CustomerID: "C1", ProcessID: "first"}), EncodeBinary(ev)...), // the last event wins
		EncodeBinary(Event{CustomerID: "C1", ProcessID: "../x"}),
		EncodeBinary(ev)[:7],
		EncodeJSON(ev),
		[]byte(" \n{\"certificate_provisioning_process_created_event_data\":{\"certificate_provisioning_process_id\":\"p1\",\"customer_id\":\"C1\"}}"),
		[]byte(`{"certificateProvisioningProcessCreatedEventData":{"certificateProvisioningProcessId":"a","certificate_provisioning_process_id":"b","customerId":"c"}}`),
		[]byte(`{"certificateProvisioningProcessCreatedEventData":{"certificateProvisioningProcessId":"p\u0000","customerId":"c"}}`),
		[]byte(`{"certificateProvisioningProcessCreatedEventData":null}`),
		[]byte(`{"certificateProvisioningProcessCreatedEventData":`),
		[]byte("hello world"),
		{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, format, err := Decode(data)
		if err != nil {
			var nerr *Error
			if !errors.As(err, &nerr) {
				t.Fatalf("Decode error %v (%T) is not an *Error", err, err)
			}
			if got != (Event{}) {
				t.Fatalf("Decode returned %+v with an error", got)
			}
			return
		}
		wantFormat := FormatBinary
		if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
			wantFormat = FormatJSON
		}
		if format != wantFormat {
			t.Fatalf("format %q, want %q", format, wantFormat)
		}
		for _, id := range []string{got.CustomerID, got.ProcessID} {
			if id == "" || len(id) > maxIDLen {
				t.Fatalf("accepted an id of %d bytes: %+v", len(id), got)
			}
			for _, c := range []byte(id) {
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
					t.Fatalf("accepted an id with %q: %+v", c, got)
				}
			}
		}
		if got.Name() != "customers/"+got.CustomerID+"/certificateProvisioningProcesses/"+got.ProcessID {
			t.Fatalf("Name() = %q", got.Name())
		}
		for _, enc := range [][]byte{EncodeBinary(got), EncodeJSON(got)} {
			again, _, err := Decode(enc)
			if err != nil {
				t.Fatalf("re-encoded event %x does not decode: %v", enc, err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Fatalf("round trip (-first +again):\n%s", diff)
			}
		}
	})
}
