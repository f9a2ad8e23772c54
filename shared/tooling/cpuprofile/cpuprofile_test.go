package cpuprofile_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/pprof/profile"

	"github.com/chromeos-certprov/adapter/shared/tooling/cpuprofile"
)

// cpuProfile writes a gzipped CPU profile whose samples carry the given
// labels (nil: none) and CPU nanoseconds.
func cpuProfile(t *testing.T, types []*profile.ValueType, samples []*profile.Sample) []byte {
	t.Helper()
	fn := &profile.Function{ID: 1, Name: "f"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	for _, s := range samples {
		s.Location = []*profile.Location{loc}
	}
	p := &profile.Profile{SampleType: types, Sample: samples, Location: []*profile.Location{loc}, Function: []*profile.Function{fn}, PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 1}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestByLabel(t *testing.T) {
	t.Parallel()
	// Fresh value types per case: writing a profile sets their string indexes.
	types := func() []*profile.ValueType {
		return []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}}
	}
	tests := []struct {
		name    string
		types   func() []*profile.ValueType
		samples []*profile.Sample
		want    map[string]float64
		wantErr bool
	}{
		{"by function, the rest other", types, []*profile.Sample{
			{Value: []int64{1, 1e9}, Label: map[string][]string{cpuprofile.LabelKey: {"ClaimProcess"}}},
			{Value: []int64{1, 5e8}, Label: map[string][]string{cpuprofile.LabelKey: {"ClaimProcess"}}},
			{Value: []int64{1, 2e9}, Label: map[string][]string{cpuprofile.LabelKey: {"IssueCertificate"}}},
			{Value: []int64{1, 25e7}, Label: map[string][]string{"another": {"x"}}},
			{Value: []int64{1, 25e7}},
		}, map[string]float64{"ClaimProcess": 1.5, "IssueCertificate": 2, "other": 0.5}, false},
		{"no samples", types, nil, map[string]float64{}, false},
		{"no cpu sample type", func() []*profile.ValueType { return []*profile.ValueType{{Type: "samples", Unit: "count"}} }, []*profile.Sample{{Value: []int64{1}}}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := cpuprofile.ByLabel(bytes.NewReader(cpuProfile(t, tc.types(), tc.samples)), cpuprofile.LabelKey)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ByLabel: %v, want error %t", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CPU seconds by label (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := cpuprofile.ByLabel(bytes.NewReader([]byte("not a profile")), cpuprofile.LabelKey); err == nil {
		t.Error("ByLabel of garbage: no error")
	}
}

// The CPU spent inside InFunction while a profile runs is attributed to the
// function it names.
func TestStartAttributesInFunction(t *testing.T) {
	stop, err := cpuprofile.Start()
	if err != nil {
		t.Fatal(err)
	}
	cpuprofile.InFunction(context.Background(), "IssueCertificate", func(context.Context) {
		for start := cpuprofile.ProcessCPU(); cpuprofile.ProcessCPU()-start < 300*time.Millisecond; {
		}
	})
	got := stop()
	if got["IssueCertificate"] <= 0 {
		t.Errorf("CPU seconds by function %v: nothing for IssueCertificate", got)
	}
	// Without a profile InFunction just runs f.
	ran := false
	cpuprofile.InFunction(context.Background(), "x", func(context.Context) { ran = true })
	if !ran {
		t.Error("InFunction did not run f")
	}
}
