package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
	"github.com/chromeos-certprov/adapter/shared/tooling/simulation"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// TestRecordsOfALocalRun: the reading commands open what the local run keeps
// (local -keep FILE, written by memory.Store.Save) with --records, and find
// there what the run did: the processes by state, a failed one with the
// message its device was shown, and one device's process by its serial.
func TestRecordsOfALocalRun(t *testing.T) {
	st := memory.New()
	r, err := simulation.Run(context.Background(), simulation.Options{
		Clients: 12, Wrong: 0.25, Seed: 3, Store: st,
		FastDelay: simulation.Range{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Outcomes.Failed == 0 || r.Outcomes.Uploaded == 0 {
		t.Fatalf("the run: %+v (want some uploaded, some failed, nothing unexpected)", r.Outcomes)
	}
	path := filepath.Join(t.TempDir(), "records.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var lv listView
	res := runCLI(t, nil, "list", "--records", path, "--json")
	if res.code != exitOK {
		t.Fatalf("list: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	decodeJSON(t, res, &lv)
	want := []count{{Value: string(progress.StateFailed), Count: r.Outcomes.Failed}, {Value: string(progress.StateUploaded), Count: r.Outcomes.Uploaded}}
	if diff := cmp.Diff(want, lv.ByState, cmpopts.SortSlices(func(a, b count) bool { return a.Value < b.Value })); diff != "" {
		t.Errorf("list --records: counts by state (-run +list):\n%s", diff)
	}

	res = runCLI(t, nil, "list", "--records", path, "--state", "FAILED", "--json")
	decodeJSON(t, res, &lv)
	if len(lv.Processes) != r.Outcomes.Failed {
		t.Fatalf("list --state FAILED: %d processes, the run failed %d", len(lv.Processes), r.Outcomes.Failed)
	}
	failed := lv.Processes[0]
	var svs []statusView
	res = runCLI(t, nil, "status", failed.ProcessID, "--records", path, "--json")
	if res.code != exitOK {
		t.Fatalf("status: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	decodeJSON(t, res, &svs)
	if len(svs) != 1 {
		t.Fatalf("status %s: %d records", failed.ProcessID, len(svs))
	}
	if sv := svs[0]; sv.State != "FAILED" || !sv.FailureReported || sv.FailureMessage == "" {
		t.Errorf("status of a failed process: state %s, message %q shown %v", sv.State, sv.FailureMessage, sv.FailureReported)
	}

	recs, err := st.List(context.Background(), store.Filter{State: progress.StateUploaded}, 100)
	if err != nil {
		t.Fatal(err)
	}
	recs = slices.DeleteFunc(recs, func(r *progress.Record) bool { return r.DeviceSerial == "" })
	if len(recs) == 0 {
		t.Fatal("no device's process was uploaded")
	}
	serial := recs[0].DeviceSerial
	var fv findView
	res = runCLI(t, nil, "find", "--serial", serial, "--records", path, "--json")
	if res.code != exitOK {
		t.Fatalf("find: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	decodeJSON(t, res, &fv)
	keys := []string{}
	for _, p := range fv.Processes {
		keys = append(keys, p.Key)
	}
	if !slices.Contains(keys, recs[0].Key) || fv.Processes[0].Certificate == nil {
		t.Errorf("find --serial %s: %v, want %s with its certificate", serial, keys, recs[0].Key)
	}

	res = runCLI(t, nil, "timeline", recs[0].ProcessID, "--records", path)
	if res.code != exitOK || !strings.Contains(res.stdout, "ISSUED -> UPLOADED") {
		t.Errorf("timeline: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		text string
	}{
		{"missing file", []string{"list", "--records", filepath.Join(t.TempDir(), "none.json")}, exitUnreachable, "no such file"},
		{"not a records file", []string{"list", "--records", writeFile(t, "x.json", `{"rows":[]}`)}, exitUnreachable, "unknown field"},
		{"unknown process", []string{"status", "nope", "--records", path}, exitProblem, "not found"},
		{"actions have no --records", []string{"retry", "p", "--records", path}, exitUsage, "flag provided but not defined: -records"},
	} {
		res := runCLI(t, nil, tc.args...)
		if res.code != tc.code || !strings.Contains(res.stderr, tc.text) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", tc.name, res.code, tc.code, res.stderr, tc.text)
		}
	}
}
