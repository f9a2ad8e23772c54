package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
	"github.com/chromeos-certprov/adapter/shared/tooling/scenario"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// TestScenarioFlags: this command registers every scenario flag as
// scenario.Flags declares it (name, default, usage), as the other run
// (functions/cmd/local, functions/cmd/standins) does, so one command line
// means the same clients in both.
func TestScenarioFlags(t *testing.T) {
	t.Parallel()
	fs, _, _ := flags(io.Discard)
	ref := flag.NewFlagSet("scenario", flag.ContinueOnError)
	scenario.Flags(ref)
	n := 0
	ref.VisitAll(func(want *flag.Flag) {
		n++
		got := fs.Lookup(want.Name)
		if got == nil {
			t.Errorf("-%s: not registered", want.Name)
			return
		}
		if got.DefValue != want.DefValue || got.Usage != want.Usage {
			t.Errorf("-%s: default %q, usage %q; want %q, %q", want.Name, got.DefValue, got.Usage, want.DefValue, want.Usage)
		}
	})
	if n < 18 {
		t.Errorf("scenario.Flags declares %d flags, want the 18 shared ones", n)
	}
}

// TestDocumentedCommandLines: the command lines the README and .ci/run give
// parse, and mean what they say.
func TestDocumentedCommandLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		clients int
		report  string
	}{
		{[]string{"-clients", "200", "-report", "r.json"}, 200, "r.json"},                                                                   // README, "Try it"
		{[]string{"-clients", "200", "-report", "out.json", "-quiet", "-reconcile", "-deprovision", "5", "-suspend", "5"}, 200, "out.json"}, // .ci/run
		{[]string{"-load", "-seed", "1", "-report", "load.json"}, 10000, "load.json"},                                                       // README, Performance
	} {
		fs, sc, _ := flags(io.Discard)
		if err := fs.Parse(tc.args); err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		o, err := sc.Options(func(string) (string, bool) { return "", false }, io.Discard)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if o.Clients != tc.clients || sc.Report != tc.report {
			t.Errorf("%q: %d clients, report %q; want %d, %q", tc.args, o.Clients, sc.Report, tc.clients, tc.report)
		}
	}
}

// TestKeep: -keep leaves every process's record in a file memory.Load reads
// (certprov --records), with the states the run reported.
func TestKeep(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "records.json")
	var out bytes.Buffer
	code, err := realMain(context.Background(), []string{"-clients", "6", "-quiet", "-fast-delay", "0s-50ms", "-keep", path}, &out, io.Discard)
	if code != 0 || err != nil {
		t.Fatalf("exit %d: %v\n%s", code, err, out.String())
	}
	if !strings.Contains(out.String(), "records kept in "+path) {
		t.Errorf("the summary does not say where the records are:\n%s", out.String())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := memory.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := s.List(context.Background(), store.Filter{State: progress.StateUploaded}, 100)
	if err != nil || len(recs) != 6 {
		t.Errorf("uploaded records kept: %d (%v), want 6", len(recs), err)
	}
	if code, err := realMain(context.Background(), []string{"-compare-schedules", "-keep", path}, io.Discard, io.Discard); code != 2 || err == nil {
		t.Errorf("-keep with -compare-schedules: exit %d, %v; want 2 and an error", code, err)
	}
}

// TestCPUProfile: -cpuprofile writes a profile pprof reads (its gzip header),
// for finding where a benchmark spends its time.
func TestCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	code, err := realMain(context.Background(), []string{"-clients", "6", "-quiet", "-fast-delay", "0s-50ms", "-cpuprofile", path}, io.Discard, io.Discard)
	if code != 0 || err != nil {
		t.Fatalf("exit %d: %v", code, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		t.Errorf("the profile is not a gzipped pprof profile (%d bytes)", len(data))
	}
	if code, _ := realMain(context.Background(), []string{"-cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir")}, io.Discard, io.Discard); code != 2 {
		t.Errorf("an unwritable profile path: exit %d, want 2", code)
	}
}
