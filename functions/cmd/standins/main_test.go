package main

import (
	"flag"
	"io"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/tooling/scenario"
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
