package strictjson

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUnmarshal(t *testing.T) {
	t.Parallel()
	type settings struct {
		URL     string `json:"url"`
		Timeout string `json:"timeout,omitempty"`
	}
	tests := []struct {
		name    string
		data    string
		want    settings
		wantErr string
	}{
		{name: "known fields", data: `{"url":"https://ca.example","timeout":"5s"}`, want: settings{URL: "https://ca.example", Timeout: "5s"}},
		{name: "white space after the value", data: "{\"url\":\"u\"}\n\t ", want: settings{URL: "u"}},
		{name: "unknown field", data: `{"url":"u","timout":"5s"}`, wantErr: `unknown field "timout"`},
		{name: "a second object", data: `{"url":"u"} {}`, wantErr: "trailing data"},
		{name: "a stray closing brace", data: `{"url":"u"}}`, wantErr: "trailing data"},
		{name: "a stray comma", data: `{"url":"u"},`, wantErr: "trailing data"},
		{name: "empty", data: ``, wantErr: "EOF"},
		{name: "not an object", data: `["u"]`, wantErr: "cannot unmarshal array"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got settings
			err := Unmarshal([]byte(tc.data), &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Unmarshal(%q) = %v, want an error with %q", tc.data, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%q): %v", tc.data, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Unmarshal(%q) (-want +got):\n%s", tc.data, diff)
			}
		})
	}
}
