package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chromeos-certprov/adapter/shared/tooling/campaign"
)

func TestParse(t *testing.T) {
	t.Parallel()
	def := campaign.Default(2000, 1)
	tests := []struct {
		name   string
		args   []string
		want   campaign.Options
		report string
		quiet  bool
	}{
		{"defaults: the documented campaign", nil, def, "", false},
		{"the README's command", []string{"-enrollments", "2000", "-seed", "1", "-report", "r.json"}, def, "r.json", false},
		{"overrides", []string{"-enrollments", "300", "-seed", "7", "-api-error-rate", "0.1", "-crash-rate", "0", "-time-scale", "40",
			"-ca-outage-min", "1s", "-max-faults-per-process", "5", "-timeout", "2m", "-real-clock", "-quiet"}, func() campaign.Options {
			o := campaign.Default(300, 7)
			o.APIErrorRate, o.CrashRate, o.TimeScale, o.RealClock = 0.1, 0, 40, true
			o.CAOutageLength.Min, o.MaxFaultsPerProcess, o.Timeout = time.Second, 5, 2*time.Minute
			return o
		}(), "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, report, quiet, err := parse(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(campaign.Options{})); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			if report != tc.report || quiet != tc.quiet {
				t.Errorf("report %q quiet %v, want %q %v", report, quiet, tc.report, tc.quiet)
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-enrollments", "x"},
		{"-time-scale", "0"},
		{"-crash-rate", "2"},
		{"-enrollments", "0"},
		{"-slow", "0.6", "-silent", "0.6"},
		{"stray"},
	} {
		var stderr bytes.Buffer
		code, err := realMain(context.Background(), args, io.Discard, &stderr)
		if code != 2 {
			t.Errorf("%q: exit %d (%v), want 2", args, code, err)
		}
	}
}

// A tiny campaign through the command: the summary, the report file and the
// exit code.
func TestSmallCampaign(t *testing.T) {
	t.Parallel()
	report := filepath.Join(t.TempDir(), "r.json")
	var out bytes.Buffer
	code, err := realMain(context.Background(), []string{"-enrollments", "4", "-seed", "1", "-slow", "0", "-silent", "0", "-wrong", "0", "-elsewhere", "0",
		"-time-scale", "50", "-quiet", "-report", report}, &out, io.Discard)
	if code != 0 || err != nil {
		t.Fatalf("exit %d (%v):\n%s", code, err, out.String())
	}
	for _, want := range []string{"faults injected:", "outcomes:  uploaded 4, failed 0, claimed elsewhere 0, unfinished 0", "API calls: ", "violations: none"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r campaign.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("report: %v", err)
	}
	if r.Enrollments != 4 || r.Outcomes.Uploaded != 4 || len(r.Violations) != 0 {
		t.Errorf("report: %d enrollments, %+v, %d violations", r.Enrollments, r.Outcomes, len(r.Violations))
	}
}
