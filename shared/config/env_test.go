package config

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
)

func TestPollScheduleFromEnv(t *testing.T) {
	t.Parallel()
	base := map[string]string{"GOOGLE_CLOUD_PROJECT": "proj", "CERTPROV_CONFIG": goodAdapter, "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, err := Load(MapLookup(with("POLL_LATE_AFTER", "0", "POLL_MAX_DELAY", "1m")), types)
	if err != nil {
		t.Fatal(err)
	}
	want := pipeline.DefaultPoll
	want.LateAfter, want.Max = 0, time.Minute
	if diff := cmp.Diff(want, c.Poll); diff != "" {
		t.Errorf("POLL_LATE_AFTER=0 (-want +got):\n%s", diff)
	}
	_, err = Load(MapLookup(with("POLL_LATE_AFTER", "soon", "POLL_LATE_INTERVAL", "-1s")), types)
	for _, w := range []string{"POLL_LATE_AFTER", "POLL_LATE_INTERVAL"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error does not name %s: %v", w, err)
		}
	}
}

func TestSweepAfterFromEnv(t *testing.T) {
	t.Parallel()
	base := map[string]string{"GOOGLE_CLOUD_PROJECT": "proj", "CERTPROV_CONFIG": goodAdapter, "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1"}
	testDurationSetting(t, base, func(c *Config) time.Duration { return c.SweepAfter }, []durationCase{
		{"default", nil, DefaultSweepAfter, ""},
		{"disabled", []string{"SWEEP_AFTER", "0"}, 0, ""},
		{"longer", []string{"SWEEP_AFTER", "6h"}, 6 * time.Hour, ""},
		// The default schedule is quiet for up to 5 min +20% in its late phase.
		{"shorter than two quiet gaps", []string{"SWEEP_AFTER", "10m"}, 0, "SWEEP_AFTER 10m0s: must be at least twice the longest gap between polls (6m0s)"},
		{"one phase, 10 s cap", []string{"SWEEP_AFTER", "3m", "POLL_LATE_AFTER", "0"}, 3 * time.Minute, ""},
		{"not longer than the lease", []string{"SWEEP_AFTER", "1m", "POLL_LATE_AFTER", "0"}, 0, "SWEEP_AFTER 1m0s: must be longer than LEASE 2m0s"},
		{"not a duration", []string{"SWEEP_AFTER", "hourly"}, 0, "SWEEP_AFTER"},
	})
}

func TestLeaseFromEnv(t *testing.T) {
	t.Parallel()
	base := map[string]string{"GOOGLE_CLOUD_PROJECT": "proj", "CERTPROV_CONFIG": goodAdapter, "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1"}
	testDurationSetting(t, base, func(c *Config) time.Duration { return c.Lease }, []durationCase{
		{"default", nil, pipeline.DefaultLease, ""},
		{"longer", []string{"LEASE", "5m"}, 5 * time.Minute, ""},
		{"shorter than two API call deadlines", []string{"LEASE", "30s"}, 0, "LEASE 30s: must be at least 1m0s"},
		{"not a duration", []string{"LEASE", "long"}, 0, "LEASE: \"long\" is not a positive duration"},
		{"not shorter than the sweep", []string{"LEASE", "2h"}, 0, "must be longer than LEASE 2h0m0s"},
	})
}

// durationCase is one environment (name/value pairs over a base) and the
// duration setting it gives, or the error it must produce.
type durationCase struct {
	name    string
	env     []string
	want    time.Duration
	wantErr string
}

func testDurationSetting(t *testing.T, base map[string]string, got func(*Config) time.Duration, cases []durationCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := maps.Clone(base)
			for i := 0; i < len(tc.env); i += 2 {
				m[tc.env[i]] = tc.env[i+1]
			}
			c, err := Load(MapLookup(m), types)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := got(c); d != tc.want {
				t.Errorf("got %s, want %s", d, tc.want)
			}
		})
	}
}

func TestSweepBudgetFromEnv(t *testing.T) {
	t.Parallel()
	base := map[string]string{"GOOGLE_CLOUD_PROJECT": "proj", "CERTPROV_CONFIG": goodAdapter, "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1"}
	testDurationSetting(t, base, func(c *Config) time.Duration { return c.SweepBudget }, []durationCase{
		{"default", nil, DefaultSweepBudget, ""},
		{"a longer function timeout", []string{"SWEEP_BUDGET", "290s"}, 290 * time.Second, ""},
		{"inside the margin", []string{"SWEEP_BUDGET", "5s"}, 0, "SWEEP_BUDGET 5s: must be at least 10s"},
	})
}

// TestLoadPoll: the local runs read the poll schedule alone, with its own
// checks, and no other setting's problem.
func TestLoadPoll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    pipeline.PollSchedule
		wantErr []string
	}{
		{"defaults", nil, pipeline.DefaultPoll, nil},
		{"other settings are not read", map[string]string{"LEASE": "soon", "GOOGLE_CLOUD_PROJECT": ""}, pipeline.DefaultPoll, nil},
		{"set", map[string]string{"POLL_INITIAL_DELAY": "50ms", "POLL_MAX_DELAY": "200ms", "POLL_LATE_AFTER": "0"},
			func() pipeline.PollSchedule {
				p := pipeline.DefaultPoll
				p.Initial, p.Max, p.LateAfter = 50*time.Millisecond, 200*time.Millisecond, 0
				return p
			}(), nil},
		{"every problem", map[string]string{"POLL_INITIAL_DELAY": "1m", "POLL_JITTER": "1", "POLL_DEADLINE": "-1h"}, pipeline.PollSchedule{},
			[]string{"POLL_MAX_DELAY 10s is shorter than POLL_INITIAL_DELAY 1m0s", `POLL_JITTER: "1" is not a number from 0 to 0.9`, `POLL_DEADLINE: "-1h" is not a positive duration`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := LoadPoll(MapLookup(tc.env))
			if tc.wantErr != nil {
				for _, w := range tc.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("schedule (-want +got):\n%s", diff)
			}
		})
	}
}
