package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/tooling/scenario"
	"github.com/chromeos-certprov/adapter/shared/tooling/standins"
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

// TestREADMECommandLines: the README's command lines for this command give
// options a load on the stand-ins accepts (checked before any emulator
// starts), so they run as written; slow clients at the check-ins, which it
// cannot run, are refused with what to give instead.
func TestREADMECommandLines(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-clients", "1000", "-cpu-by-function", "-report", "standins.json"},
		{"-clients", "100"},
		{"-clients", "100", "-slow", "0.1", "-slow-delay", "30s-2m"},
		{"-clients", "100", "-slow", "0.1"},
	} {
		fs, sc, own := flags(io.Discard)
		if err := fs.Parse(args); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		so, err := sc.Options(func(string) (string, bool) { return "", false }, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		o := standins.LoadOptions{PushShards: own.shards, Options: so}
		err = o.Validate()
		if so.SlowAtCheckIns {
			if err == nil || !strings.Contains(err.Error(), "-slow-delay MIN-MAX") {
				t.Errorf("%q: %v, want a refusal that names -slow-delay MIN-MAX", args, err)
			}
		} else if err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}
