package scenario

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

func TestParseRange(t *testing.T) {
	t.Parallel()
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
		got, err := ParseRange(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseRange(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseRange(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

// TestOptions: -load fills in the flags not given, every problem of a
// command line is reported at once, and the poll schedule comes from the
// environment with this machine's deadline unless one is set.
func TestOptions(t *testing.T) {
	t.Parallel()
	scaled := func(sched pipeline.PollSchedule, deadline time.Duration, f float64) pipeline.PollSchedule {
		sched.Deadline = deadline
		return sched.Scale(f)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(o *simulation.Options)
		wantErr []string
	}{
		{name: "defaults", want: func(o *simulation.Options) {}},
		{name: "load", args: []string{"-load"}, want: func(o *simulation.Options) {
			o.Clients, o.Slow, o.Silent, o.TimeScale, o.Arrival = 10000, 0.15, 0.05, 60, 250
			o.FastDelay, o.SlowAtCheckIns = simulation.Range{Min: time.Second, Max: 5 * time.Second}.Scale(60), true
			o.Schedule = scaled(pipeline.DefaultPoll, 30*time.Minute, 60)
		}},
		// Without slow clients the check-ins are not asked for (the
		// stand-ins refuse them), whatever -slow-delay says.
		{name: "slow clients sign at the check-ins", args: []string{"-slow", "0.1"}, want: func(o *simulation.Options) {
			o.Slow, o.SlowAtCheckIns = 0.1, true
		}},
		{name: "load, slow clients uniform in a range", args: []string{"-load", "-slow-delay", "30s-10m"}, want: func(o *simulation.Options) {
			o.Clients, o.Slow, o.Silent, o.TimeScale, o.Arrival = 10000, 0.15, 0.05, 60, 250
			o.FastDelay, o.SlowDelay = simulation.Range{Min: time.Second, Max: 5 * time.Second}.Scale(60), simulation.Range{Min: 30 * time.Second, Max: 10 * time.Minute}.Scale(60)
			o.SlowAtCheckIns = false
			o.Schedule = scaled(pipeline.DefaultPoll, 30*time.Minute, 60)
		}},
		{name: "load, explicit flags win", args: []string{"-load", "-clients", "1000", "-deadline", "10m"}, want: func(o *simulation.Options) {
			o.Clients, o.Slow, o.Silent, o.TimeScale, o.Arrival = 1000, 0.15, 0.05, 60, 250
			o.FastDelay, o.SlowAtCheckIns = simulation.Range{Min: time.Second, Max: 5 * time.Second}.Scale(60), true
			o.Schedule = scaled(pipeline.DefaultPoll, 10*time.Minute, 60)
		}},
		{name: "POLL_ settings", env: map[string]string{"POLL_INITIAL_DELAY": "50ms", "POLL_MAX_DELAY": "200ms", "POLL_DEADLINE": "30s"}, want: func(o *simulation.Options) {
			o.Schedule.Initial, o.Schedule.Max, o.Schedule.Deadline = 50*time.Millisecond, 200*time.Millisecond, 30*time.Second
		}},
		{name: "every problem", args: []string{"-clients", "0", "-slow", "0.6", "-silent", "0.6", "-wrong", "2", "-time-scale", "0", "-fast-delay", "soon", "-slow-delay", "later"},
			env:     map[string]string{"POLL_JITTER": "3"},
			wantErr: []string{"-clients 0", "-wrong 2: want a share", "add up to more than 1", "-time-scale 0", "-fast-delay", "-slow-delay", "or checkins", "POLL_JITTER"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			sc := Flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := sc.Options(config.MapLookup(tc.env), io.Discard)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not mention %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := simulation.Options{
				Clients: 100, FastDelay: simulation.Range{Min: time.Second, Max: 5 * time.Second},
				Schedule: scaled(pipeline.DefaultPoll, LocalDeadline, 1), TimeScale: 1, Seed: 1, ProgressEvery: time.Second, Progress: io.Discard,
			}
			tc.want(&want)
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(simulation.Options{}, "Progress"), cmpopts.IgnoreUnexported(simulation.Options{})); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}
