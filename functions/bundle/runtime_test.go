package bundle

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestGoDirectiveBuildsOnRuntime: the Cloud Functions build uses the Go
// toolchain of the runtime terraform names (go_runtime, "go126" = Go 1.26.x,
// whatever patch the runtime image has) and does not download another, so
// go.mod's go line must not ask for more than that: the same major.minor (or
// an older one) and no patch above 0. A `go 1.26.8` line fails to build on a
// go126 image that has 1.26.5.
func TestGoDirectiveBuildsOnRuntime(t *testing.T) {
	root := repoRoot(t)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	vars, err := os.ReadFile(filepath.Join(root, "terraform", "variables.tf"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (1)\.(\d+)(?:\.(\d+))?\s*$`).FindSubmatch(gomod)
	if goLine == nil {
		t.Fatal("go.mod has no go line of the form go 1.N[.P]")
	}
	runtime := regexp.MustCompile(`(?s)variable "go_runtime" \{.*?default\s*=\s*"go1(\d+)"`).FindSubmatch(vars)
	if runtime == nil {
		t.Fatal(`terraform/variables.tf: no default "go1NN" for go_runtime`)
	}
	minor, runtimeMinor := string(goLine[2]), string(runtime[1])
	m, _ := strconv.Atoi(minor)
	rm, _ := strconv.Atoi(runtimeMinor)
	if m > rm {
		t.Errorf("go.mod says go 1.%s, newer than the runtime go1%s that terraform deploys", minor, runtimeMinor)
	}
	if p := string(goLine[3]); p != "" && p != "0" && m == rm {
		t.Errorf("go.mod pins go 1.%s.%s: the runtime go1%s guarantees only 1.%s.0; write go 1.%s.0", minor, p, runtimeMinor, runtimeMinor, runtimeMinor)
	}
}
