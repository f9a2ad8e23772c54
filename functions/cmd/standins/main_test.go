package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    simulation.Range
		wantErr bool
	}{
		{in: "1s-5s", want: simulation.Range{Min: time.Second, Max: 5 * time.Second}},
		{in: "200ms-1s", want: simulation.Range{Min: 200 * time.Millisecond, Max: time.Second}},
		{in: "30s", want: simulation.Range{Min: 30 * time.Second, Max: 30 * time.Second}},
		{in: "0s-0s", want: simulation.Range{}},
		{in: "5s-1s", wantErr: true},
		{in: "-1s", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := parseRange(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseRange(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseRange(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}
