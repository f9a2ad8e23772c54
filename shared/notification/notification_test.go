package notification

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	want := Event{CustomerID: "C01abcd", ProcessID: "proc-123_x"}
	// The binary message with an unknown field before the event, as a newer
	// API version might send.
	var withUnknown []byte
	withUnknown = protowire.AppendTag(withUnknown, 9, protowire.VarintType)
	withUnknown = protowire.AppendVarint(withUnknown, 7)
	withUnknown = append(withUnknown, EncodeBinary(want)...)

	tests := []struct {
		name       string
		data       []byte
		want       Event
		wantFormat Format
		wantErr    string
	}{
		{name: "binary", data: EncodeBinary(want), want: want, wantFormat: FormatBinary},
		{name: "binary with unknown field", data: withUnknown, want: want, wantFormat: FormatBinary},
		{name: "json camelCase", data: EncodeJSON(want), want: want, wantFormat: FormatJSON},
		{name: "json snake_case", data: []byte(` {"certificate_provisioning_process_created_event_data":{"certificate_provisioning_process_id":"proc-123_x","customer_id":"C01abcd"}}`), want: want, wantFormat: FormatJSON},
		{name: "json extra fields ignored", data: []byte(`{"x":1,"certificateProvisioningProcessCreatedEventData":{"customerId":"C01abcd","certificateProvisioningProcessId":"proc-123_x","y":2}}`), want: want, wantFormat: FormatJSON},
		{name: "empty", data: nil, wantErr: "empty message body"},
		{name: "plain text", data: []byte("hello world"), wantErr: "malformed notification"},
		{name: "truncated json", data: []byte(`{"certificateProvisioningProcessCreatedEventData":`), wantErr: "invalid JSON"},
		{name: "json without event", data: []byte(`{"other":{}}`), wantErr: "no certificateProvisioningProcessCreatedEventData"},
		{name: "json missing customer", data: []byte(`{"certificateProvisioningProcessCreatedEventData":{"certificateProvisioningProcessId":"p"}}`), wantErr: "customer id is missing"},
		{name: "json id wrong type", data: []byte(`{"certificateProvisioningProcessCreatedEventData":{"certificateProvisioningProcessId":5,"customerId":"c"}}`), wantErr: "invalid event data"},
		{name: "json both spellings", data: []byte(`{"certificateProvisioningProcessCreatedEventData":{"certificateProvisioningProcessId":"a","certificate_provisioning_process_id":"b","customerId":"c"}}`), wantErr: "given twice"},
		{name: "path traversal id", data: EncodeBinary(Event{CustomerID: "C1", ProcessID: "../x"}), wantErr: `process id "../x" has characters`},
		{name: "colon in customer", data: EncodeBinary(Event{CustomerID: "a:b", ProcessID: "p"}), wantErr: "customer id"},
		{name: "too long", data: EncodeBinary(Event{CustomerID: "c", ProcessID: strings.Repeat("a", 129)}), wantErr: "longer than 128"},
		{name: "binary truncated", data: EncodeBinary(want)[:5], wantErr: "bad event field"},
		{name: "binary no event", data: protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1), wantErr: "no certificateProvisioningProcessCreatedEventData"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, format, err := Decode(tc.data)
			if tc.wantErr != "" {
				var nerr *Error
				if err == nil || !errors.As(err, &nerr) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode() error = %v, want an *Error containing %q", err, tc.wantErr)
				}
				// Refused ids (such as "../x") are never handed out.
				if got != (Event{}) {
					t.Errorf("Decode() = %+v with an error, want the zero Event", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decode() event (-want +got):\n%s", diff)
			}
			if format != tc.wantFormat {
				t.Errorf("Decode() format = %q, want %q", format, tc.wantFormat)
			}
		})
	}
}

func TestEventName(t *testing.T) {
	t.Parallel()
	got := Event{CustomerID: "C1", ProcessID: "p1"}.Name()
	if want := "customers/C1/certificateProvisioningProcesses/p1"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
}

func BenchmarkDecodeBinary(b *testing.B) {
	data := EncodeBinary(Event{CustomerID: "C01abcd", ProcessID: "0123456789abcdef"})
	for b.Loop() {
		if _, _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	data := EncodeJSON(Event{CustomerID: "C01abcd", ProcessID: "0123456789abcdef"})
	for b.Loop() {
		if _, _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
