package schedule_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
	"github.com/chromeos-certprov/adapter/shared/tooling/clock"
	"github.com/chromeos-certprov/adapter/shared/tooling/schedule"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
)

func TestSpecs(t *testing.T) {
	t.Parallel()
	var names []string
	desc := map[string]string{}
	for _, s := range schedule.Specs() {
		names = append(names, s.Name)
		desc[s.Name] = s.String()
	}
	if diff := cmp.Diff([]string{"default", "no-check-ins", "fixed-10s", "one-phase-10s", "one-phase-60s"}, names); diff != "" {
		t.Errorf("schedules (-want +got):\n%s", diff)
	}
	if got := desc["fixed-10s"]; got != "every 10s" {
		t.Errorf("fixed-10s described %q, want %q", got, "every 10s")
	}
	if got, want := desc["default"], "2s x1.5 to 10s ±20% for 10s, then 5s after the check-ins at 30s, 2m0s, 8m0s, after 10m0s every 5m0s"; got != want {
		t.Errorf("default described %q, want %q", got, want)
	}
}

// The same clients run once per schedule, on a virtual clock; each row
// counts the silent clients' polls up to the production deadline from the
// schedule.
func TestCompare(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(time.Now().UTC())
	defer v.Stop()
	const scale = 60
	o := simulation.Options{
		Clients: 30, Slow: 0.2, Silent: 0.1, Seed: 1, TimeScale: scale, Clock: v,
		FastDelay: simulation.Range{Min: time.Second, Max: 5 * time.Second}.Scale(scale),
		SlowDelay: simulation.Range{Min: 30 * time.Second, Max: 5 * time.Minute}.Scale(scale),
		Schedule:  pipeline.DefaultPoll.Scale(scale),
	}
	o.Schedule.Deadline = 30 * time.Minute / scale
	specs := schedule.Specs()
	rows, err := schedule.Compare(context.Background(), o, specs, pipeline.DefaultPoll.Deadline, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(specs) {
		t.Fatalf("%d rows for %d schedules", len(rows), len(specs))
	}
	for i, r := range rows {
		if r.Name != specs[i].Name || !r.OK {
			t.Errorf("row %d: %s ok=%t outcomes %+v", i, r.Name, r.OK, r.Outcomes)
		}
		if want := specs[i].Poll.PollsUntil(pipeline.DefaultPoll.Deadline); r.SilentPolls != want {
			t.Errorf("%s: %d silent polls to the deadline, want %d", r.Name, r.SilentPolls, want)
		}
		if r.Outcomes.Uploaded+r.Outcomes.Failed != o.Clients {
			t.Errorf("%s: outcomes %+v, want %d ended", r.Name, r.Outcomes, o.Clients)
		}
	}
}
